"""Declared aggregations.

Group a clean table by keys and a time bucket, compute named metrics, optionally join another clean
table at the same grain (weather onto airport-hours, say).
"""

from __future__ import annotations

from collections.abc import Mapping

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from deepspark.config.pipeline import AggregateConfig, JoinSpec, MetricSpec, TimeBucket


def bucket_expr(bucket: TimeBucket) -> Column:
    """The bucket of a row: the UTC hour as a timestamp, or the calendar date in a timezone."""
    ts = F.col(bucket.column)
    if bucket.unit == "hour":
        return F.date_trunc("hour", ts)
    return F.to_date(F.from_utc_timestamp(ts, bucket.timezone))


def time_bucket(df: DataFrame, bucket: TimeBucket) -> DataFrame:
    """Add the bucket column (:func:`bucket_expr`) as ``bucket.output``."""
    return df.withColumn(bucket.output, bucket_expr(bucket))


# A bucket as a number in the same order: days since 1970 (a date), microseconds (an hour).
_ORDINAL = {"day": "unix_date", "hour": "unix_micros"}


def bucket_ordinal(value: Column, unit: str) -> Column:
    """A bucket as its ordinal (``_ORDINAL``), the number ranges are given in."""
    return getattr(F, _ORDINAL[unit])(value)


def range_predicate(column: str, unit: str, lo: int, hi: int) -> str:
    """SQL that holds where ``column``, a bucket, lies in ``[lo, hi]`` (ordinals)."""
    return f"{_ORDINAL[unit]}(`{column}`) BETWEEN {int(lo)} AND {int(hi)}"


def bucket_range(spec: AggregateConfig, changed: DataFrame, other: DataFrame | None) -> DataFrame:
    """One row, ``lo`` and ``hi``: the first and last bucket the changed rows fall in.

    ``changed``: rows of the source that a change added or removed; ``other``: the same of the
    joined table, whose matched time column is its bucket. Null when there are none.
    """
    t = spec.time
    assert t is not None
    values = changed.select(bucket_ordinal(bucket_expr(t), t.unit).alias("b"))
    if other is not None and spec.join is not None:
        theirs = F.col(spec.join.match[t.output])
        values = values.unionByName(other.select(bucket_ordinal(theirs, t.unit).alias("b")))
    return values.agg(F.min("b").alias("lo"), F.max("b").alias("hi"))


def within(
    df: DataFrame, spec: AggregateConfig, lo: int, hi: int, *, joined: bool = False
) -> DataFrame:
    """The rows of ``df`` whose bucket lies in ``[lo, hi]``: the source's, or the joined table's.

    The aggregate of these rows is exactly the aggregate's rows in that range, since every
    output row's bucket comes from its rows' (and the join matches on the bucket).
    """
    t = spec.time
    assert t is not None
    value = F.col(spec.join.match[t.output]) if joined and spec.join else bucket_expr(t)
    return df.filter(bucket_ordinal(value, t.unit).between(lo, hi))


def metric_expr(name: str, spec: MetricSpec) -> Column:
    """One metric as a native aggregate; ``where`` restricts the rows it sees."""
    if spec.fn == "count":
        agg = F.count(F.lit(1)) if not spec.where else F.count_if(F.expr(spec.where))
    elif spec.fn == "count_if":
        agg = F.count_if(F.expr(spec.where))
    else:
        value = F.col(spec.column)
        if spec.where:
            value = F.when(F.expr(spec.where), value)
        agg = {
            "sum": F.sum,
            "mean": F.avg,
            "min": F.min,
            "max": F.max,
            "stddev": F.stddev,
        }.get(spec.fn, lambda v: F.percentile(v, F.lit(spec.q)))(value)
    return agg.alias(name)


def aggregate(df: DataFrame, spec: AggregateConfig) -> DataFrame:
    """Group by ``keys`` (+ the time bucket) and compute every declared metric, in one pass.

    Exact percentiles (not approximate) so the same input always gives the same output.
    """
    keys = list(spec.keys)
    if spec.time is not None:
        df = time_bucket(df, spec.time)
        keys.append(spec.time.output)
    return df.groupBy(*keys).agg(*[metric_expr(n, m) for n, m in spec.metrics.items()])


def join_enrich(agg: DataFrame, other: DataFrame, join: JoinSpec) -> DataFrame:
    """Join ``other`` onto the aggregate, renaming its join columns to the aggregate's names.

    A full join keeps grain rows present on only one side (weather hours without departures);
    the join keys are coalesced from both sides, so they are never null.
    """
    renamed = other.select(
        *[F.col(theirs).alias(ours) for ours, theirs in join.match.items()],
        *[F.col(c) for c in join.columns],
    )
    return agg.join(renamed, on=list(join.match), how=join.how)


def build_aggregate(
    df: DataFrame, spec: AggregateConfig, tables: Mapping[str, DataFrame]
) -> DataFrame:
    """The whole declared aggregate: metrics, then the join if one is declared, sorted by grain."""
    out = aggregate(df, spec)
    if spec.join is not None:
        out = join_enrich(out, tables[spec.join.source], spec.join)
    order = [*spec.keys, *([spec.time.output] if spec.time else [])]
    return out.orderBy(*order)
