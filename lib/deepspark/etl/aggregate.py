"""Declared aggregations.

Group a clean table by keys and a time bucket, compute named metrics, optionally join another clean
table at the same grain (weather onto airport-hours, say).
"""

from __future__ import annotations

from collections.abc import Mapping

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from deepspark.config.pipeline import AggregateConfig, JoinSpec, MetricSpec, TimeBucket


def time_bucket(df: DataFrame, bucket: TimeBucket) -> DataFrame:
    """Add the bucket column: the UTC hour as a timestamp, or the calendar date in a timezone."""
    ts = F.col(bucket.column)
    if bucket.unit == "hour":
        value = F.date_trunc("hour", ts)
    else:
        value = F.to_date(F.from_utc_timestamp(ts, bucket.timezone))
    return df.withColumn(bucket.output, value)


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
