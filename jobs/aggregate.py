"""spark-submit entry point for the aggregate stage.

./spark-submit.sh jobs/aggregate.py --conf conf/flights.yaml [key=value ...]
"""

from deepspark.cli import main
from deepspark.stages.aggregate import run

if __name__ == "__main__":
    raise SystemExit(main(run, job="aggregate"))
