"""Every stage, declared once: name, module, what it reads and writes, when the pipeline runs it.

The command line (``deepspark run``, ``jobs/*.py``, ``deepspark submit``), the pipeline's order
and its skip rule, the config's check of ``pipeline.stages``, and the tests all read this table;
adding a stage is one entry here and its module (``tests/test_stages.py`` checks both). It lives
on the config floor, so it imports no stage: :meth:`Stage.load` imports the module it names when
a job runs it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from deepspark.config.pipeline import Config

# run(cfg, spark, tracker=None): the session (None for stages that run without Java) and the
# job's deepspark.tracking.Tracking (None: the stage makes its own).
RunFn = Callable[["Config", Any, Any], Any]

FLIGHTS = ("conf/flights.yaml",)
BOTH = ("conf/flights.yaml", "conf/digits.yaml")


def _always(cfg: Config) -> bool:
    return True


def _registered(cfg: Config) -> bool:
    """Evaluate and score load a registered model: only after a registered training run."""
    train = cfg.pipeline.train
    return train is not None and train.register.enabled and cfg.mlflow.enabled


@dataclass(frozen=True)
class Stage:
    """One stage: a module with ``run(cfg, spark)``, and what the pipeline and CLI know of it."""

    name: str
    module: str  # imported by load(): the stage's code
    summary: str  # one line, for `deepspark run --help`
    reads: tuple[str, ...]  # layers (docs/ARCHITECTURE.md), or what else it reads
    writes: tuple[str, ...]
    # Run by `pipeline` (in this table's order) when its pipeline.stages lists it and applies()
    # says the config gives it something to do; False: run only on its own (tune).
    in_pipeline: bool = True
    applies: Callable[[Config], bool] = _always
    defaults: tuple[str, ...] = FLIGHTS  # the configs a job runs on when given no -c
    spark: bool = True  # False: runs without Java (run gets None for the session)
    aliases: tuple[str, ...] = ()  # other names a job or command may use
    # Names this stage had before: still accepted, with one warning line (docs/GLOSSARY.md).
    renamed_from: tuple[str, ...] = ()

    def load(self) -> RunFn:
        """The stage's ``run(cfg, spark)`` (its module imported now: pyspark is slow to import)."""
        return importlib.import_module(self.module).run


TABLE: tuple[Stage, ...] = (
    Stage("ingest", "deepspark.stages.ingest",
          "land the sources as raw files and bronze Parquet (declared schema)",
          reads=("sources",), writes=("raw", "bronze", "quarantine", "checks")),
    Stage("clean", "deepspark.stages.clean",
          "bronze -> silver: rules, UTC timestamps, dedup, pseudonyms, quarantine",
          reads=("bronze",), writes=("silver", "quarantine", "checks"),
          applies=lambda cfg: bool(cfg.pipeline.clean)),
    Stage("aggregate", "deepspark.stages.aggregate", "silver -> gold aggregates",
          reads=("silver",), writes=("gold",),
          applies=lambda cfg: bool(cfg.pipeline.aggregates)),
    Stage("features", "deepspark.stages.features",
          "gold/silver -> train/validation/test feature Parquet + manifest",
          reads=("silver", "gold"), writes=("features", "quarantine"),
          applies=lambda cfg: cfg.pipeline.features is not None),
    Stage("profile", "deepspark.stages.profile", "statistics and plots of any layer's tables",
          reads=("bronze", "silver", "gold", "features"), writes=("profiles",),
          applies=lambda cfg: bool(cfg.pipeline.profile.tables or cfg.pipeline.profile.lines),
          # jobs/explore.py: a top-level profile.py would shadow the standard library's profile
          # module, which pyspark imports at start-up.
          aliases=("explore",)),
    Stage("kmeans", "deepspark.stages.kmeans",
          "k-means over a table's numeric columns, k chosen by silhouette",
          reads=("silver", "gold"), writes=("gold",),
          applies=lambda cfg: cfg.pipeline.kmeans is not None,
          renamed_from=("cluster",)),  # "cluster" is the Spark cluster (docs/GLOSSARY.md)
    Stage("train", "deepspark.stages.train",
          "distributed PyTorch training, tracked and registered through the gate",
          reads=("features",), writes=("checkpoints", "mlflow"),
          applies=lambda cfg: cfg.pipeline.train is not None, defaults=BOTH),
    Stage("tune", "deepspark.stages.tune",
          "an Optuna search over pipeline.train keys, one trial per Spark task",
          reads=("features",), writes=("tuning", "mlflow"), in_pipeline=False),
    Stage("evaluate", "deepspark.stages.evaluate",
          "the registered model against baselines, with plots",
          reads=("features", "mlflow"), writes=("mlflow",), applies=_registered, defaults=BOTH,
          spark=False),
    Stage("score", "deepspark.stages.score",
          "batch scoring of the features with the registered model on Spark",
          reads=("features", "mlflow"), writes=("predictions", "quarantine"),
          applies=_registered, defaults=BOTH),
    Stage("vacuum", "deepspark.stages.vacuum",
          "delete Delta files older than paths.retention_days, not a registered model's",
          reads=("every layer", "mlflow"), writes=("every layer",),
          applies=lambda cfg: cfg.paths.format == "delta", defaults=BOTH),
)  # fmt: skip

BY_NAME: Mapping[str, Stage] = {s.name: s for s in TABLE}
# Old names first, so a stage's own aliases win over them.
RENAMED: Mapping[str, str] = {old: s.name for s in TABLE for old in s.renamed_from}
ALIASES: Mapping[str, str] = {**RENAMED, **{alias: s.name for s in TABLE for alias in s.aliases}}
# What `pipeline.stages` may list, in the order the pipeline runs them.
PIPELINE_ORDER: tuple[str, ...] = tuple(s.name for s in TABLE if s.in_pipeline)
