"""spark-submit entry point for the cluster stage: k-means over an aggregate, k by silhouette.

    ./spark-submit.sh jobs/cluster.py -c conf/flights.yaml [key=value ...]

The table named by pipeline.cluster.table is written with an int `cluster` column to
{paths.data}/gold/<pipeline>/<pipeline.cluster.output>; the silhouette of every k, the sizes, the
centroids and their plots go to MLflow.
"""

from deepspark.cli import job

if __name__ == "__main__":
    raise SystemExit(job("cluster"))
