"""spark-submit entry point for the aggregate stage.

./spark-submit.sh jobs/aggregate.py -c conf/flights.yaml [key=value ...]
"""

from deepspark.cli import job

if __name__ == "__main__":
    raise SystemExit(job("aggregate"))
