"""spark-submit entry point for a whole pipeline.

Every stage in order, in one Spark session, under one MLflow parent run. With no -c it runs
the embedded defaults, flights then digits.

    ./spark-submit.sh jobs/pipeline.py [-c conf/flights.yaml] [key=value ...]
"""

from deepspark.cli import job

if __name__ == "__main__":
    raise SystemExit(job("pipeline"))
