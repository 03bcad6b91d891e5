"""Feature transforms: regular grids, train-only scaling, exact windows, image arrays and splits."""

from __future__ import annotations

import math
from collections import Counter
from datetime import UTC, date, datetime

import pytest
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.testing import assertDataFrameEqual

from deepspark.config.pipeline import FractionSplit, ImageFeatures, SequenceFeatures, TimeSplit
from deepspark.etl.features import (
    add_calendar,
    fraction_split,
    image_features,
    regular_grid,
    scaling_stats,
    shape_rule,
    standardize,
    step_features,
    windows,
)
from deepspark.etl.quality import VIOLATION, mark_violations


def _h(hour: int) -> datetime:
    """An hour of 2013-01-01, UTC."""
    return datetime(2013, 1, 1, hour, tzinfo=UTC)


def _seq(**overrides) -> SequenceFeatures:
    base = dict(
        source="hourly",
        series_key="origin",
        time="hour",
        frequency="hour",
        inputs=("n", "temp"),
        target="n",
        window=3,
        horizon=1,
        split=TimeSplit(validation_start="2013-01-01 04:00:00", test_start="2013-01-01 06:00:00"),
        fill={"n": 0.0},
    )
    return SequenceFeatures(**{**base, **overrides})


HOURLY = T.StructType(
    [
        T.StructField("origin", T.StringType()),
        T.StructField("hour", T.TimestampType()),
        T.StructField("n", T.DoubleType()),
        T.StructField("temp", T.DoubleType()),
    ]
)


def test_regular_grid_fills_gaps_with_explicit_rows(spark):
    df = spark.createDataFrame(
        [
            ("A", _h(0), 1.0, 30.0),
            ("A", _h(1), None, 31.0),  # a present row with a null: filled too
            ("A", _h(4), 4.0, None),  # hours 2 and 3 are missing
            ("B", _h(2), 7.0, 20.0),  # one row: a grid of one
        ],
        HOURLY,
    )
    got = regular_grid(df, _seq())
    expected = [
        ("A", _h(0), 1.0, 30.0),
        ("A", _h(1), 0.0, 31.0),
        ("A", _h(2), 0.0, None),
        ("A", _h(3), 0.0, None),
        ("A", _h(4), 4.0, None),
        ("B", _h(2), 7.0, 20.0),
    ]
    assertDataFrameEqual(got, spark.createDataFrame(expected, HOURLY))


def test_regular_grid_daily_dates(spark):
    schema = "origin string, day date, n double"
    df = spark.createDataFrame(
        [("A", date(2013, 2, 27), 1.0), ("A", date(2013, 3, 2), 2.0)], schema
    )
    got = regular_grid(df, _seq(time="day", frequency="day", inputs=("n",), fill={}))
    expected = [
        ("A", date(2013, 2, 27), 1.0),
        ("A", date(2013, 2, 28), None),
        ("A", date(2013, 3, 1), None),
        ("A", date(2013, 3, 2), 2.0),
    ]
    assertDataFrameEqual(got, spark.createDataFrame(expected, schema))


def test_scaling_stats_use_only_the_training_period(spark):
    # validation starts at 04:00: only hours 0..3 count; the huge later values must not.
    rows = [("A", _h(h), float(h), 10.0 if h % 2 else None) for h in range(4)]
    rows += [("A", _h(h), 1000.0, 1000.0) for h in range(4, 8)]
    rows += [("B", _h(0), 4.0, 20.0)]
    stats = scaling_stats(spark.createDataFrame(rows, HOURLY), _seq()).collect()
    assert len(stats) == 1
    n = [0.0, 1.0, 2.0, 3.0, 4.0]
    mean_n = sum(n) / len(n)
    std_n = (sum((v - mean_n) ** 2 for v in n) / len(n)) ** 0.5  # population stddev
    mean_t = (10.0 + 10.0 + 20.0) / 3
    std_t = (sum((v - mean_t) ** 2 for v in [10.0, 10.0, 20.0]) / 3) ** 0.5
    assert stats[0].asDict() == pytest.approx(
        {"n__mean": mean_n, "n__std": std_n, "temp__mean": mean_t, "temp__std": std_t}
    )
    assert stats[0]["n__mean"] == 2.0  # exactly, not approximately


