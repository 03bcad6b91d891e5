"""The ``pipeline.checks`` section: expectations per table, anomaly and skew thresholds.

Expectations are what a user asserts about a table (``fail`` unless they say ``warn``); anomalies
compare a table with the last good run of the same stage and warn unless the config says
``fail``. The defaults of :class:`Thresholds` pass every normal month of the real flights and
weather deliveries (``scripts/check_months.py``; docs/DATA.md has the table).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from deepspark.config.frozen import FrozenMap
from deepspark.config.values import check_bounds

Severity = Literal["warn", "fail"]
CHECKS = ("schema", "all_null", "nulls", "rows", "drift", "spread", "constant", "categories",
          "gaps", "hours")  # fmt: skip
# Stages whose outputs get statistics and anomaly checks, and the layer each writes.
CHECKED_LAYERS = {"ingest": "bronze", "clean": "silver", "aggregate": "gold"}


def _empty() -> Mapping:
    return FrozenMap()


@dataclass(frozen=True)
class Bounds:
    """Inclusive bounds on one number; either side optional."""

    min: float | None = None  # lowest allowed value; null: no lower bound
    max: float | None = None  # highest allowed value; null: no upper bound

    def __post_init__(self) -> None:
        check_bounds(self.min, self.max, none="bounds need min, max or both")

    def holds(self, x: float) -> bool:
        """Whether ``x`` lies within the bounds."""
        return (self.min is None or x >= self.min) and (self.max is None or x <= self.max)

    def text(self) -> str:
        """``[lo, hi]`` with an open side shown as -inf or inf."""
        lo = "-inf" if self.min is None else f"{self.min:g}"
        hi = "inf" if self.max is None else f"{self.max:g}"
        return f"[{lo}, {hi}]"


@dataclass(frozen=True)
class ColumnExpectation:
    """What one column must satisfy; every key is optional."""

    max_null_fraction: float | None = None  # largest fraction of nulls allowed
    min_distinct: int | None = None  # fewest distinct values allowed (HyperLogLog: 1.6 % error)
    allowed: tuple[str, ...] = ()  # the only values allowed, compared as text
    mean: Bounds | None = None  # bounds on the column's mean
    stddev: Bounds | None = None  # bounds on the column's standard deviation
    severity: Severity = "fail"  # what a broken expectation of this column does

    def __post_init__(self) -> None:
        if self.max_null_fraction is not None and not 0 <= self.max_null_fraction <= 1:
            raise ValueError("max_null_fraction: expected a fraction in [0, 1]")
        if self.min_distinct is not None and self.min_distinct < 1:
            raise ValueError("min_distinct: expected at least 1")


@dataclass(frozen=True)
class TimeCoverage:
    """A table's time grid: every ``unit`` between its first and last row must have a row."""

    column: str  # timestamp column
    unit: Literal["hour", "day"] = "day"  # grid step: every hour (UTC) or day must have a row
    keys: tuple[str, ...] = ()  # series columns: checked per series; none: the whole table
    max_missing: int = 0  # missing steps allowed
    # Days are read in this zone (hours are UTC's): a local day's flights span two UTC dates,
    # so a missing local day leaves no empty UTC date.
    timezone: str | None = None


@dataclass(frozen=True)
class TableChecks:
    """Expectations and declarations for one ``layer/table``."""

    rows: Bounds | None = None  # bounds on the table's row count
    rows_severity: Severity = "fail"  # what a row count outside rows does
    columns: Mapping[str, ColumnExpectation] = field(default_factory=_empty)
    # Categorical columns: every value seen so far is kept, and a new one is an anomaly.
    categorical: tuple[str, ...] = ()
    time: TimeCoverage | None = None
    drift: Mapping[str, float] = field(default_factory=_empty)  # column -> its KS threshold
    # Columns that move by design from one delivery to the next (identifiers, date parts):
    # their distribution is not compared with the last run's.
    ignore_drift: tuple[str, ...] = ()


@dataclass(frozen=True)
class Thresholds:
    """When a table differs from the last good run of its stage enough to be an anomaly.

    ``drift`` is the Kolmogorov-Smirnov distance of a numeric column's distribution (the largest
    gap between the two CDFs, read from 101 approximate percentiles); ``hours`` is the total
    variation distance of the hour-of-day histogram of the time column.
    """

    rows_change: float = 0.5  # rows outside [1 - x, 1 + x] times the last run's
    null_increase: float = 0.2  # null fraction up by more than this (absolute)
    drift: float = 0.7  # KS distance above which a numeric column has drifted
    spread_ratio: float = 10.0  # standard deviation grew or shrank by more than this factor
    hours: float = 0.2  # distance of the hour-of-day histogram above which timing has shifted
    # Check (schema, nulls, drift, ...) -> what its anomaly does; a check not listed warns.
    severity: Mapping[str, Severity] = field(default_factory=_empty)

    def __post_init__(self) -> None:
        for check in self.severity:
            if check not in CHECKS:
                raise ValueError(f"severity: unknown check {check!r} (expected one of {CHECKS})")

    def level(self, check: str) -> Severity:
        """The severity of ``check`` (``warn`` unless configured)."""
        return self.severity.get(check, "warn")


@dataclass(frozen=True)
class SkewConfig:
    """Train/serve skew at scoring: each input's KS distance from its training split.

    Stricter than delivery-to-delivery drift: consecutive months may differ by a season (KS up
    to 0.57 in the 2013 weather), but a model scored on inputs unlike its training split should
    say so (the flights Quick start's November-December temperatures: 0.49).
    """

    drift: float = 0.3  # KS distance from the training split above which an input is skewed
    severity: Severity = "warn"  # what skew does to the scoring run


@dataclass(frozen=True)
class ChecksConfig:
    """Data checks for ingest, clean and aggregate outputs, and skew at scoring."""

    enabled: bool = True  # false: no statistics, expectations, anomaly or skew checks
    thresholds: Thresholds = field(default_factory=Thresholds)
    skew: SkewConfig = field(default_factory=SkewConfig)
    # layer/table (bronze, silver or gold) -> its expectations.
    tables: Mapping[str, TableChecks] = field(default_factory=_empty)

    def __post_init__(self) -> None:
        layers = tuple(CHECKED_LAYERS.values())
        for t in self.tables:
            layer, sep, name = t.partition("/")
            if not sep or layer not in layers or not name:
                raise ValueError(f"tables: {t!r}: expected 'layer/table' with a layer in {layers}")

    def table(self, key: str) -> TableChecks:
        """The declarations for ``layer/table`` (none: an empty one)."""
        return self.tables.get(key) or TableChecks()
