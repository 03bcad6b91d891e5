"""spark-submit entry point for the features stage.

./spark-submit.sh jobs/features.py -c conf/flights.yaml [key=value ...]
"""

from deepspark.cli import job

if __name__ == "__main__":
    raise SystemExit(job("features"))