def test_standardize_scales_and_turns_nulls_into_zero(spark):
    schema = "i int, a double, b double, c double"
    df = spark.createDataFrame(
        [(1, 4.0, 1.0, 5.0), (2, None, 3.0, None), (3, 0.0, None, 7.0)], schema
    )
    got = standardize(df, {"a": (2.0, 2.0), "b": (1.0, 0.0), "c": (5.0, float("nan"))})
    expected = [
        # zero or NaN std scales by 1, so a constant input does not become NaN or infinite
        (1, 4.0, 1.0, 5.0, 1.0, 0.0, 0.0),
        (2, None, 3.0, None, 0.0, 2.0, 0.0),
        (3, 0.0, None, 7.0, -1.0, 0.0, 2.0),
    ]
    expected_schema = f"{schema}, _s_a double, _s_b double, _s_c double"
    assertDataFrameEqual(got, spark.createDataFrame(expected, expected_schema))


SCALED = T.StructType(
    [
        T.StructField("origin", T.StringType()),
        T.StructField("hour", T.TimestampType()),
        T.StructField("n", T.DoubleType()),
        T.StructField("_s_n", T.DoubleType()),
        T.StructField("_s_temp", T.DoubleType()),
    ]
)
WINDOWS = T.StructType(
    [
        T.StructField("origin", T.StringType()),
        T.StructField("hour", T.TimestampType()),
        T.StructField("target_time", T.TimestampType()),
        T.StructField("x", T.ArrayType(T.FloatType(), False)),
        T.StructField("y", T.FloatType()),
        T.StructField("baseline_persistence", T.FloatType()),
        T.StructField("baseline_seasonal", T.FloatType()),
        T.StructField("split", T.StringType()),
    ]
)


def test_windows_exact_on_a_tiny_hourly_series(spark):
    # A: hours 0..7, target n = 10 + h except a missing target at hour 5; scaled inputs are
    # (h, -h) so every x is readable. B: hours 0..3 (one full window with a target).
    target = [10.0, 11.0, 12.0, 13.0, 14.0, None, 16.0, 17.0]
    rows = [("A", _h(h), target[h], float(h), -float(h)) for h in range(8)]
    rows += [("B", _h(h), 20.0 + h, 0.5 * h, 1.0) for h in range(4)]
    scaled = spark.createDataFrame(rows, SCALED).repartition(3)  # order must not matter
    got = windows(scaled, _seq())

    def x(*hours):
        return [v for h in hours for v in (float(h), -float(h))]

    expected = [
        # Windows ending at hours 0 and 1 are incomplete; the target of the window ending at 4
        # (hour 5) is null; the window ending at 7 has no target: all four are dropped.
        ("A", _h(2), _h(3), x(0, 1, 2), 13.0, 12.0, None, "train"),
        ("A", _h(3), _h(4), x(1, 2, 3), 14.0, 13.0, None, "validation"),
        ("A", _h(5), _h(6), x(3, 4, 5), 16.0, None, None, "test"),
        ("A", _h(6), _h(7), x(4, 5, 6), 17.0, 16.0, None, "test"),
        ("B", _h(2), _h(3), [0.0, 1.0, 0.5, 1.0, 1.0, 1.0], 23.0, 22.0, None, "train"),
    ]
    assertDataFrameEqual(got, spark.createDataFrame(expected, WINDOWS))


