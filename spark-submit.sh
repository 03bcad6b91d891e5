#!/usr/bin/env bash
# Run a deepspark job under spark-submit from a fresh clone, with no manual setup: installs the
# locked stack on first use (scripts/bootstrap.sh), then hands over to `deepspark submit`.
#
#   ./spark-submit.sh JOB|STAGE [-c FILE]... [--cluster PROFILE] [--master URL] [--dry-run]
#                     [spark-submit options] [key=value ...]
#   ./spark-submit.sh jobs/ingest.py -c conf/flights.yaml spark.master=local[4]
#   ./spark-submit.sh jobs/pipeline.py --cluster standalone --master spark://host:7077
#   ./spark-submit.sh jobs/train.py -c conf/digits.yaml --conf spark.executor.memory=4g --dry-run
#
# Paths are relative to the repo root (the script runs from there, wherever it is called from).
# `.venv/bin/deepspark submit --help` says what each option does. The exit status is spark-submit's.
set -euo pipefail

# shellcheck source=scripts/bootstrap.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/scripts/bootstrap.sh" --setup
exec "$DEEPSPARK_PYTHON" -m deepspark.cli submit "$@"
