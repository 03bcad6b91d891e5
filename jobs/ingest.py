"""spark-submit entry point for the ingest stage.

./spark-submit.sh jobs/ingest.py --conf conf/flights.yaml [key=value ...]
"""

from deepspark.cli import main
from deepspark.stages.ingest import run

if __name__ == "__main__":
    raise SystemExit(main(run, job="ingest"))
