"""The pure checks: KS from percentiles, gaps in a time grid, expectations, anomalies."""

from __future__ import annotations

import numpy as np
import pytest

from deepspark.checks import (
    ColumnStats,
    TableStats,
    anomalies,
    expectations,
    ks_distance,
    missing_units,
    total_variation,
)
from deepspark.config.checks import (
    Bounds,
    ColumnExpectation,
    TableChecks,
    Thresholds,
)


def pct(values) -> tuple[float, ...]:  # noqa: ANN001
    return tuple(float(q) for q in np.percentile(values, range(101), method="inverted_cdf"))


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        (np.arange(1000), np.arange(1000), 0.0),  # the same distribution
        (np.arange(1000), np.arange(1000) + 5000, 1.0),  # no overlap at all
        (np.arange(1000), np.arange(1000) + 500, 0.5),  # half of it shifted past the other
        (np.zeros(1000), np.r_[np.zeros(700), np.ones(300)], 0.3),  # a point mass shrinks
    ],
)
def test_ks_distance_from_percentiles(a, b, expected):
    assert ks_distance(pct(a), pct(b)) == pytest.approx(expected, abs=0.011)


def test_ks_distance_is_close_to_the_exact_one_on_samples():
    rng = np.random.default_rng(0)
    a, b = rng.normal(0, 1, 20_000), rng.normal(0.5, 1, 20_000)
    grid = np.sort(np.r_[a, b])
    exact = np.max(np.abs(np.searchsorted(np.sort(a), grid, "right") / len(a)
                          - np.searchsorted(np.sort(b), grid, "right") / len(b)))  # fmt: skip
    assert ks_distance(pct(a), pct(b)) == pytest.approx(exact, abs=0.011)


def test_total_variation_of_hour_histograms():
    day = [0] * 6 + [10] * 12 + [0] * 6
    shifted = [0] * 11 + [10] * 12 + [0]  # five hours later
    assert total_variation(day, day) == 0
    assert total_variation(day, shifted) == pytest.approx(5 / 12)


def stats(**kw) -> TableStats:  # noqa: ANN003
    base = {"table": "silver/t", "rows": 100, "columns": {}}
    return TableStats(**{**base, **kw})


def test_missing_units_per_series():
    day = 19783  # 2024-03-01: days since 1970, as the observed time grid holds them
    s = stats(
        time_column="ts",
        time_unit="day",
        units=tuple(
            f"{k}|{day + d}" for k, d in [("A", 0), ("A", 2), ("B", 0), ("B", 1), ("B", 2)]
        ),
    )
    assert missing_units(s) == ["A 2024-03-02"]
    hour = day * 24 + 22
    hourly = stats(time_column="ts", time_unit="hour", units=(f"{hour}", f"{hour + 3}"))
    assert missing_units(hourly) == ["2024-03-01T23", "2024-03-02T00"]


def col(**kw) -> ColumnStats:  # noqa: ANN003
    return ColumnStats(**{"type": "double", "nulls": 0, **kw})


def test_expectations_say_what_was_expected_and_found():
    s = stats(
        columns={"temp": col(nulls=30, mean=71.5), "origin": col(type="string")},
        distinct={"origin": 2},
        outside={"origin": (4, "XYZ")},
    )
    spec = TableChecks(
        rows=Bounds(min=1000),
        columns={
            "temp": ColumnExpectation(max_null_fraction=0.1, mean=Bounds(max=60), severity="warn"),
            "origin": ColumnExpectation(allowed=("EWR", "JFK"), min_distinct=3),
            "gone": ColumnExpectation(max_null_fraction=0),
        },
    )
    assert [(f.check, f.severity, f.message) for f in expectations(s, spec)] == [
        ("expect.rows", "fail", "100 rows, expected [1000, inf]"),
        ("expect.nulls", "warn", "temp: 30.0% null, expected at most 10.0%"),
        ("expect.mean", "warn", "temp: mean 71.5, expected [-inf, 60]"),
        ("expect.distinct", "fail", "origin: about 2 distinct values, expected at least 3"),
        ("expect.allowed", "fail", "origin: 4 values outside the allowed set, e.g. 'XYZ'"),
        ("expect.column", "fail", "gone: no such column with statistics"),
    ]


