"""Training without Spark (no Java needed): one process, or every rank of a torchrun launch.

    python -m deepspark.train -c conf/digits.yaml [key=value ...]
    torchrun --nproc_per_node 2 -m deepspark.train -c conf/digits.yaml

The features are read straight from Parquet, so a GPU box with torch but no Java can train on
what a Spark cluster wrote.
"""

from deepspark.cli.jobs import BOTH, main
from deepspark.stages.train import run

if __name__ == "__main__":
    raise SystemExit(main(run, job="deepspark.train", default_confs=BOTH, spark=False))
