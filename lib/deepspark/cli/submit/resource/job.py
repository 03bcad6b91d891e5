"""Runs one deepspark job under spark-submit: ``job.py STAGE [-c FILE ...] [key=value ...]``."""

import sys

from deepspark.cli.jobs import job

if __name__ == "__main__":
    raise SystemExit(job(sys.argv[1] if len(sys.argv) > 1 else "", sys.argv[2:]))
