"""spark-submit entry point for training (TorchDistributor; both pipelines by default).

./spark-submit.sh jobs/train.py [--conf conf/digits.yaml] [pipeline.train.epochs=5 ...]
"""

from deepspark.cli import main
from deepspark.stages.train import run

if __name__ == "__main__":
    raise SystemExit(
        main(run, job="train", default_confs=("conf/flights.yaml", "conf/digits.yaml"))
    )
