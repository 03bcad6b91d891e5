"""The table stages' sections: a raw source (ingest), its cleaning (clean), an aggregate.

Raw -> bronze -> silver -> gold: each section declares one table's step, checked when it is built.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from deepspark.config.values import Scalar, check_bounds, empty_map


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
    options: Mapping[str, Scalar] = field(default_factory=empty_map)
    # Array column -> the column range gathered into it (pixels: p{0..63}).
    arrays: Mapping[str, str] = field(default_factory=empty_map)
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
        check_bounds(self.min, self.max, none="a range needs min, max or both", name="range ")


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
    fill: Mapping[str, Scalar] = field(default_factory=empty_map)
    # Column -> inclusive bounds; a row outside them is quarantined.
    ranges: Mapping[str, RangeRule] = field(default_factory=empty_map)
    # New column -> how to build its UTC timestamp; a row that does not parse is quarantined.
    timestamps: Mapping[str, TimestampRule] = field(default_factory=empty_map)
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
