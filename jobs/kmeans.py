"""spark-submit entry point for the kmeans stage: k-means over an aggregate, k by silhouette.

    ./spark-submit.sh jobs/kmeans.py -c conf/flights.yaml [key=value ...]

The table named by pipeline.kmeans.table is written with an int `cluster` column to
{paths.data}/gold/<pipeline>/<pipeline.kmeans.output>; the silhouette of every k, the sizes, the
centroids and their plots go to MLflow.
"""

from deepspark.cli import job

if __name__ == "__main__":
    raise SystemExit(job("kmeans"))
