"""spark-submit entry point for a whole pipeline.

Every stage in order, in one Spark session, under one MLflow parent run. With no --conf it runs
the embedded defaults, flights then digits.

    ./spark-submit.sh jobs/pipeline.py [--conf conf/flights.yaml] [key=value ...]
"""

from deepspark.cli import main
from deepspark.stages.pipeline import run

if __name__ == "__main__":
    raise SystemExit(
        main(run, job="pipeline", default_confs=("conf/flights.yaml", "conf/digits.yaml"))
    )
