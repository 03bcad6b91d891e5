"""spark-submit entry point for training (TorchDistributor; both pipelines by default).

./spark-submit.sh jobs/train.py [-c conf/digits.yaml] [pipeline.train.epochs=5 ...]
"""

from deepspark.cli import job

if __name__ == "__main__":
    raise SystemExit(job("train"))
