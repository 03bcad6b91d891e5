"""spark-submit entry point for the features stage.

./spark-submit.sh jobs/features.py --conf conf/flights.yaml [key=value ...]
"""

from deepspark.cli import main
from deepspark.stages.features import run

if __name__ == "__main__":
    raise SystemExit(main(run, job="features"))
