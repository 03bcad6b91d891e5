#!/usr/bin/env bash
# Run the test suite from a fresh clone, with no manual setup:
#
#   ./test.sh                       # the default tier (not slow/cluster/gpu; see pyproject.toml)
#   ./test.sh -m slow               # the end-to-end tier
#   ./test.sh tests/test_submit.py -q
#
# Arguments go to pytest, which runs from the repo root in the project venv (created and installed
# on first use by scripts/bootstrap.sh). The exit status is pytest's.
set -euo pipefail

# shellcheck source=scripts/bootstrap.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/scripts/bootstrap.sh" --setup

status=0
"$DEEPSPARK_PYTHON" -m pytest "$@" || status=$?
# pytest's 5 means "no tests collected": a typo in a path or -k/-m expression must not look like a
# quiet success to anyone (or any CI) that reads only the last line.
if ((status == 5)); then
    echo "error: pytest collected no tests (check the paths and -k/-m expressions: $*)" >&2
fi
exit "$status"