def test_windows_horizon_and_seasonal_baseline_daily(spark):
    # Daily: the season is 7 days, so the seasonal baseline of a target at day d is day d - 7.
    schema = "origin string, day date, n double, _s_n double"
    days = [date(2013, 1, 1 + d) for d in range(10)]
    df = spark.createDataFrame([("A", days[d], 100.0 + d, float(d)) for d in range(10)], schema)
    spec = _seq(
        time="day",
        frequency="day",
        inputs=("n",),
        window=2,
        horizon=2,
        split=TimeSplit(validation_start="2013-01-08", test_start="2013-01-10"),
    )
    got = windows(df, spec).orderBy("day")
    rows = got.collect()
    # Windows end at days 1..7 (two steps of history, a target two days later).
    assert [r["day"] for r in rows] == days[1:8]
    assert [r["target_time"] for r in rows] == days[3:10]
    assert [r["x"] for r in rows] == [[float(d - 1), float(d)] for d in range(1, 8)]
    assert [r["y"] for r in rows] == [100.0 + d + 2 for d in range(1, 8)]
    assert [r["baseline_persistence"] for r in rows] == [100.0 + d for d in range(1, 8)]
    assert [r["baseline_seasonal"] for r in rows] == [None] * 4 + [100.0, 101.0, 102.0]
    assert [r["split"] for r in rows] == ["train"] * 4 + ["validation"] * 2 + ["test"]


def test_sequence_pipeline_from_grid_to_windows(spark):
    # regular_grid -> scaling_stats -> standardize -> windows, as the stage chains them.
    df = spark.createDataFrame(
        [("A", _h(0), 2.0, 1.0), ("A", _h(1), 4.0, 3.0), ("A", _h(3), 6.0, None)], HOURLY
    )
    spec = _seq(window=2)
    grid = regular_grid(df, spec)
    row = scaling_stats(grid, spec).first()
    # Training: hours 0..3 (validation starts at 04:00); n = [2, 4, 0 (filled), 6], temp [1, 3].
    assert (row["n__mean"], row["n__std"]) == (3.0, 5.0**0.5)
    assert (row["temp__mean"], row["temp__std"]) == (2.0, 1.0)
    stats = {c: (row[f"{c}__mean"], row[f"{c}__std"]) for c in spec.inputs}
    got = windows(standardize(grid, stats), spec).orderBy("hour").collect()
    s = 5.0**0.5
    expected_x = [
        [(2 - 3) / s, -1.0, (4 - 3) / s, 1.0],
        [(4 - 3) / s, 1.0, (0 - 3) / s, 0.0],  # the gap: n filled with 0, temp -> 0.0 (mean)
    ]
    assert [r["hour"].timestamp() for r in got] == [_h(1).timestamp(), _h(2).timestamp()]
    assert [r["y"] for r in got] == [0.0, 6.0]
    for r, xs in zip(got, expected_x, strict=True):
        assert r["x"] == pytest.approx(xs, rel=1e-6)


IMAGE = T.StructType(
    [T.StructField("pixels", T.ArrayType(T.IntegerType())), T.StructField("label", T.IntegerType())]
)
IMG_SPEC = ImageFeatures(
    source="digits",
    column="pixels",
    shape=(1, 2, 2),
    label="label",
    max_value=16.0,
    split=FractionSplit(train=0.6, validation=0.2, test=0.2, seed=13),
)


def _images(spark, per_class=10, labels=(0, 1)):
    rows = [([i, 16 - i, label, 16], label) for label in labels for i in range(per_class)]
    return spark.createDataFrame(rows, IMAGE)


def test_image_features_scale_by_max_value(spark):
    df = spark.createDataFrame([([0, 8, 16, 4], 3), ([16, 16, 0, 1], 7)], IMAGE)
    got = image_features(df, IMG_SPEC)
    assert got.columns == ["id", "x", "y", "split"]
    assert got.schema["id"].dataType == T.LongType()
    assertDataFrameEqual(
        got.select("x", "y"),
        spark.createDataFrame(
            [([0.0, 0.5, 1.0, 0.25], 3), ([1.0, 1.0, 0.0, 0.0625], 7)],
            T.StructType(
                [
                    T.StructField("x", T.ArrayType(T.FloatType())),
                    T.StructField("y", T.IntegerType()),
                ]
            ),
        ),
    )
    ids = [r["id"] for r in got.collect()]
    assert len(set(ids)) == 2


