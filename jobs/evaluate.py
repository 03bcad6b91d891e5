"""Entry point for evaluating and explaining the registered model (champion by default).

./spark-submit.sh jobs/evaluate.py -c conf/digits.yaml [pipeline.evaluate.model=3 ...]

The stage needs no Spark (the test split fits in memory), so no session is built: it also runs
as ``.venv/bin/python jobs/evaluate.py`` on a box without Java.
"""

from deepspark.cli import job

if __name__ == "__main__":
    raise SystemExit(job("evaluate"))
