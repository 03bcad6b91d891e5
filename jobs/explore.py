"""spark-submit entry point for the profile stage: statistics and plots of any stage's output.

    ./spark-submit.sh jobs/explore.py -c conf/flights.yaml [key=value ...]

Profiles land in {paths.data}/profiles/<pipeline>/<layer>_<table>/ and in MLflow. (Not named
profile.py: a script's folder comes first on sys.path, and that name would shadow the standard
library's `profile` module, which pyspark imports at startup.)
"""

from deepspark.cli import job

if __name__ == "__main__":
    raise SystemExit(job("explore"))
