"""The typed shape of ``conf/*.yaml``: frozen dataclasses, one per section.

A pipeline is data, not code: sources, cleaning rules, aggregations and feature specs are all
declared here, so a new dataset is a new YAML file. Cross-references (a clean rule naming a source
that does not exist, say) are checked when the config is built, not when a job is half done.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit

from deepspark.config.evaluate import EvaluateConfig
from deepspark.config.frozen import FrozenMap
from deepspark.config.score import ScoreConfig
from deepspark.config.stages import PIPELINE_ORDER
from deepspark.config.train import BASELINES, TrainConfig
from deepspark.config.tune import TuneConfig
from deepspark.config.validation import ValidationConfig

Scalar = str | int | float | bool


def _empty() -> Mapping:
    return FrozenMap()


STAGES = PIPELINE_ORDER  # what pipeline.stages may list (config/stages.py declares each)
LAYERS = (
    "raw", "bronze", "silver", "gold", "features", "quarantine", "profiles", "predictions",
    "validation", "tuning",
)  # fmt: skip


@dataclass(frozen=True)
class SparkConfig:
    """How the one SparkSession is built; spark-submit flags win over ``master``."""

    app_name: str = "deepspark"  # Spark application name (the UI and the cluster manager show it)
    master: str = "local[*]"  # master URL when run as plain Python; spark-submit's --master wins
    driver_memory: str = "2g"  # driver heap when run as plain Python; spark-submit's wins
    # spark.* setting -> value for the session; one given to spark-submit wins.
    settings: Mapping[str, Scalar] = field(default_factory=_empty)


@dataclass(frozen=True)
class PathsConfig:
    """Where data lives: ``{data}/{layer}/{pipeline}/{table}`` for every layer in LAYERS."""

    data: str = "work/data"  # root of every data layer: {data}/{layer}/{pipeline}/{table}
    # Training checkpoints go to {checkpoints}/{pipeline}/{model}-{hash}/.
    checkpoints: str = "work/checkpoints"


@dataclass(frozen=True)
class MlflowConfig:
    """Tracking store; a local SQLite file by default, or a tracking server URI."""

    # Tracking store: a database URI or a server URL, never with credentials.
    tracking_uri: str = "sqlite:///work/mlflow.db"
    # Where a new experiment keeps its artifacts (a path or a URI).
    artifact_root: str = "work/mlartifacts"
    experiment: str = "deepspark"  # MLflow experiment name, created on first use
    # false: nothing is tracked or registered, so evaluate and score are skipped.
    enabled: bool = True
    # A server that stops answering mid-run costs at most about (retries + 1) x timeout per call,
    # and a job stops calling it after the first failure; MLflow's own defaults are 7 and 120 s.
    http_retries: int = 2  # retries per MLflow HTTP call (MLFLOW_HTTP_REQUEST_MAX_RETRIES wins)
    http_timeout_s: int = 30  # seconds per MLflow HTTP request (MLFLOW_HTTP_REQUEST_TIMEOUT wins)
    system_metrics_s: float = 2.0  # training runs' system/* sampling interval in s; 0: none

    def __post_init__(self) -> None:
        # Config is logged (config.yaml artifact, params) and shipped with --files: a password in
        # the URI would be stored in the clear wherever the config goes.
        parts = urlsplit(self.tracking_uri)
        if parts.username is not None or parts.password is not None:
            shown = parts._replace(netloc=f"***@{parts.netloc.rpartition('@')[2]}").geturl()
            raise ValueError(
                f"tracking_uri: expected no user or password in the URI, found {shown}; give "
                "credentials in the environment instead: MLFLOW_TRACKING_USERNAME and "
                "MLFLOW_TRACKING_PASSWORD, or MLFLOW_TRACKING_TOKEN"
            )
        if not 0 <= self.http_retries <= 10:  # MLflow refuses more than 10
            raise ValueError(f"http_retries: expected 0 to 10, found {self.http_retries}")
        if self.http_timeout_s < 1:
            raise ValueError(f"http_timeout_s: expected at least 1, found {self.http_timeout_s}")


@dataclass(frozen=True)
class PrivacyConfig:
    """Pseudonymization: the HMAC key comes from an environment variable or a file, never YAML.

    ``key_env`` names the variable; ``key_file``, when set, names a file holding the key (only
    its owner may read it). With both set they must hold the same key.
    """

    key_env: str = "DEEPSPARK_PSEUDONYM_KEY"  # environment variable that holds the HMAC key
    # File that holds the key (owner-only); with key_env set too, they must match.
    key_file: str | None = None
    min_key_bytes: int = 16  # shortest key accepted, in bytes

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", self.key_env):
            raise ValueError(
                f"key_env: expected an environment variable name, found {self.key_env!r}"
            )
        if self.key_file is not None and not self.key_file.strip():
            raise ValueError("key_file: expected a file path, found an empty string")


@dataclass(frozen=True)
class SourceConfig:
    """One raw table: where it is, its format, and its explicit schema (no inference, ever)."""

    # A path or URI Spark reads, or ``package://<package>/<file>`` for a file shipped in an
    # installed Python package (copied into the raw zone first).
    uri: str
    format: Literal["csv", "json", "parquet"]  # how Spark parses the files
    # Column -> Spark type (int, double, string, ``array<float>``, ...); ``p{0..63}``: p0 to p63.
    schema: Mapping[str, str]
    # Spark reader options (header, sep, nullValue, encoding, ...).
    options: Mapping[str, Scalar] = field(default_factory=_empty)
    # Array column -> the column range gathered into it (pixels: p{0..63}).
    arrays: Mapping[str, str] = field(default_factory=_empty)
    # Ingest fails when a larger fraction of rows does not parse.
    max_quarantine_fraction: float = 0.05

    def __post_init__(self) -> None:
        if not self.schema:
            raise ValueError("schema: at least one column is required")
        if not 0.0 <= self.max_quarantine_fraction <= 1.0:
            raise ValueError("max_quarantine_fraction: expected a fraction in [0, 1]")


@dataclass(frozen=True)
class RangeRule:
    """Inclusive bounds; a null value passes (null handling is the null policy's job)."""

    min: float | None = None  # lowest allowed value; null: no lower bound
    max: float | None = None  # highest allowed value; null: no upper bound

    def __post_init__(self) -> None:
        if self.min is None and self.max is None:
            raise ValueError("a range needs min, max or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"range min {self.min} is above max {self.max}")


@dataclass(frozen=True)
class TimestampRule:
    """Normalize to a UTC timestamp: parse ``column`` with ``format``, or build from clock fields.

    ``fields`` is ``[year, month, day, hhmm]``: local wall-clock fields in ``timezone``, where
    ``hhmm`` is an int like 517 for 05:17 and 2400 means midnight at the end of the day.
    """

    column: str | None = None  # text column to parse with format (instead of fields)
    format: str | None = None  # Spark datetime pattern of column; null: yyyy-MM-dd HH:mm:ss
    # [year, month, day, hhmm] columns of a local clock time (instead of column).
    fields: tuple[str, ...] = ()
    timezone: str = "UTC"  # IANA zone the time is read in, then converted to UTC

    def __post_init__(self) -> None:
        if bool(self.column) == bool(self.fields):
            raise ValueError("a timestamp rule needs either column (+ format) or fields")
        if self.fields and len(self.fields) != 4:
            raise ValueError("fields: expected [year, month, day, hhmm]")


@dataclass(frozen=True)
class CleanConfig:
    """One table's cleaning, in order: pseudonymize, fill, required, timestamps, ranges, dedupe."""

    # Key columns: one row per key is kept, the others are quarantined as duplicates.
    dedupe: tuple[str, ...] = ()
    # Columns that must not be null; a row with a null is quarantined.
    required: tuple[str, ...] = ()
    # Column -> constant that replaces its nulls, before the rules run.
    fill: Mapping[str, Scalar] = field(default_factory=_empty)
    # Column -> inclusive bounds; a row outside them is quarantined.
    ranges: Mapping[str, RangeRule] = field(default_factory=_empty)
    # New column -> how to build its UTC timestamp; a row that does not parse is quarantined.
    timestamps: Mapping[str, TimestampRule] = field(default_factory=_empty)
    # Identifier columns replaced by their keyed HMAC (see privacy).
    pseudonymize: tuple[str, ...] = ()


MetricFn = Literal["count", "count_if", "sum", "mean", "min", "max", "stddev", "percentile"]


@dataclass(frozen=True)
class MetricSpec:
    """One aggregate column: ``fn`` over ``column`` (``where`` is a Spark SQL condition)."""

    fn: MetricFn  # aggregate function (percentile is exact, not approximate)
    column: str | None = None  # input column; count and count_if need none
    where: str | None = None  # Spark SQL condition; the metric sees only rows where it holds
    q: float | None = None  # the quantile in [0, 1], for fn: percentile

    def __post_init__(self) -> None:
        if self.fn not in ("count", "count_if") and not self.column:
            raise ValueError(f"metric {self.fn!r} needs a column")
        if self.fn == "count_if" and not self.where:
            raise ValueError("metric 'count_if' needs a where condition")
        if self.fn == "percentile" and (self.q is None or not 0.0 <= self.q <= 1.0):
            raise ValueError("metric 'percentile' needs q in [0, 1]")


@dataclass(frozen=True)
class TimeBucket:
    """Truncate ``column`` to ``unit``; a day is a calendar date in ``timezone``."""

    column: str  # timestamp column to bucket
    # hour: the UTC hour as a timestamp; day: the calendar date in timezone.
    unit: Literal["hour", "day"]
    output: str  # name of the bucket column, grouped by after keys
    timezone: str = "UTC"  # IANA zone of the calendar day, for unit: day


@dataclass(frozen=True)
class JoinSpec:
    """Join a clean table onto the aggregate; ``match`` maps aggregate columns to its columns."""

    source: str  # the clean table (a source name) joined onto the aggregate
    match: Mapping[str, str]  # aggregate column -> the joined table's column it equals
    # Spark join type; full keeps rows found on one side only.
    how: Literal["left", "inner", "full"] = "left"
    columns: tuple[str, ...] = ()  # columns of the joined table added to the aggregate


@dataclass(frozen=True)
class AggregateConfig:
    """Group a clean table by ``keys`` (+ a time bucket) and compute named metrics."""

    source: str  # the clean table (a source name) to aggregate
    keys: tuple[str, ...]  # group-by columns besides the time bucket ([]: one group per bucket)
    metrics: Mapping[str, MetricSpec]  # output column -> the metric computed into it
    time: TimeBucket | None = None
    join: JoinSpec | None = None


@dataclass(frozen=True)
class TimeSplit:
    """Time-based split by the target's timestamp: train < validation_start <= val < test_start."""

    validation_start: str  # ISO 8601 instant where validation starts (earlier: train)
    test_start: str  # ISO 8601 instant where test starts


Frequency = Literal["minute", "hour", "day", "week", "month"]
CalendarFeature = Literal[
    "minute_of_hour", "hour_of_day", "day_of_week", "day_of_month", "day_of_year",
    "week_of_year", "month_of_year",
]  # fmt: skip
# The calendar features that vary from step to step at each frequency (hour_of_day is constant
# on a daily grid, so asking for it there is a mistake, not a feature).
CALENDAR_BY_FREQUENCY: Mapping[str, tuple[str, ...]] = {
    "minute": ("minute_of_hour", "hour_of_day", "day_of_week", "day_of_year"),
    "hour": ("hour_of_day", "day_of_week", "day_of_month", "day_of_year"),
    "day": ("day_of_week", "day_of_month", "day_of_year", "month_of_year"),
    "week": ("week_of_year", "month_of_year", "day_of_year"),
    "month": ("month_of_year",),
}
# The seasonal baseline's period in steps when ``season`` is not set: the same minute or hour
# yesterday, the same weekday last week, the same week or month last year.
SEASON_BY_FREQUENCY: Mapping[str, int] = {
    "minute": 1440, "hour": 24, "day": 7, "week": 52, "month": 12,
}  # fmt: skip


@dataclass(frozen=True)
class SequenceFeatures:
    """Sliding windows over a regular time grid per series: ``window`` steps -> target ahead.

    ``series_key`` names the column that tells series apart; without it the table is one series.
    """

    source: str  # the table to window: an aggregate (gold) or a source (silver)
    time: str  # timestamp column the grid is built on
    frequency: Frequency  # grid step; a missing step becomes a row of nulls
    # Columns fed to the model at each step, standardized on the training split.
    inputs: tuple[str, ...]
    target: str  # column forecast horizon steps after the window's last step
    window: int  # steps of history in each sample
    split: TimeSplit
    series_key: str | None = None  # column that tells series apart; null: the table is one series
    horizon: int = 1  # how many steps ahead the target is
    # The seasonal baseline's period in steps, more than horizon; null: a day, week or year.
    season: int | None = None
    # Column -> value for its nulls and missing steps; others stay missing.
    fill: Mapping[str, float] = field(default_factory=_empty)
    # Cyclical time features added to every step as sin/cos pairs, read in ``timezone``.
    calendar: tuple[CalendarFeature, ...] = ()
    timezone: str = "UTC"  # IANA zone the calendar features are read in

    def __post_init__(self) -> None:
        if self.window < 1 or self.horizon < 1:
            raise ValueError("window and horizon must be at least 1")
        if not self.inputs:
            raise ValueError("inputs: at least one column is required")
        if self.season is not None and self.season < 1:
            raise ValueError(f"season: expected >= 1 steps, found {self.season}")
        if self.period <= self.horizon:  # the seasonal baseline would be null on every row
            unset = f" (the {self.frequency} grid's default)" if self.season is None else ""
            raise ValueError(
                f"season: expected more than horizon={self.horizon} steps, found {self.period}"
                f"{unset}: the seasonal baseline (the target one season earlier) would be missing "
                "on every row"
            )
        fits = CALENDAR_BY_FREQUENCY[self.frequency]
        wrong = [c for c in self.calendar if c not in fits]
        if wrong:
            raise ValueError(
                f"calendar: {', '.join(wrong)} does not vary on a {self.frequency} grid; "
                f"expected some of {', '.join(fits)}"
            )

    @property
    def period(self) -> int:
        """The seasonal baseline's period in steps."""
        return self.season or SEASON_BY_FREQUENCY[self.frequency]


@dataclass(frozen=True)
class FractionSplit:
    """Random split by a seeded content hash, stratified by label when ``stratify``."""

    train: float  # fraction of rows in the training split
    validation: float  # fraction in the validation split
    test: float  # fraction in the test split; the three add up to 1
    seed: int = 13  # seed of the content hash that assigns rows to splits
    stratify: bool = True  # keep each label's share the same in every split

    def __post_init__(self) -> None:
        if abs(self.train + self.validation + self.test - 1.0) > 1e-9:
            raise ValueError("split fractions must add up to 1")


@dataclass(frozen=True)
class ImageFeatures:
    """Image arrays scaled to [0, 1] by ``max_value``, stored flat; ``shape`` is (C, H, W)."""

    source: str  # the table holding the images: a source (silver) or an aggregate
    column: str  # array column of pixel values, C x H x W of them, row-major
    shape: tuple[int, ...]  # [channels, height, width]
    label: str  # integer class label column
    max_value: float  # pixel values are divided by this, to [0, 1]
    split: FractionSplit


@dataclass(frozen=True)
class OutputLayout:
    """File and row-group sizing, so that every rank of a training run gets data.

    Petastorm shards by row group: each split must have at least ``min_row_groups`` of them.
    """

    files_per_split: int = 4  # Parquet files written per split
    row_group_mb: int = 4  # Parquet row-group size in MB
    min_row_groups: int = 2  # the stage fails when a split has fewer row groups than this


@dataclass(frozen=True)
class FeaturesConfig:
    """Exactly one of ``sequence`` or ``image``."""

    sequence: SequenceFeatures | None = None
    image: ImageFeatures | None = None
    layout: OutputLayout = field(default_factory=OutputLayout)

    def __post_init__(self) -> None:
        if (self.sequence is None) == (self.image is None):
            raise ValueError("exactly one of 'sequence' or 'image' is required")


@dataclass(frozen=True)
class LinePlot:
    """A line per ``by`` group of mean(``y``) against ``x`` (Spark SQL expressions)."""

    table: str  # layer/table to plot
    x: str  # Spark SQL expression on the x axis
    y: str  # Spark SQL expression, averaged per x
    by: str | None = None  # Spark SQL expression: one line per value; null: a single line
    title: str = ""  # plot title


@dataclass(frozen=True)
class ProfileConfig:
    """Which outputs to profile (``layer/table``), and the plot budget."""

    # layer/table outputs to profile: statistics, histograms, correlations.
    tables: tuple[str, ...] = ()
    sample_rows: int = 50_000  # rows in the seeded sample for the correlation heatmap, at most
    histogram_bins: int = 30  # bins per histogram
    max_histograms: int = 12  # numeric columns that get a histogram, at most
    lines: tuple[LinePlot, ...] = ()

    def __post_init__(self) -> None:
        for t in (*self.tables, *(p.table for p in self.lines)):
            layer, sep, name = t.partition("/")
            if not sep or layer not in LAYERS or not name:
                raise ValueError(f"table {t!r}: expected 'layer/table' with a layer in {LAYERS}")


@dataclass(frozen=True)
class KMeansConfig:
    """K-means over one table's numeric ``features``, k chosen by silhouette.

    Every k in ``[k_min, k_max]`` is fitted (on a seeded sample of about ``sample_rows`` rows when
    set) and the k with the highest silhouette wins; it is then fitted on every row with all
    features present. The input table is written to ``gold/<output>`` with an int ``cluster``
    column, null on the rows a feature was missing from (those are counted, never dropped).
    """

    table: str  # layer/table to cluster
    features: tuple[str, ...]  # numeric columns the clusters are found in
    output: str  # gold table written: the input plus a cluster column
    k_min: int = 2  # smallest k tried (at least 2)
    k_max: int = 8  # largest k tried
    seed: int = 13  # seed of the k-means fits and of the search sample
    # Rows in the seeded sample the k search runs on; null: every row.
    sample_rows: int | None = None
    standardize: bool = True  # z-score every feature first, so a column's units do not weigh

    def __post_init__(self) -> None:
        layer, sep, name = self.table.partition("/")
        if not sep or layer not in LAYERS or not name:
            raise ValueError(
                f"table {self.table!r}: expected 'layer/table' with a layer in {LAYERS}"
            )
        if not self.features:
            raise ValueError("features: at least one column is required")
        twice = sorted({f for f in self.features if self.features.count(f) > 1})
        if twice:
            raise ValueError(f"features: listed more than once: {', '.join(twice)}")
        if self.k_min < 2:
            raise ValueError(
                f"k_min: expected at least 2 (a silhouette needs two clusters), found {self.k_min}"
            )
        if self.k_max < self.k_min:
            raise ValueError(f"k_max: expected at least k_min={self.k_min}, found {self.k_max}")
        if self.sample_rows is not None and self.sample_rows <= self.k_max:
            raise ValueError(
                f"sample_rows: expected more rows than k_max={self.k_max}, found {self.sample_rows}"
            )
        if not re.fullmatch(r"[a-z][a-z0-9_]*", self.output):
            raise ValueError(f"output {self.output!r}: expected a lower_snake_case table name")
        if self.table == f"gold/{self.output}":
            raise ValueError(
                f"output {self.output!r}: would overwrite the input table {self.table}"
            )


@dataclass(frozen=True)
class PipelineConfig:
    """One pipeline: its sources and the declarative spec of every stage."""

    name: str  # lower_snake_case; names the data folders and the registered model
    sources: Mapping[str, SourceConfig]  # name -> a raw table, ingested into ``bronze/<name>``
    # Source name -> its cleaning rules, bronze -> silver.
    clean: Mapping[str, CleanConfig] = field(default_factory=_empty)
    # Gold table name -> how it is aggregated from a clean table.
    aggregates: Mapping[str, AggregateConfig] = field(default_factory=_empty)
    features: FeaturesConfig | None = None
    profile: ProfileConfig = field(default_factory=ProfileConfig)
    cluster: KMeansConfig | None = None
    train: TrainConfig | None = None
    # A hyperparameter search over pipeline.train keys (deepspark run tune; not a pipeline stage).
    tune: TuneConfig | None = None
    evaluate: EvaluateConfig | None = None  # defaults apply when absent and a model is trained
    score: ScoreConfig | None = None  # defaults apply when absent and a model is trained
    validation: ValidationConfig = field(default_factory=ValidationConfig)
    # The stages a run goes through, in order; one with nothing to do is skipped.
    stages: tuple[str, ...] = STAGES

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
        if self.cluster is not None and self.cluster.output in self.aggregates:
            raise ValueError(
                f"cluster.output: {self.cluster.output!r} is also an aggregate (gold/"
                f"{self.cluster.output}); choose another name"
            )
        for key in self.validation.tables:
            layer, _, table = key.partition("/")
            known = self.aggregates if layer == "gold" else self.sources
            _ref(f"validation.tables.{key}", table, known)
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
