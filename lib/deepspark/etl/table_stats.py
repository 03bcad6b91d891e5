"""Table statistics for the data checks: one aggregate a stage observes while it writes a table.

:func:`table_stats` is a single JSON string aggregate: attached with ``DataFrame.observe`` to the
write a stage does anyway, it costs no extra pass over the data. Exact counts that Parquet keeps
anyway (nulls, min and max per column) are read from the written files' footers, not
aggregated. What the aggregate holds: the row count; a seeded Bernoulli sample of the numeric
columns (about :data:`SAMPLE_ROWS` rows), from which the driver reads percentiles, moments and
drift; and, only where the config asks for them, value sets of categorical columns, approximate
distinct counts, values outside an allowed set, and the time grid of a time column.

Why a sample: one aggregate per statistic per column cost 8 s per million flight rows on 2 cores
at ingest (twice the stage itself; ``percentile_approx`` and moments over 14 numeric columns);
collecting a sample is one aggregate that skips most rows. :mod:`deepspark.checks` reads it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

# 0, 1, ..., 100 %: a KS distance read from two such grids is within about 1 % of the exact one.
PERCENTILES = tuple(i / 100 for i in range(101))
# percentile_approx's relative rank error is 1 / accuracy: 0.1 %, well below the 1 % grid.
ACCURACY = 1000
# A KS distance on 20,000 sampled rows is within about 0.01 of the population's (1.36 / sqrt n).
SAMPLE_ROWS = 20_000
SAMPLE_SEED = 17  # salts the row hash that picks the sample
HLL_LG_K = 12  # 1.6 % relative error, as in the profile stage
ATOMIC = (T.NumericType, T.StringType, T.BooleanType, T.DateType, T.TimestampType,
          T.TimestampNTZType)  # fmt: skip


@dataclass(frozen=True)
class StatsRequest:
    """The optional statistics: which columns need more than the standard ones."""

    categorical: Sequence[str] = ()
    distinct: Sequence[str] = ()
    allowed: Mapping[str, Sequence[str]] = field(default_factory=dict)
    time: str | None = None  # a timestamp or date column
    unit: str = "day"
    keys: Sequence[str] = ()
    timezone: str | None = None  # days are read in this zone (hours are UTC's)
    # Aggregate each column's nulls, min and max too: for tables whose footers the driver
    # cannot read with pyarrow (object stores such as s3a://).
    counts: bool = False


def _col(name: str) -> Column:
    return F.col("`" + name.replace("`", "``") + "`")


def profiled(schema: T.StructType) -> list[T.StructField]:
    """The columns that get statistics: every atomic one (arrays, maps and structs have none)."""
    return [f for f in schema.fields if isinstance(f.dataType, ATOMIC)]


def numeric(schema: T.StructType) -> list[str]:
    """The numeric columns, in schema order: the sample's fields."""
    return [f.name for f in schema.fields if isinstance(f.dataType, T.NumericType)]


def sample_fraction(expected_rows: int | None) -> float:
    """The Bernoulli rate that samples about :data:`SAMPLE_ROWS` of ``expected_rows``."""
    if not expected_rows or expected_rows <= SAMPLE_ROWS:
        return 1.0
    return SAMPLE_ROWS / expected_rows