def test_fraction_split_stratified_and_deterministic(spark):
    df = _images(spark, per_class=10, labels=(0, 1, 2))
    first = image_features(df, IMG_SPEC)
    rows = first.select("id", "y", "split").collect()
    per_class = Counter((r["y"], r["split"]) for r in rows)
    for label in (0, 1, 2):
        assert (
            per_class[(label, "train")],
            per_class[(label, "validation")],
            per_class[(label, "test")],
        ) == (6, 2, 2)
    # Same split on a rerun and whatever the partitioning.
    again = image_features(df.repartition(4, F.rand(seed=1)), IMG_SPEC)
    assertDataFrameEqual(again.select("id", "y", "split"), rows)
    # Another seed gives another assignment (with the same proportions).
    other_seed = ImageFeatures(
        **{**IMG_SPEC.__dict__, "split": FractionSplit(0.6, 0.2, 0.2, seed=7)}
    )
    other = image_features(df, other_seed).select("x", "split").collect()
    ours = {tuple(r["x"]): r["split"] for r in first.select("x", "split").collect()}
    assert {tuple(r["x"]): r["split"] for r in other} != ours
    assert Counter(r["split"] for r in other) == {"train": 18, "validation": 6, "test": 6}


def test_fraction_split_not_stratified(spark):
    spec = ImageFeatures(
        **{**IMG_SPEC.__dict__, "split": FractionSplit(0.6, 0.2, 0.2, seed=13, stratify=False)}
    )
    # 20 rows ranked together: percent_rank < 0.6 for 12, < 0.8 for 4 more, 4 test.
    got = image_features(_images(spark, per_class=10), spec)
    assert Counter(r["split"] for r in got.collect()) == {"train": 12, "validation": 4, "test": 4}
    # fraction_split on its own needs only the id and y columns.
    ids = spark.createDataFrame([(i, i % 2) for i in range(5)], "id bigint, y int")
    splits = ids.withColumn("split", fraction_split(spec.split)).collect()
    assert Counter(r["split"] for r in splits) == {"train": 3, "validation": 1, "test": 1}


def test_shape_rule_flags_wrong_sizes(spark):
    df = spark.createDataFrame(
        [(1, [1, 2, 3, 4]), (2, [1, 2, 3]), (3, [1, 2, 3, 4, 5]), (4, []), (5, None)],
        "i int, pixels array<int>",
    )
    got = mark_violations(df, [shape_rule(IMG_SPEC)]).select(
        "i", F.col(f"{VIOLATION}.rule").alias("rule"), F.col(f"{VIOLATION}.reason").alias("reason")
    )
    expected = [
        (1, None, None),
        (2, "shape", "pixels has 3 values, shape (1, 2, 2) needs 4"),
        (3, "shape", "pixels has 5 values, shape (1, 2, 2) needs 4"),
        (4, "shape", "pixels has 0 values, shape (1, 2, 2) needs 4"),
        (5, "shape", "pixels is null, shape (1, 2, 2) needs 4"),
    ]
    assertDataFrameEqual(got, spark.createDataFrame(expected, "i int, rule string, reason string"))


def test_calendar_features_are_sin_cos_of_local_time(spark):
    spec = _seq(calendar=("hour_of_day", "day_of_week"), timezone="America/New_York")
    assert step_features(spec) == [
        "n", "temp", "hour_of_day_sin", "hour_of_day_cos", "day_of_week_sin", "day_of_week_cos",
    ]  # fmt: skip
    # 05:00 UTC on Tue 2013-01-01 is midnight in New York (EST); 11:00 UTC is 06:00 there.
    df = spark.createDataFrame([("a", _h(5), 1.0, 2.0), ("a", _h(11), 1.0, 2.0)], HOURLY)
    rows = add_calendar(df, spec).orderBy("hour").collect()
    midnight, six = rows
    assert midnight["_s_hour_of_day_sin"] == pytest.approx(0.0, abs=1e-12)
    assert midnight["_s_hour_of_day_cos"] == pytest.approx(1.0)
    assert six["_s_hour_of_day_sin"] == pytest.approx(1.0)  # a quarter of the day
    assert six["_s_hour_of_day_cos"] == pytest.approx(0.0, abs=1e-12)
    tuesday = 2 * 3.141592653589793 * 2 / 7
    assert midnight["_s_day_of_week_sin"] == pytest.approx(math.sin(tuesday))


