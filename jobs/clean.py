"""spark-submit entry point for the clean stage.

./spark-submit.sh jobs/clean.py --conf conf/flights.yaml [key=value ...]
"""

from deepspark.cli import main
from deepspark.stages.clean import run

if __name__ == "__main__":
    raise SystemExit(main(run, job="clean"))
