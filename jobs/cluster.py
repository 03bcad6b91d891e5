"""The kmeans stage's old name: runs jobs/kmeans.py's stage, with one warning line.

./spark-submit.sh jobs/cluster.py ...   # is now: ./spark-submit.sh jobs/kmeans.py ...
"""

from deepspark.cli import job

if __name__ == "__main__":
    raise SystemExit(job("cluster"))
