"""spark-submit entry point for the vacuum of the pipeline's Delta tables past their retention.

./spark-submit.sh jobs/vacuum.py -c conf/flights.yaml paths.format=delta [paths.retention_days=7]
"""

from deepspark.cli import job

if __name__ == "__main__":
    raise SystemExit(job("vacuum"))
