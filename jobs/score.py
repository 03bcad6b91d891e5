"""spark-submit entry point for batch scoring with the registered model (champion by default).

./spark-submit.sh jobs/score.py -c conf/flights.yaml [pipeline.score.model=3 ...]
"""

from deepspark.cli import job

if __name__ == "__main__":
    raise SystemExit(job("score"))
