"""spark-submit entry point for batch scoring with the registered model (champion by default).

./spark-submit.sh jobs/score.py --conf conf/flights.yaml [pipeline.score.model=3 ...]
"""

from deepspark.cli import main
from deepspark.stages.score import run

if __name__ == "__main__":
    raise SystemExit(
        main(run, job="score", default_confs=("conf/flights.yaml", "conf/digits.yaml"))
    )