def test_anomalies_against_the_last_run():
    normal = pct(np.arange(100))
    ref = stats(
        columns={
            "a": col(percentiles=normal, stddev=29.0, min="0", max="99"),
            "b": col(nulls=5, min="1", max="9"),
            "c": col(min="1", max="2"),
            "gone": col(),
        },
        categories={"station": ("A", "B")},
        hours=tuple([0] * 6 + [10] * 12 + [0] * 6),
        time_column="ts",
    )
    now = stats(
        rows=40,
        columns={
            "a": col(percentiles=pct(np.arange(100) + 1000), stddev=29.0, min="1000", max="1099"),
            "b": col(nulls=40, min=None, max=None),
            "c": col(nulls=30, min="7", max="7"),
        },
        categories={"station": ("A", "B", "C")},
        hours=tuple([0] * 11 + [10] * 12 + [0]),
        time_column="ts",
    )
    th = Thresholds(severity={"drift": "fail"})
    found = [(f.check, f.column, f.severity, f.message) for f in anomalies(now, ref,
             TableChecks(), th)]  # fmt: skip
    assert found == [
        ("all_null", "b", "warn", "b: every value is null (40 rows)"),
        ("schema", None, "warn", "schema changed since the last run: removed gone"),
        ("rows", None, "warn", "40 rows, 0.40x the last run's 100 (tolerance +-50%)"),
        ("drift", "a", "fail", "a: distribution drifted (KS 1.00 > 0.7; median 49 -> 1049)"),
        ("nulls", "c", "warn", "c: null fraction 0.0% -> 75.0%"),
        ("constant", "c", "warn", "c: every value is 7 (it varied before)"),
        ("categories", "station", "warn", "station: new value(s) C"),
        ("hours", "ts", "warn", "ts: hour-of-day distribution moved (total variation 0.42 > 0.2; "
                                "busiest hour 6 -> 11)"),
    ]  # fmt: skip
    # A first run has nothing to compare with: only what needs no reference.
    assert [f.check for f in anomalies(now, None, TableChecks(), th)] == ["all_null"]


def test_stats_round_trip_through_json():
    s = stats(
        columns={"a": col(percentiles=(1.0, 2.0), mean=1.5)},
        categories={"k": ("x",)},
        outside={"k": (1, None)},
        units=("19783",),
        hours=(1,) * 24,
    )
    assert TableStats.from_json(s.to_json()) == s


def test_categories_are_remembered_across_runs():
    ref = stats(categories={"carrier": ("AA", "OO")})
    now = stats(categories={"carrier": ("AA", "UA")})
    assert now.remembering(ref).categories == {"carrier": ("AA", "OO", "UA")}


def test_observed_statistics_from_footers_or_from_the_aggregate_agree(spark, tmp_path):
    # Local tables take nulls, min and max from the Parquet footers; on object stores the same
    # aggregate counts them. Both must give the same statistics.
    from pyspark.sql import Observation

    from deepspark.data import to_url
    from deepspark.data.arrow import footer_stats
    from deepspark.etl.table_stats import StatsRequest, profiled, table_stats

    df = spark.createDataFrame(
        [(1, 2.5, "a"), (2, None, "b"), (3, float("nan"), None), (4, 1.0, "a")],
        "id int, x double, s string",
    )
    columns = [(f.name, f.dataType.simpleString(), f.dataType.typeName() != "string")
               for f in profiled(df.schema)]  # fmt: skip
    got = {}
    for counts in (False, True):
        seen = Observation()
        stats = table_stats(df.schema, StatsRequest(counts=counts)).alias("s")
        path = tmp_path / f"t{counts}"
        df.observe(seen, stats).write.parquet(str(path))
        footers = {} if counts else footer_stats(to_url(str(path)))
        got[counts] = TableStats.observed("t", seen.get["s"], columns, footers)
    assert got[False] == got[True]
    assert got[True].columns["x"] == ColumnStats(
        type="double", nulls=1, nan=1, min="1.0", max="NaN", mean=1.75, stddev=0.75,
        percentiles=(1.0,) * 51 + (2.5,) * 50,
    )  # fmt: skip
    assert got[True].columns["s"] == ColumnStats(type="string", nulls=1, min="a", max="b")
