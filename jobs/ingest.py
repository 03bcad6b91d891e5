"""spark-submit entry point for the ingest stage.

./spark-submit.sh jobs/ingest.py -c conf/flights.yaml [key=value ...]
"""

from deepspark.cli import job

if __name__ == "__main__":
    raise SystemExit(job("ingest"))
