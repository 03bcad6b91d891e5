"""Training without Spark (no Java needed): one process, or every rank of a torchrun launch.

    python -m deepspark.train --conf conf/digits.yaml [key=value ...]
    torchrun --nproc_per_node 2 -m deepspark.train --conf conf/digits.yaml

The features are read straight from Parquet, so a GPU box with torch but no Java can train on
what a Spark cluster wrote.
"""

from deepspark.cli import main
from deepspark.stages.train import run

if __name__ == "__main__":
    raise SystemExit(
        main(
            run,
            job="deepspark.train",
            default_confs=("conf/flights.yaml", "conf/digits.yaml"),
            spark=False,
        )
    )
