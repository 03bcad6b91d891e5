"""Declared aggregations: time buckets, exact native metrics, and the enrichment join."""

from __future__ import annotations

from datetime import UTC, date, datetime

from pyspark.sql import types as T
from pyspark.testing import assertDataFrameEqual

from deepspark.config.pipeline import AggregateConfig, JoinSpec, MetricSpec, TimeBucket
from deepspark.etl.aggregate import aggregate, build_aggregate, join_enrich, time_bucket


def _utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


FLIGHTS = T.StructType(
    [
        T.StructField("origin", T.StringType()),
        T.StructField("ts", T.TimestampType()),
        T.StructField("delay", T.DoubleType()),
        T.StructField("distance", T.IntegerType()),
    ]
)
FLIGHT_ROWS = [
    ("EWR", _utc(2013, 1, 1, 5, 0), 1.0, 100),
    ("EWR", _utc(2013, 1, 1, 5, 59, 59), 4.0, 200),
    ("EWR", _utc(2013, 1, 1, 5, 30), 3.0, 300),
    ("EWR", _utc(2013, 1, 1, 5, 10), 2.0, 400),
    ("EWR", _utc(2013, 1, 1, 6, 0), 16.0, 500),
    ("JFK", _utc(2013, 1, 1, 5, 1), 20.0, 10),
    ("JFK", _utc(2013, 1, 1, 5, 2), None, 20),
    ("JFK", _utc(2013, 1, 1, 5, 3), 30.0, 30),
]


def test_time_bucket_hour(spark):
    df = spark.createDataFrame(
        [(1, _utc(2013, 1, 1, 5, 17, 42)), (2, _utc(2013, 1, 1, 23, 59, 59)), (3, None)],
        "i int, ts timestamp",
    )
    got = time_bucket(df, TimeBucket(column="ts", unit="hour", output="hour")).select("i", "hour")
    expected = [(1, _utc(2013, 1, 1, 5)), (2, _utc(2013, 1, 1, 23)), (3, None)]
    assertDataFrameEqual(got, spark.createDataFrame(expected, "i int, hour timestamp"))


def test_time_bucket_day_in_a_timezone(spark):
    df = spark.createDataFrame(
        [
            (1, _utc(2013, 1, 2, 3, 0)),  # 22:00 on Jan 1 in New York (EST)
            (2, _utc(2013, 1, 2, 5, 0)),  # 00:00 on Jan 2 in New York
            (3, _utc(2013, 7, 2, 3, 59)),  # 23:59 on Jul 1 (EDT)
            (4, _utc(2013, 7, 2, 4, 0)),  # 00:00 on Jul 2
        ],
        "i int, ts timestamp",
    )
    ny = TimeBucket(column="ts", unit="day", output="date", timezone="America/New_York")
    utc = TimeBucket(column="ts", unit="day", output="utc_date")
    got = time_bucket(time_bucket(df, ny), utc).select("i", "date", "utc_date")
    expected = [
        (1, date(2013, 1, 1), date(2013, 1, 2)),
        (2, date(2013, 1, 2), date(2013, 1, 2)),
        (3, date(2013, 7, 1), date(2013, 7, 2)),
        (4, date(2013, 7, 2), date(2013, 7, 2)),
    ]
    assertDataFrameEqual(got, spark.createDataFrame(expected, "i int, date date, utc_date date"))


SPEC = AggregateConfig(
    source="flights",
    keys=("origin",),
    time=TimeBucket(column="ts", unit="hour", output="hour"),
    metrics={
        "n": MetricSpec(fn="count"),
        "n_late": MetricSpec(fn="count", where="delay > 15"),
        "late": MetricSpec(fn="count_if", where="delay > 15"),
        "mean_delay": MetricSpec(fn="mean", column="delay"),
        "p50_delay": MetricSpec(fn="percentile", column="delay", q=0.5),
        "p0_delay": MetricSpec(fn="percentile", column="delay", q=0.0),
        "total_distance": MetricSpec(fn="sum", column="distance"),
        "mean_late_delay": MetricSpec(fn="mean", column="delay", where="delay > 15"),
        "max_delay": MetricSpec(fn="max", column="delay"),
        "min_distance": MetricSpec(fn="min", column="distance"),
    },
)
AGG_SCHEMA = T.StructType(
    [
        T.StructField("origin", T.StringType()),
        T.StructField("hour", T.TimestampType()),
        T.StructField("n", T.LongType()),
        T.StructField("n_late", T.LongType()),
        T.StructField("late", T.LongType()),
        T.StructField("mean_delay", T.DoubleType()),
        T.StructField("p50_delay", T.DoubleType()),
        T.StructField("p0_delay", T.DoubleType()),
        T.StructField("total_distance", T.LongType()),
        T.StructField("mean_late_delay", T.DoubleType()),
        T.StructField("max_delay", T.DoubleType()),
        T.StructField("min_distance", T.IntegerType()),
    ]
)
AGG_ROWS = [
    ("EWR", _utc(2013, 1, 1, 5), 4, 0, 0, 2.5, 2.5, 1.0, 1000, None, 4.0, 100),
    ("EWR", _utc(2013, 1, 1, 6), 1, 1, 1, 16.0, 16.0, 16.0, 500, 16.0, 16.0, 500),
    ("JFK", _utc(2013, 1, 1, 5), 3, 2, 2, 25.0, 25.0, 20.0, 60, 25.0, 30.0, 10),
]


