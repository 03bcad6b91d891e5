"""Descriptive statistics for any table, as native Spark aggregations (no UDFs, no collect).

Every function returns a small DataFrame; the profile stage collects and plots it. The layout of
:func:`describe` is one row per input column, typed the same for every column:

========================  =======  =======================================================
column, type              string   the input column's name and Spark SQL type
count, nulls              long     non-null and null values (so ``rows = count + nulls``)
distinct_approx           long     HLL sketch estimate (1.6% RSE); null for array/map/struct
min, max                  string   cast to string; null for array/map/struct
mean, stddev              double   numeric columns only (stddev is the sample stddev)
p25, p50, p75             double   numeric columns only, ``percentile_approx``
========================  =======  =======================================================

Spark orders NaN above every number, so a floating-point column holding NaN has ``max = NaN``
and a NaN mean; null is "missing", NaN is a value.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

# HLL with 2^12 buckets: relative standard error 1.04 / sqrt(4096) = 1.6%, as good as
# approx_count_distinct(rsd=0.02) and 3-5x faster over many columns: that one keeps 410 buffer
# fields per column in the aggregation row; a sketch is one object per column.
HLL_LG_K = 12
QUANTILES = (0.25, 0.5, 0.75)
# percentile_approx's default accuracy: relative rank error 1/10000, exact on small inputs.
PERCENTILE_ACCURACY = 10_000
COMPLEX_TYPES = (T.ArrayType, T.MapType, T.StructType)
SAMPLE_SEED = 13
OVERSAMPLE = 1.1

DESCRIBE_SCHEMA = T.StructType(
    [
        T.StructField("column", T.StringType(), False),
        T.StructField("type", T.StringType(), False),
        T.StructField("count", T.LongType(), False),
        T.StructField("nulls", T.LongType(), False),
        T.StructField("distinct_approx", T.LongType(), True),
        T.StructField("min", T.StringType(), True),
        T.StructField("max", T.StringType(), True),
        T.StructField("mean", T.DoubleType(), True),
        T.StructField("stddev", T.DoubleType(), True),
        T.StructField("p25", T.DoubleType(), True),
        T.StructField("p50", T.DoubleType(), True),
        T.StructField("p75", T.DoubleType(), True),
    ]
)


def col(name: str) -> Column:
    """A top-level column by its exact name (dots and spaces in names are not paths)."""
    return F.col("`" + name.replace("`", "``") + "`")


def numeric_columns(df: DataFrame) -> list[str]:
    """Names of the numeric (integral, floating, decimal) columns, in schema order."""
    return [f.name for f in df.schema.fields if isinstance(f.dataType, T.NumericType)]


def describe(df: DataFrame) -> DataFrame:
    """Per-column statistics of ``df`` in one aggregation pass (layout in the module docstring).

    Every statistic of every column is one expression of a single ``agg``; its one result row holds
    an array with a struct per column, exploded into rows with ``inline``.

    Args:
        df: Any DataFrame.

    Returns:
        One row per column of ``df``, in schema order, with :data:`DESCRIBE_SCHEMA`.
    """
    per_column = [_column_stats(field) for field in df.schema.fields]
    if not per_column:
        return df.sparkSession.createDataFrame([], DESCRIBE_SCHEMA)
    return df.agg(F.array(*per_column).alias("stats")).select(F.inline("stats"))


def _column_stats(field: T.StructField) -> Column:
    c = col(field.name)
    dtype = field.dataType
    numeric = isinstance(dtype, T.NumericType)
    atomic = not isinstance(dtype, COMPLEX_TYPES)
    quantiles = F.percentile_approx(c.cast("double"), list(QUANTILES), PERCENTILE_ACCURACY)

    def only(cond: bool, value: Column, sql_type: str) -> Column:
        # Every struct in the array needs the same field types, so a statistic that does not
        # apply to this column is a typed null rather than missing.
        return (value if cond else F.lit(None)).cast(sql_type)

    return F.struct(
        F.lit(field.name).alias("column"),
        F.lit(dtype.simpleString()).alias("type"),
        F.count(c).alias("count"),
        # count(1) is one shared aggregate for all columns, not one null test per column.
        (F.count(F.lit(1)) - F.count(c)).alias("nulls"),
        only(atomic, _distinct_approx(c), "long").alias("distinct_approx"),
        only(atomic, F.min(c), "string").alias("min"),
        only(atomic, F.max(c), "string").alias("max"),
        only(numeric, F.avg(c.cast("double")), "double").alias("mean"),
        only(numeric, F.stddev_samp(c.cast("double")), "double").alias("stddev"),
        *(
            only(numeric, quantiles[i], "double").alias(f"p{round(q * 100)}")
            for i, q in enumerate(QUANTILES)
        ),
    )


def _distinct_approx(c: Column) -> Column:
    # A DataSketches HLL over a 64-bit hash of the value (any atomic type; collisions are
    # negligible below billions of values). Nulls are not values, as in approx_count_distinct.
    hashed = F.when(c.isNotNull(), F.xxhash64(c))
    return F.hll_sketch_estimate(F.hll_sketch_agg(hashed, HLL_LG_K))


def bin_range(dtype: T.DataType, lo: float, hi: float, bins: int) -> tuple[float, float, int]:
    """The ``(lo, hi, bins)`` to histogram a column whose values span ``[lo, hi]``.

    Integral columns get bins of a whole number of values with edges at half-integers, so no
    value sits on an edge: months 1..12 are 12 bars (not 30 bins with gaps) and days 1..31 are 16
    bars of 2 days, the last holding day 31 only (not a last bin of days 30 and 31 beside bins
    of one day). A single-valued column gets one bin of width 1 around its value. Other columns
    get ``bins`` equal-width bins over ``[lo, hi]``.
    """
    if hi < lo:
        raise ValueError(f"histogram range [{lo}, {hi}] is empty")
    if isinstance(dtype, T.IntegralType):
        values = int(hi - lo) + 1
        width = math.ceil(values / bins)
        n = math.ceil(values / width)
        return lo - 0.5, lo - 0.5 + width * n, n
    if lo == hi:
        return lo - 0.5, hi + 0.5, 1
    return float(lo), float(hi), bins


def histograms(df: DataFrame, specs: Mapping[str, tuple[float, float, int]]) -> DataFrame:
    """Equal-width histograms of several numeric columns in one pass over ``df``.

    Values outside ``[lo, hi]``, nulls and NaN are not counted; ``hi`` itself falls in the last
    bin (see :func:`bin_range` for choosing the ranges).

    Args:
        df: The table.
        specs: ``{column: (lo, hi, bins)}`` with ``lo < hi`` and ``bins >= 1``.

    Returns:
        ``(column, bin, lo, hi, count)``: every bin of every column, empty bins with count 0,
        sorted by column and bin.
    """
    if not specs:
        raise ValueError("histograms: no columns given")
    for name, (lo, hi, bins) in specs.items():
        if not lo < hi or bins < 1:
            raise ValueError(f"histogram of {name}: need lo < hi and bins >= 1, got {lo, hi, bins}")
    # One (column, bin) pair per value and column, then one groupBy: a single scan of df.
    pairs = F.array(
        *(
            F.struct(F.lit(name).alias("column"), _bin(col(name), lo, hi, bins).alias("bin"))
            for name, (lo, hi, bins) in specs.items()
        )
    )
    counts = (
        df.select(F.inline(pairs)).where(F.col("bin").isNotNull()).groupBy("column", "bin").count()
    )
    last = F.col("bins") - 1
    grid = (
        df.sparkSession.createDataFrame(
            [(name, float(lo), float(hi), int(bins)) for name, (lo, hi, bins) in specs.items()],
            "column string, range_lo double, range_hi double, bins int",
        )
        .withColumn("bin", F.explode(F.sequence(F.lit(0), last)))
        .withColumn("width", (F.col("range_hi") - F.col("range_lo")) / F.col("bins"))
        .select(
            "column",
            "bin",
            (F.col("range_lo") + F.col("bin") * F.col("width")).alias("lo"),
            # The last edge is hi exactly, not lo + bins * width with its rounding error.
            F.when(F.col("bin") == last, F.col("range_hi"))
            .otherwise(F.col("range_lo") + (F.col("bin") + 1) * F.col("width"))
            .alias("hi"),
        )
    )
    return (
        grid.join(counts, ["column", "bin"], "left")
        .select("column", "bin", "lo", "hi", F.coalesce("count", F.lit(0)).alias("count"))
        .orderBy("column", "bin")
    )


def histogram(df: DataFrame, column: str, bins: int, lo: float, hi: float) -> DataFrame:
    """Equal-width histogram of one numeric column over ``[lo, hi]`` (rules: :func:`histograms`).

    Returns:
        ``(bin, lo, hi, count)`` for bins ``0 .. bins - 1``, in order.
    """
    return histograms(df, {column: (lo, hi, bins)}).drop("column")


def _bin(value: Column, lo: float, hi: float, bins: int) -> Column:
    x = value.cast("double")
    inside = x.between(F.lit(lo), F.lit(hi)) & ~F.isnan(x)
    # floor((x - lo) / width) puts hi in bin `bins`; least() folds it into the last bin.
    index = F.least(F.floor((x - F.lit(lo)) * F.lit(bins / (hi - lo))), F.lit(bins - 1))
    return F.when(inside, index.cast("int"))


def bounded_sample(df: DataFrame, rows: int, total: int, seed: int = SAMPLE_SEED) -> DataFrame:
    """A seeded random sample of at most ``rows`` rows (all of ``df`` when it is that small).

    Bernoulli sampling at 1.1x the needed fraction, then ``limit``: for 50,000 rows the margin is
    over 20 standard deviations, so the sample is ``rows`` long in practice. The same input files
    and seed give the same sample.

    Args:
        df: The table.
        rows: The most rows to keep.
        total: Rows in ``df`` (already known to the caller, e.g. from :func:`describe`).
        seed: Sampling seed.
    """
    if total <= rows:
        return df
    return df.sample(fraction=min(1.0, OVERSAMPLE * rows / total), seed=seed).limit(rows)


def line_series(df: DataFrame, x_expr: str, y: str, by: str | None = None) -> DataFrame:
    """Mean of ``y`` per ``x`` (and per ``by`` group): the data of one line plot.

    Args:
        df: The table.
        x_expr: Spark SQL expression for the x axis, e.g. ``"hour(ts)"``.
        y: Spark SQL expression averaged per point (nulls ignored).
        by: Optional Spark SQL expression; one line per value (cast to string).

    Returns:
        ``(by, x, y_mean)`` sorted by ``by`` then ``x``; ``by`` is null without grouping. Rows
        where ``x`` is null are dropped (they have no place on the axis).
    """
    group = F.expr(by).cast("string") if by else F.lit(None).cast("string")
    return (
        df.select(
            group.alias("by"),
            F.expr(x_expr).alias("x"),
            F.expr(y).cast("double").alias("y"),
        )
        .where(F.col("x").isNotNull())
        .groupBy("by", "x")
        .agg(F.avg("y").alias("y_mean"))
        .orderBy("by", "x")
    )