def test_calendar_features_extend_each_window_step(spark):
    spec = _seq(calendar=("hour_of_day",))
    df = spark.createDataFrame([("a", _h(h), float(h), 0.0) for h in range(5)], HOURLY)
    scaled = add_calendar(standardize(df, {"n": (0.0, 1.0), "temp": (0.0, 1.0)}), spec)
    first = windows(scaled, spec).orderBy("hour").first()
    assert len(first["x"]) == 3 * 4  # 3 steps x (2 inputs + sin + cos)
    assert first["x"][:4] == pytest.approx([0.0, 0.0, 0.0, 1.0])  # hour 0: n 0, temp 0, sin, cos


def test_one_series_without_a_key_monthly_with_a_yearly_seasonal_baseline(spark):
    # No series_key: the whole table is one series. Monthly grid with a missing month (2012-04),
    # the seasonal baseline one year (12 steps) before the target, month-of-year calendar.
    months = [date(2012 + (m // 12), m % 12 + 1, 1) for m in range(16)]
    rows = [(months[m], 100.0 + m) for m in range(16) if m != 3]
    df = spark.createDataFrame(rows, "month date, n double")
    spec = _seq(
        series_key=None, time="month", frequency="month", inputs=("n",), window=2,
        calendar=("month_of_year",), fill={},
        split=TimeSplit(validation_start="2013-02-01", test_start="2013-04-01"),
    )  # fmt: skip
    grid = regular_grid(df, spec)
    assert grid.columns == ["month", "n"]
    assert [r["month"] for r in grid.orderBy("month").collect()] == months  # the gap is a row
    scaled = add_calendar(grid.withColumn("_s_n", F.coalesce(F.col("n"), F.lit(0.0))), spec)
    got = windows(scaled, spec).orderBy("month").collect()
    assert got[0].asDict().keys() >= {"month", "target_time", "x", "y"} and "origin" not in got[0]
    by_target = {r["target_time"]: r for r in got}
    # Target 2013-01 (step 12): seasonal = 2012-01 (step 0) = 100; persistence = 2012-12 = 111.
    jan = by_target[date(2013, 1, 1)]
    assert (jan["y"], jan["baseline_persistence"], jan["baseline_seasonal"]) == (112, 111, 100)
    # Its window is November and December 2012, each step (n, month_of_year sin, cos).
    cycle = [f(2 * math.pi * m / 12) for m in (10, 11) for f in (math.sin, math.cos)]
    expected = [110.0, *cycle[:2], 111.0, *cycle[2:]]
    assert jan["x"] == pytest.approx(expected, abs=1e-6)
    assert [r["split"] for r in got][-3:] == ["validation", "validation", "test"]


@pytest.mark.parametrize(
    ("frequency", "start", "step", "season"),
    [
        ("minute", datetime(2013, 1, 1, tzinfo=UTC), {"minutes": 1}, 1440),
        ("week", datetime(2013, 1, 7, tzinfo=UTC), {"days": 7}, 52),
    ],
)
def test_every_frequency_builds_its_grid_and_default_season(spark, frequency, start, step, season):
    from datetime import timedelta

    times = [start + timedelta(**step) * i for i in (0, 1, 3)]  # step 2 missing
    df = spark.createDataFrame(
        [(t, float(i)) for i, t in enumerate(times)], "t timestamp, n double"
    )
    spec = _seq(series_key=None, time="t", frequency=frequency, inputs=("n",), fill={})
    grid = regular_grid(df, spec).orderBy("t").collect()
    naive = start.replace(tzinfo=None)  # Spark hands timestamps back in the session zone, UTC
    assert [r["t"] for r in grid] == [naive + timedelta(**step) * i for i in range(4)]
    assert spec.period == season and _seq(frequency=frequency, season=3).period == 3


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"frequency": "month", "calendar": ("day_of_week",)},
            "calendar: day_of_week does not vary on a month grid; expected some of month_of_year",
        ),
        ({"season": 0}, "season: expected >= 1 steps, found 0"),
    ],
)
def test_sequence_settings_that_cannot_work_are_refused(overrides, message):
    with pytest.raises(ValueError) as e:
        _seq(**overrides)
    assert str(e.value) == message
