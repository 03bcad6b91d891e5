"""Feature transforms: sliding windows for sequence models, scaled arrays for image models.

Outputs are flat ``array<float>`` columns plus a scalar label, the layout Petastorm's
``make_batch_reader`` reads directly; the shape travels in the manifest, not in nested lists.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from deepspark.config.pipeline import FractionSplit, ImageFeatures, SequenceFeatures
from deepspark.etl.quality import Rule

SPLIT = "split"
X, Y = "x", "y"
_INTERVAL = {
    "minute": "INTERVAL 1 MINUTE", "hour": "INTERVAL 1 HOUR", "day": "INTERVAL 1 DAY",
    "week": "INTERVAL 7 DAYS", "month": "INTERVAL 1 MONTH",
}  # fmt: skip


def series_keys(spec: SequenceFeatures) -> list[str]:
    """The columns that tell series apart: the key, or none (the table is one series)."""
    return [spec.series_key] if spec.series_key else []


def regular_grid(df: DataFrame, spec: SequenceFeatures) -> DataFrame:
    """One row per series per step from its first to its last time: gaps become explicit rows.

    Windows are then a fixed number of rows, so a window always spans the same length of time.
    """
    keys, t = series_keys(spec), spec.time
    bounds = df.groupBy(*keys).agg(F.min(t).alias("_lo"), F.max(t).alias("_hi"))
    grid = bounds.select(
        *keys, F.explode(F.sequence("_lo", "_hi", F.expr(_INTERVAL[spec.frequency]))).alias(t)
    )
    types = {f.name: f.dataType for f in df.schema.fields}
    return grid.join(df, on=[*keys, t], how="left").withColumns(
        # Cast the fill to the column's type: a 0.0 fill must not turn a count into a double.
        {c: F.coalesce(F.col(c), F.lit(v).cast(types[c])) for c, v in spec.fill.items()}
    )


def split_of(time: Column, spec: SequenceFeatures) -> Column:
    """Train < validation_start <= validation < test_start <= test."""
    val = F.to_timestamp(F.lit(spec.split.validation_start))
    test = F.to_timestamp(F.lit(spec.split.test_start))
    return F.when(time < val, "train").when(time < test, "validation").otherwise("test")


def scaling_stats(grid: DataFrame, spec: SequenceFeatures) -> DataFrame:
    """Mean and standard deviation of every input over the training period only (one row)."""
    train = grid.filter(split_of(F.col(spec.time), spec) == "train")
    aggs = []
    for c in spec.inputs:
        aggs += [F.avg(c).alias(f"{c}__mean"), F.stddev_pop(c).alias(f"{c}__std")]
    return train.agg(*aggs)


def standardize(grid: DataFrame, stats: Mapping[str, tuple[float, float]]) -> DataFrame:
    """``(x - mean) / std`` per input; a missing value becomes 0, the training mean."""
    scaled = {}
    for c, (mean, std) in stats.items():
        safe_std = std if std and not math.isnan(std) and std > 0 else 1.0
        scaled[f"_s_{c}"] = F.coalesce((F.col(c) - F.lit(mean)) / F.lit(safe_std), F.lit(0.0))
    return grid.withColumns(scaled)


_PERIOD = {
    "minute_of_hour": 60.0, "hour_of_day": 24.0, "day_of_week": 7.0, "day_of_month": 31.0,
    "day_of_year": 365.25, "week_of_year": 52.18, "month_of_year": 12.0,
}  # fmt: skip


def step_features(spec: SequenceFeatures) -> list[str]:
    """The per-step feature names, in ``x`` order: the inputs, then each calendar sin/cos pair."""
    return [*spec.inputs, *(f"{c}_{f}" for c in spec.calendar for f in ("sin", "cos"))]


def add_calendar(scaled: DataFrame, spec: SequenceFeatures) -> DataFrame:
    """``_s_<feature>_sin/_cos`` for each calendar feature of the step's local time.

    Sine and cosine of the position in the cycle: 23:00 sits next to 00:00, as it should, and the
    values are already in [-1, 1], so they need no scaling statistics.
    """
    local = F.from_utc_timestamp(F.col(spec.time), spec.timezone)
    position = {
        "minute_of_hour": F.minute(local),
        "hour_of_day": F.hour(local) + F.minute(local) / 60.0,
        "day_of_week": F.dayofweek(local) - 1,  # Sunday = 0
        "day_of_month": F.dayofmonth(local) - 1,
        "day_of_year": F.dayofyear(local) - 1,
        "week_of_year": F.weekofyear(local) - 1,
        "month_of_year": F.month(local) - 1,
    }
    columns = {}
    for name in spec.calendar:
        angle = position[name] * (2 * math.pi / _PERIOD[name])
        columns[f"_s_{name}_sin"] = F.sin(angle)
        columns[f"_s_{name}_cos"] = F.cos(angle)
    return scaled.withColumns(columns) if columns else scaled


def windows(scaled: DataFrame, spec: SequenceFeatures) -> DataFrame:
    """Each full window of ``window`` steps -> the target ``horizon`` steps after its end.

    Columns: series key, ``time`` (window end), ``target_time``, ``x`` (window x inputs, flat,
    time-major), ``y`` (target, unscaled), ``split`` (by target time), and the two naive
    baselines issue-3 training compares against: the last observed target (persistence) and the
    target one season (``spec.period`` steps) before the target time: the same hour yesterday
    for hourly data, the same month last year for monthly data.
    """
    keys, t = series_keys(spec), spec.time
    ordered = (Window.partitionBy(*keys) if keys else Window).orderBy(t)
    frame = ordered.rowsBetween(-(spec.window - 1), 0)
    step = F.array(*[F.col(f"_s_{c}").cast("float") for c in step_features(spec)])
    # collect_list's order over a frame is not guaranteed: collect (time, values) and sort.
    history = F.array_sort(
        F.collect_list(F.struct(F.col(t).alias("t"), step.alias("v"))).over(frame)
    )
    season = spec.period
    out = scaled.select(
        *keys,
        F.col(t),
        F.lead(t, spec.horizon).over(ordered).alias("target_time"),
        F.flatten(F.transform(history, lambda s: s["v"])).alias(X),
        F.count(F.lit(1)).over(frame).alias("_n"),
        F.lead(spec.target, spec.horizon).over(ordered).cast("float").alias(Y),
        F.col(spec.target).cast("float").alias("baseline_persistence"),
        F.lag(spec.target, season - spec.horizon)
        .over(ordered)
        .cast("float")
        .alias("baseline_seasonal")
        if season > spec.horizon
        else F.lit(None).cast("float").alias("baseline_seasonal"),
    )
    return (
        out.filter((F.col("_n") == spec.window) & F.col(Y).isNotNull())
        .drop("_n")
        .withColumn(SPLIT, split_of(F.col("target_time"), spec))
    )


def shape_rule(spec: ImageFeatures) -> Rule:
    """Images whose pixel count does not match the declared shape cannot be reshaped: quarantine."""
    size = math.prod(spec.shape)
    n = F.size(F.col(spec.column))
    reason = F.concat(
        F.lit(f"{spec.column} "),
        F.coalesce(F.concat(F.lit("has "), n.cast("string"), F.lit(" values")), F.lit("is null")),
        F.lit(f", shape {spec.shape} needs {size}"),
    )
    return Rule("shape", F.col(spec.column).isNull() | (n != size), reason)


def image_features(df: DataFrame, spec: ImageFeatures) -> DataFrame:
    """Flat float images in [0, 1], the label, a content id, and a seeded stratified split."""
    out = df.select(
        F.xxhash64(F.col(spec.column), F.col(spec.label), F.lit(spec.split.seed)).alias("id"),
        F.transform(
            F.col(spec.column), lambda v: (v.cast("float") / F.lit(spec.max_value)).cast("float")
        ).alias(X),
        F.col(spec.label).cast("int").alias(Y),
    )
    return out.withColumn(SPLIT, fraction_split(spec.split))


def fraction_split(split: FractionSplit) -> Column:
    """Assign train/validation/test by rank of a seeded hash, per label when stratified.

    Ranking by a content hash (not ``rand()``) gives the same split whatever the partitioning.
    """
    window = Window.partitionBy(Y) if split.stratify else Window.partitionBy(F.lit(0))
    rank = F.percent_rank().over(window.orderBy(F.xxhash64(F.col("id"), F.lit(split.seed)), "id"))
    return (
        F.when(rank < split.train, "train")
        .when(rank < split.train + split.validation, "validation")
        .otherwise("test")
    )