def test_aggregate_metrics(spark):
    got = aggregate(spark.createDataFrame(FLIGHT_ROWS, FLIGHTS), SPEC)
    assertDataFrameEqual(got, spark.createDataFrame(AGG_ROWS, AGG_SCHEMA))
    # The percentile is exact (interpolated), not approximate: of [1, 2, 3, 4] at 0.5 it is 2.5.
    ewr5 = got.filter("origin = 'EWR' AND hour = '2013-01-01 05:00:00'").first()
    assert ewr5["p50_delay"] == 2.5
    assert ewr5["mean_delay"] == 2.5


def test_aggregate_without_time_bucket(spark):
    spec = AggregateConfig(
        source="flights",
        keys=("origin",),
        metrics={"n": MetricSpec(fn="count"), "sd": MetricSpec(fn="stddev", column="delay")},
    )
    got = aggregate(spark.createDataFrame(FLIGHT_ROWS, FLIGHTS), spec)
    # Sample stddev of [1, 4, 3, 2, 16] and of [20, 30] (the null is skipped).
    sd_ewr = (sum((x - 5.2) ** 2 for x in [1, 4, 3, 2, 16]) / 4) ** 0.5
    sd_jfk = (2 * 5.0**2 / 1) ** 0.5
    expected = [("EWR", 5, sd_ewr), ("JFK", 3, sd_jfk)]
    assertDataFrameEqual(got, spark.createDataFrame(expected, "origin string, n bigint, sd double"))


WEATHER = T.StructType(
    [
        T.StructField("station", T.StringType()),
        T.StructField("time_hour", T.TimestampType()),
        T.StructField("temp", T.DoubleType()),
        T.StructField("wind", T.DoubleType()),
    ]
)
WEATHER_ROWS = [
    ("EWR", _utc(2013, 1, 1, 5), 39.0, 10.0),
    ("EWR", _utc(2013, 1, 1, 7), 40.0, 11.0),  # no flights that hour
    ("LGA", _utc(2013, 1, 1, 5), 38.0, 12.0),  # no flights at LGA
    ("JFK", _utc(2013, 1, 1, 5), 37.0, 13.0),
]
GRAIN = T.StructType(
    [
        T.StructField("origin", T.StringType()),
        T.StructField("hour", T.TimestampType()),
        T.StructField("n", T.LongType()),
    ]
)
GRAIN_ROWS = [
    ("EWR", _utc(2013, 1, 1, 5), 4),
    ("EWR", _utc(2013, 1, 1, 6), 1),  # no weather that hour
    ("JFK", _utc(2013, 1, 1, 5), 3),
]


def _join(how: str) -> JoinSpec:
    return JoinSpec(
        source="weather",
        match={"origin": "station", "hour": "time_hour"},
        how=how,
        columns=("temp",),
    )


def test_join_enrich_full_coalesces_keys(spark):
    agg = spark.createDataFrame(GRAIN_ROWS, GRAIN)
    weather = spark.createDataFrame(WEATHER_ROWS, WEATHER)
    got = join_enrich(agg, weather, _join("full"))
    expected = [
        ("EWR", _utc(2013, 1, 1, 5), 4, 39.0),
        ("EWR", _utc(2013, 1, 1, 6), 1, None),
        ("EWR", _utc(2013, 1, 1, 7), None, 40.0),
        ("LGA", _utc(2013, 1, 1, 5), None, 38.0),
        ("JFK", _utc(2013, 1, 1, 5), 3, 37.0),
    ]
    schema = T.StructType([*GRAIN.fields, T.StructField("temp", T.DoubleType())])
    # Grain rows from either side only, keys never null.
    assertDataFrameEqual(got, spark.createDataFrame(expected, schema))


def test_join_enrich_left_and_inner(spark):
    agg = spark.createDataFrame(GRAIN_ROWS, GRAIN)
    weather = spark.createDataFrame(WEATHER_ROWS, WEATHER)
    schema = T.StructType([*GRAIN.fields, T.StructField("temp", T.DoubleType())])
    left = [
        ("EWR", _utc(2013, 1, 1, 5), 4, 39.0),
        ("EWR", _utc(2013, 1, 1, 6), 1, None),
        ("JFK", _utc(2013, 1, 1, 5), 3, 37.0),
    ]
    assertDataFrameEqual(
        join_enrich(agg, weather, _join("left")), spark.createDataFrame(left, schema)
    )
    inner = [left[0], left[2]]
    assertDataFrameEqual(
        join_enrich(agg, weather, _join("inner")), spark.createDataFrame(inner, schema)
    )


def test_build_aggregate_joins_and_sorts_by_grain(spark):
    spec = AggregateConfig(
        source="flights",
        keys=("origin",),
        time=TimeBucket(column="ts", unit="hour", output="hour"),
        metrics={"n": MetricSpec(fn="count")},
        join=_join("full"),
    )
    tables = {"weather": spark.createDataFrame(WEATHER_ROWS, WEATHER)}
    got = build_aggregate(spark.createDataFrame(FLIGHT_ROWS, FLIGHTS), spec, tables)
    expected = [
        ("EWR", _utc(2013, 1, 1, 5), 4, 39.0),
        ("EWR", _utc(2013, 1, 1, 6), 1, None),
        ("EWR", _utc(2013, 1, 1, 7), None, 40.0),
        ("JFK", _utc(2013, 1, 1, 5), 3, 37.0),
        ("LGA", _utc(2013, 1, 1, 5), None, 38.0),
    ]
    schema = T.StructType([*GRAIN.fields, T.StructField("temp", T.DoubleType())])
    assertDataFrameEqual(got, spark.createDataFrame(expected, schema), checkRowOrder=True)
