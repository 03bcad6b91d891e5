"""An aggregate recomputed over a time range: the changed rows' buckets bound the range, and the
aggregate of the inputs' rows in it equals the full aggregate's rows in it, the join included.
"""

from __future__ import annotations

from datetime import date

from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from deepspark.config.pipeline import AggregateConfig, MetricSpec, TimeBucket
from deepspark.etl.aggregate import bucket_range, build_aggregate, range_predicate, within
from tests.unit.test_aggregate import FLIGHT_ROWS, FLIGHTS, WEATHER, WEATHER_ROWS, _join, _utc

HOURLY = AggregateConfig(
    source="flights",
    keys=("origin",),
    time=TimeBucket(column="ts", unit="hour", output="hour"),
    metrics={"n": MetricSpec(fn="count"), "mean_delay": MetricSpec(fn="mean", column="delay")},
    join=_join("full"),  # weather hours with no flights are rows too
)
DAILY = AggregateConfig(
    source="flights",
    keys=(),
    time=TimeBucket(column="ts", unit="day", output="date", timezone="America/New_York"),
    metrics={"n": MetricSpec(fn="count")},
)
MICROS_PER_HOUR = 3600 * 10**6


def _hour(h: int) -> int:
    """2013-01-01 h:00 UTC as unix_micros."""
    return int(_utc(2013, 1, 1, h).timestamp()) * 10**6


def test_the_changed_rows_buckets_bound_the_range(spark):
    changed = spark.createDataFrame([FLIGHT_ROWS[1], FLIGHT_ROWS[4]], FLIGHTS)  # 5:59, 6:00
    weather = spark.createDataFrame([WEATHER_ROWS[1]], WEATHER)  # 7:00, no flights
    assert bucket_range(HOURLY, changed, None).first().asDict() == {
        "lo": _hour(5),
        "hi": _hour(6),
    }
    assert bucket_range(HOURLY, changed, weather).first().asDict() == {
        "lo": _hour(5),
        "hi": _hour(7),
    }
    none = bucket_range(HOURLY, changed.limit(0), weather.limit(0)).first()
    assert none.asDict() == {"lo": None, "hi": None}
    # A day is a calendar date in its timezone: 04:30 UTC on Jan 1 is still Dec 31 in New York.
    late = spark.createDataFrame([("EWR", _utc(2013, 1, 1, 4, 30), 1.0, 1)], FLIGHTS)
    days = bucket_range(DAILY, changed.unionByName(late), None).first()
    assert (days["lo"], days["hi"]) == (15705, 15706)  # unix_date of 2012-12-31, 2013-01-01


def test_the_range_recomputed_equals_the_full_aggregate_in_it(spark):
    flights = spark.createDataFrame(FLIGHT_ROWS, FLIGHTS)
    tables = {"weather": spark.createDataFrame(WEATHER_ROWS, WEATHER)}
    full = build_aggregate(flights, HOURLY, tables)
    for lo, hi in [(5, 5), (6, 7), (5, 7), (8, 9)]:
        lo_us, hi_us = _hour(lo), _hour(hi)
        part = build_aggregate(
            within(flights, HOURLY, lo_us, hi_us),
            HOURLY,
            {"weather": within(tables["weather"], HOURLY, lo_us, hi_us, joined=True)},
        )
        predicate = range_predicate("hour", "hour", lo_us, hi_us)
        assertDataFrameEqual(part, full.filter(F.expr(predicate)))
    assert predicate == f"unix_micros(`hour`) BETWEEN {_hour(8)} AND {_hour(8) + MICROS_PER_HOUR}"


def test_a_daily_range_is_of_calendar_dates(spark):
    flights = spark.createDataFrame(FLIGHT_ROWS, FLIGHTS)
    full = build_aggregate(flights, DAILY, {})
    assertDataFrameEqual(full, spark.createDataFrame([(date(2013, 1, 1), 8)], "date date, n long"))
    predicate = range_predicate("date", "day", 15706, 15706)
    assert predicate == "unix_date(`date`) BETWEEN 15706 AND 15706"
    part = build_aggregate(within(flights, DAILY, 15706, 15706), DAILY, {})
    assertDataFrameEqual(part, full.filter(F.expr(predicate)))
    assert within(flights, DAILY, 15705, 15705).count() == 0