def table_stats(
    schema: T.StructType, request: StatsRequest = StatsRequest(), fraction: float = 1.0
) -> Column:
    """One aggregate over a table with ``schema``: its row count and sample, as a JSON string.

    The sample is a list of rows, each the numeric columns (:func:`numeric`) as doubles, then
    the UTC hour of day when a time grid is requested; ``fraction`` 0 takes none.
    """
    numbers = [_col(c).cast("double") for c in numeric(schema)]
    if request.time:  # the hour-of-day histogram is read from the sample, a last field
        numbers.append(F.col(HOUR).cast("double"))
    # A hash of the row, not rand(): observed metrics must be deterministic, and the same rows
    # then give the same sample (a rerun of an unchanged table drifts by exactly 0).
    # Only the numeric columns are hashed: text is the slow part of hashing a row.
    bucket = F.pmod(F.xxhash64(*[_col(c) for c in numeric(schema)], F.lit(SAMPLE_SEED)),
                    F.lit(1 << 20))  # fmt: skip
    picked = F.lit(True) if fraction >= 1 else bucket < F.lit(int(fraction * (1 << 20)))
    parts = [
        F.count(F.lit(1)).alias("rows"),
        F.collect_list(F.when(picked, F.array(*numbers))).alias("sample")
        if numbers and fraction > 0
        else F.array().alias("sample"),
    ]
    if request.counts:
        parts.append(F.struct(*[_counts(f.name) for f in profiled(schema)]).alias("counts"))
    if request.categorical:
        parts.append(
            F.struct(
                *[
                    F.array_sort(F.collect_set(_col(c).cast("string"))).alias(c)
                    for c in request.categorical
                ]
            ).alias("categories")
        )
    if request.distinct:
        parts.append(
            F.struct(
                *[
                    F.hll_sketch_estimate(
                        F.hll_sketch_agg(F.when(_col(c).isNotNull(), F.xxhash64(_col(c))), HLL_LG_K)
                    ).alias(c)
                    for c in request.distinct
                ]
            ).alias("distinct")
        )
    if request.allowed:
        outside = [_outside(c, v) for c, v in request.allowed.items()]
        parts.append(F.struct(*outside).alias("outside"))
    if request.time:
        parts.append(_time(request).alias("time"))
    return F.to_json(F.struct(*parts))


def _counts(column: str) -> Column:
    c = _col(column)
    return F.struct(
        (F.count(F.lit(1)) - F.count(c)).alias("nulls"),
        F.min(c).cast("string").alias("min"),
        F.max(c).cast("string").alias("max"),
    ).alias(column)


def _outside(column: str, allowed: Sequence[str]) -> Column:
    text = _col(column).cast("string")
    bad = text.isNotNull() & ~text.isin(*allowed)
    return F.struct(
        F.count_if(bad).alias("count"), F.min(F.when(bad, text)).alias("example")
    ).alias(column)


# The time grid's per-row values, projected below the observed aggregate (which evaluates its
# expressions without common-subexpression elimination): the hour since 1970 in UTC, plain
# arithmetic on the timestamp. Days in a time zone are derived from these hours on the driver;
# converting the zone on every row (from_utc_timestamp) cost 0.85 s per million rows.
UNIT, HOUR = "__check_unit", "__check_hour"


def with_time_grid(df: DataFrame, request: StatsRequest) -> DataFrame:
    """``df`` plus the time grid's columns for :func:`table_stats` (drop them after observing).

    :data:`UNIT` is ``(k: the series key, h: hours since 1970, UTC)``; :data:`HOUR` the UTC
    hour of day.
    """
    if not request.time:
        return df
    t = _col(request.time).cast("timestamp")
    hour = F.floor(F.unix_seconds(t) / F.lit(3600))
    key = F.concat_ws("|", *[_col(k).cast("string") for k in request.keys])
    unit = F.when(t.isNotNull(), F.struct(key.alias("k"), hour.alias("h")))
    return df.withColumns({UNIT: unit, HOUR: F.pmod(hour, F.lit(24))})


def _time(request: StatsRequest) -> Column:
    # Bounded by series x hours (a year for 3 airports is 26,280 small structs).
    return F.struct(F.collect_set(F.col(UNIT)).alias("units"))


def skew_columns(
    names: Sequence[str], *, steps: Sequence[str], window: int | None, image: bool
) -> dict[str, Column]:
    """What train/serve skew compares, per input, as columns of a features table's ``x``.

    A sequence window is flat and time-major: an input's value at the window's last step stands
    for its time step (each step ends exactly one window, so no step is counted ``window``
    times). An image has one input, its mean intensity.
    """
    x = F.col("x")
    if image:
        return {n: F.aggregate(x, F.lit(0.0), lambda a, v: a + v) / F.size(x) for n in names}
    last = (window or 1) - 1
    return {n: F.element_at(x, last * len(steps) + steps.index(n) + 1) for n in names}


def percentiles_json(columns: Mapping[str, Column]) -> Column:
    """One aggregate: ``{name: [101 percentiles]}`` of each column, as a JSON string."""
    return F.to_json(
        F.struct(
            *[
                F.percentile_approx(c.cast("double"), list(PERCENTILES), ACCURACY).alias(n)
                for n, c in columns.items()
            ]
        )
    )
