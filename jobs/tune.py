"""spark-submit entry point for hyperparameter search (an Optuna study, one trial per task).

./spark-submit.sh jobs/tune.py -c conf/flights.yaml [pipeline.tune.trials=40 ...]
"""

from deepspark.cli import job

if __name__ == "__main__":
    raise SystemExit(job("tune"))
