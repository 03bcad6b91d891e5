"""The typed shape of ``conf/*.yaml``: frozen dataclasses, one per section.

A pipeline is data, not code: sources, cleaning rules, aggregations and feature specs are all
declared here, so a new dataset is a new YAML file. Cross-references (a clean rule naming a source
that does not exist, say) are checked when the config is built, not when a job is half done.

The sections live by topic: runtime.py (Spark, paths, MLflow, privacy), tables.py (sources,
cleaning, aggregates), features.py, explore.py (profile, cluster), and train.py, tune.py,
evaluate.py, score.py, checks.py; this module ties them into one :class:`Config` and
re-exports them, so ``from deepspark.config.pipeline import X`` works for every section.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from deepspark.config.checks import ChecksConfig
from deepspark.config.evaluate import EvaluateConfig
from deepspark.config.explore import KMeansConfig, LinePlot, ProfileConfig
from deepspark.config.features import (
    CALENDAR_BY_FREQUENCY,
    SEASON_BY_FREQUENCY,
    CalendarFeature,
    FeaturesConfig,
    FractionSplit,
    Frequency,
    ImageFeatures,
    OutputLayout,
    SequenceFeatures,
    TimeSplit,
)
from deepspark.config.runtime import LAYERS, MlflowConfig, PathsConfig, PrivacyConfig, SparkConfig
from deepspark.config.score import ScoreConfig
from deepspark.config.stages import PIPELINE_ORDER
from deepspark.config.tables import (
    AggregateConfig,
    CleanConfig,
    JoinSpec,
    MetricFn,
    MetricSpec,
    RangeRule,
    SourceConfig,
    TimeBucket,
    TimestampRule,
)
from deepspark.config.train import BASELINES, TrainConfig
from deepspark.config.tune import TuneConfig
from deepspark.config.values import Scalar, empty_map

__all__ = [
    "CALENDAR_BY_FREQUENCY",
    "LAYERS",
    "SEASON_BY_FREQUENCY",
    "STAGES",
    "AggregateConfig",
    "CalendarFeature",
    "CleanConfig",
    "Config",
    "FeaturesConfig",
    "FractionSplit",
    "Frequency",
    "ImageFeatures",
    "JoinSpec",
    "KMeansConfig",
    "LinePlot",
    "MetricFn",
    "MetricSpec",
    "MlflowConfig",
    "OutputLayout",
    "PathsConfig",
    "PipelineConfig",
    "PrivacyConfig",
    "ProfileConfig",
    "RangeRule",
    "Scalar",
    "SequenceFeatures",
    "SourceConfig",
    "SparkConfig",
    "TimeBucket",
    "TimeSplit",
    "TimestampRule",
]

STAGES = PIPELINE_ORDER  # what pipeline.stages may list (config/stages.py declares each)


@dataclass(frozen=True)
class PipelineConfig:
    """One pipeline: its sources and the declarative spec of every stage."""

    name: str  # lower_snake_case; names the data folders and the registered model
    sources: Mapping[str, SourceConfig]  # name -> a raw table, ingested into ``bronze/<name>``
    # Source name -> its cleaning rules, bronze -> silver.
    clean: Mapping[str, CleanConfig] = field(default_factory=empty_map)
    # Gold table name -> how it is aggregated from a clean table.
    aggregates: Mapping[str, AggregateConfig] = field(default_factory=empty_map)
    features: FeaturesConfig | None = None
    profile: ProfileConfig = field(default_factory=ProfileConfig)
    kmeans: KMeansConfig | None = None
    train: TrainConfig | None = None
    # A hyperparameter search over pipeline.train keys (deepspark run tune; not a pipeline stage).
    tune: TuneConfig | None = None
    evaluate: EvaluateConfig | None = None  # defaults apply when absent and a model is trained
    score: ScoreConfig | None = None  # defaults apply when absent and a model is trained
    checks: ChecksConfig = field(default_factory=ChecksConfig)
    # The stages a run goes through, in order; one with nothing to do is skipped.
    stages: tuple[str, ...] = STAGES
    # With paths.format: delta, ingest takes only the files not ingested before (false, or
    # --full on the command line: every run rebuilds every table). Parquet runs are always full.
    incremental: bool = True

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[a-z][a-z0-9_]*", self.name):
            raise ValueError(f"name {self.name!r}: expected lower_snake_case")
        for stage in self.stages:
            if stage not in STAGES:
                raise ValueError(f"stages: unknown stage {stage!r} (expected one of {STAGES})")
        for table in self.clean:
            _ref("clean", table, self.sources)
        for name, agg in self.aggregates.items():
            _ref(f"aggregates.{name}.source", agg.source, self.sources)
            if agg.join is not None:
                _ref(f"aggregates.{name}.join.source", agg.join.source, self.sources)
        if self.features is not None:
            spec = self.features.sequence or self.features.image
            known = {**self.sources, **self.aggregates}
            _ref("features.source", spec.source, known)
        if self.kmeans is not None and self.kmeans.output in self.aggregates:
            raise ValueError(
                f"kmeans.output: {self.kmeans.output!r} is also an aggregate (gold/"
                f"{self.kmeans.output}); choose another name"
            )
        for key in self.checks.tables:
            layer, _, table = key.partition("/")
            known = self.aggregates if layer == "gold" else self.sources
            _ref(f"checks.tables.{key}", table, known)
        if self.train is not None and self.features is None:
            raise ValueError("train: needs a 'features' section to train on")
        if self.train is not None and self.features is not None:
            image = self.features.image is not None
            computed = BASELINES["classification" if image else "regression"]
            other = [b for b in self.train.register.baselines if b not in computed]
            if other:
                task = "an image classifier" if image else "a sequence forecaster"
                raise ValueError(
                    f"train.register.baselines: expected some of {', '.join(computed)} (what "
                    f"training computes for {task}), found {', '.join(other)}"
                )


def _ref(where: str, name: str, known: Mapping) -> None:
    if name not in known:
        raise ValueError(f"{where}: {name!r} is not defined (defined: {', '.join(known)})")


@dataclass(frozen=True)
class Config:
    """The whole resolved config of one job run."""

    pipeline: PipelineConfig
    spark: SparkConfig = field(default_factory=SparkConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)
    mlflow: MlflowConfig = field(default_factory=MlflowConfig)
    privacy: PrivacyConfig = field(default_factory=PrivacyConfig)
    # Base profile this file is merged over, relative to it; a base names no base.
    base: str | None = None
    # A pipeline config this file overlays (relative to it): its keys win, the rest comes from
    # there, base included. The tune stage's best.yaml extends the config it searched.
    extends: str | None = None
    files: tuple[str, ...] = field(default=(), metadata={"yaml": False})

    @property
    def where(self) -> str:
        """The file errors about this config name: the pipeline file (the last one loaded)."""
        return self.files[-1] if self.files else "config"
