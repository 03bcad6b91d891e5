"""spark-submit entry point for the clean stage.

./spark-submit.sh jobs/clean.py -c conf/flights.yaml [key=value ...]
"""

from deepspark.cli import job

if __name__ == "__main__":
    raise SystemExit(job("clean"))
