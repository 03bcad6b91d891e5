"""The profile stage: exact statistics on tiny tables, and the files + MLflow run it produces."""

from __future__ import annotations

import json
import math

import pytest
from pyspark.sql import types as T
from pyspark.testing import assertDataFrameEqual

from deepspark.etl.profile import (
    DESCRIBE_SCHEMA,
    bin_range,
    bounded_sample,
    describe,
    histogram,
    histograms,
    line_series,
)

MIXED_SCHEMA = T.StructType(
    [
        T.StructField("n", T.IntegerType()),
        T.StructField("x", T.DoubleType()),
        T.StructField("s", T.StringType()),
        T.StructField("a", T.ArrayType(T.IntegerType())),
        T.StructField("m", T.MapType(T.StringType(), T.IntegerType())),
    ]
)


@pytest.fixture
def mixed(spark):
    rows = [
        (1, 0.5, "a", [1, 2], {"k": 1}),
        (2, 0.5, "b", [3], None),
        (3, 0.5, "b", None, None),
        (None, 4.5, None, [], {}),
    ]
    return spark.createDataFrame(rows, MIXED_SCHEMA)


def test_describe_is_exact_on_small_data(spark, mixed):
    # n: mean 2, sample stddev 1; x: mean 1.5, squared deviations 1+1+1+9 -> stddev sqrt(12/3) = 2.
    expected = spark.createDataFrame(
        [
            ("n", "int", 3, 1, 3, "1", "3", 2.0, 1.0, 1.0, 2.0, 3.0),
            ("x", "double", 4, 0, 2, "0.5", "4.5", 1.5, 2.0, 0.5, 0.5, 0.5),
            ("s", "string", 3, 1, 2, "a", "b", None, None, None, None, None),
            ("a", "array<int>", 3, 1, None, None, None, None, None, None, None, None),
            ("m", "map<string,int>", 2, 2, None, None, None, None, None, None, None, None),
        ],
        DESCRIBE_SCHEMA,
    )
    result = describe(mixed)
    assert result.schema == DESCRIBE_SCHEMA
    assertDataFrameEqual(result, expected, checkRowOrder=True)


def test_describe_is_one_aggregation(mixed):
    plan = describe(mixed)._jdf.queryExecution().optimizedPlan().toString()
    assert plan.count("Aggregate [") == 1 and "Join" not in plan


def test_histogram_counts_and_edges(spark):
    df = spark.createDataFrame([(v,) for v in (0, 1, 2, 5, 10, None, 11, -1)], "v int")
    expected = spark.createDataFrame(
        [(0, 0.0, 2.0, 2), (1, 2.0, 4.0, 1), (2, 4.0, 6.0, 1), (3, 6.0, 8.0, 0), (4, 8.0, 10.0, 1)],
        "bin int, lo double, hi double, count long",
    )
    # 10 (the max) lands in the last bin; -1, 11 (outside) and null are not counted.
    assertDataFrameEqual(histogram(df, "v", 5, 0, 10), expected, checkRowOrder=True)


def test_histograms_one_pass_per_column_ranges(spark):
    df = spark.createDataFrame([(7, 1.0), (7, 2.0)], "c int, d double")
    specs = {"c": bin_range(T.IntegerType(), 7, 7, 30), "d": bin_range(T.DoubleType(), 1, 2, 2)}
    out = histograms(df, specs).collect()
    assert [(r.column, r.bin, r.lo, r.hi, r["count"]) for r in out] == [
        ("c", 0, 6.5, 7.5, 2),
        ("d", 0, 1.0, 1.5, 1),
        ("d", 1, 1.5, 2.0, 1),
    ]


def test_bin_range_puts_integers_inside_bins():
    assert bin_range(T.IntegerType(), 1, 12, 30) == (0.5, 12.5, 12)
    assert bin_range(T.IntegerType(), 1, 31, 30) == (0.5, 32.5, 16)
    assert bin_range(T.LongType(), 1, 2400, 30) == (0.5, 2400.5, 30)
    assert bin_range(T.ShortType(), 5, 5, 30) == (4.5, 5.5, 1)
    assert bin_range(T.DoubleType(), 1, 12, 30) == (1.0, 12.0, 30)
    assert bin_range(T.DoubleType(), 3.0, 3.0, 30) == (2.5, 3.5, 1)
    with pytest.raises(ValueError):
        bin_range(T.DoubleType(), 2, 1, 30)


def test_bounded_sample_is_bounded_and_seeded(spark):
    df = spark.range(2_000).repartition(2, "id")
    small = bounded_sample(df, 5_000, 2_000)
    assert small is df
    first = sorted(r.id for r in bounded_sample(df, 100, 2_000, seed=7).collect())
    again = sorted(r.id for r in bounded_sample(df, 100, 2_000, seed=7).collect())
    assert len(first) == 100 and first == again


def test_line_series_means_per_group(spark):
    df = spark.createDataFrame(
        [
            ("a", 1, 10.0),
            ("a", 1, 20.0),
            ("a", 2, 5.0),
            ("b", 1, None),
            ("b", 1, 4.0),
            ("b", None, 9.0),
        ],
        "city string, hour int, delay double",
    )
    expected = spark.createDataFrame(
        [("a", 1, 15.0), ("a", 2, 5.0), ("b", 1, 4.0)], "by string, x int, y_mean double"
    )
    assertDataFrameEqual(line_series(df, "hour", "delay", "city"), expected, checkRowOrder=True)
    single = line_series(df, "hour * 10", "delay").collect()
    assert [(r.by, r.x, r.y_mean) for r in single] == [(None, 10, 34.0 / 3), (None, 20, 5.0)]


def test_plots_draw_edge_cases_and_close_figures(tmp_path):
    import matplotlib.pyplot as plt
    import pandas as pd

    from deepspark import plots

    sample = pd.DataFrame({"a": [1.0, 2.0, 3.0, None], "b": [2.0, 4.0, 7.0, 1.0], "k": [5.0] * 4})
    assert plots.correlation_heatmap(sample, tmp_path / "c.png", "constant k").stat().st_size
    series = pd.DataFrame({"by": [None, None], "x": [1, 2], "y_mean": [1.0, 2.0]})
    assert plots.line_plot(series, tmp_path / "l.png", "one line", "x", "y").stat().st_size
    hist = pd.DataFrame({"lo": [0.0, 1.0], "hi": [1.0, 2.0], "count": [3, 0]})
    assert plots.histogram_grid({"v": hist}, tmp_path / "h.png", "one").stat().st_size
    assert plt.get_fignums() == []


CONFIG = """
pipeline:
  name: trips
  sources:
    trips: {{uri: unused.csv, format: csv, schema: {{city: string, hour: int, delay: double}}}}
  profile:
    tables: [silver/trips]
    histogram_bins: 4
    lines:
      - {{table: silver/trips, x: hour, y: delay, by: city, title: "Mean delay by hour"}}
paths: {{data: work/data}}
mlflow:
  tracking_uri: sqlite:///{tmp}/mlflow.db
  artifact_root: {tmp}/mlartifacts
  experiment: test-profile
"""


@pytest.fixture
def trips_cfg(workdir):
    from deepspark.config import load_config

    path = workdir / "trips.yaml"
    path.write_text(CONFIG.format(tmp=workdir), encoding="utf-8")
    return load_config(path)


def write_trips(spark, workdir):
    rows = [
        ("EWR", 5, 10.0, 2013),
        ("EWR", 6, 30.0, 2013),
        ("JFK", 5, None, 2013),
        ("JFK", 6, 2.0, 2013),
    ]
    df = spark.createDataFrame(rows, "city string, hour int, delay double, year int")
    df.coalesce(1).write.mode("overwrite").parquet(str(workdir / "work/data/silver/trips/trips"))


def test_stage_writes_profile_and_logs_to_mlflow(spark, workdir, trips_cfg):
    import mlflow

    from deepspark.stages import profile

    write_trips(spark, workdir)
    old = workdir / "work/data/profiles/trips/silver_trips"
    old.mkdir(parents=True)
    (old / "stale.txt").write_text("from a previous run")

    result = profile.run(trips_cfg, spark)

    out = workdir / "work/data/profiles/trips/silver_trips"
    files = sorted(p.name for p in out.iterdir())
    assert files == [
        "correlation.png",
        "histograms.png",
        "line_0_delay_by_city.png",
        "stats.csv",
        "stats.json",
    ]
    assert not list(out.parent.glob("_staging-*"))
    stats = json.loads((out / "stats.json").read_text())
    assert stats["table"] == "silver/trips" and stats["rows"] == 4
    by_col = {c["column"]: c for c in stats["columns"]}
    assert by_col["delay"] == {
        "column": "delay",
        "type": "double",
        "count": 3,
        "nulls": 1,
        "distinct_approx": 3,
        "min": "2.0",
        "max": "30.0",
        "mean": 14.0,
        "stddev": pytest.approx(math.sqrt(((10 - 14) ** 2 + 16**2 + 12**2) / 2)),
        "p25": 2.0,
        "p50": 10.0,
        "p75": 30.0,
    }
    assert by_col["city"]["distinct_approx"] == 2 and by_col["city"]["mean"] is None
    assert result.metrics == {
        "silver_trips.rows": 4,
        "silver_trips.columns": 4,
        "silver_trips.null_cells": 1,
        "rows_in": 4,
    }
    assert result.outputs == {"silver_trips": str(out)}

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{workdir}/mlflow.db")
    exp = client.get_experiment_by_name("test-profile")
    (run,) = client.search_runs([exp.experiment_id])
    assert run.data.tags["deepspark.stage"] == "profile"
    assert run.data.metrics["silver_trips.rows"] == 4.0
    logged = {a.path for a in client.list_artifacts(run.info.run_id, "profile/silver_trips")}
    assert {f"profile/silver_trips/{f}" for f in files} == logged


def test_stage_missing_table_is_an_input_error(spark, workdir, trips_cfg):
    import dataclasses

    from deepspark.errors import InputError
    from deepspark.stages import profile

    cfg = dataclasses.replace(
        trips_cfg, mlflow=dataclasses.replace(trips_cfg.mlflow, enabled=False)
    )
    with pytest.raises(InputError, match="silver/trips/trips: input path does not exist"):
        profile.run(cfg, spark)
    assert not (workdir / "work/data/profiles/trips/silver_trips").exists()


def test_stage_bad_line_expression_is_a_config_error(spark, workdir, trips_cfg):
    import dataclasses

    from deepspark.config.pipeline import LinePlot
    from deepspark.errors import ConfigError
    from deepspark.stages import profile

    write_trips(spark, workdir)
    bad = LinePlot(table="silver/trips", x="hour", y="no_such_column")
    prof = dataclasses.replace(trips_cfg.pipeline.profile, tables=(), lines=(bad,))
    cfg = dataclasses.replace(
        trips_cfg,
        pipeline=dataclasses.replace(trips_cfg.pipeline, profile=prof),
        mlflow=dataclasses.replace(trips_cfg.mlflow, enabled=False),
    )
    with pytest.raises(ConfigError, match=r"profile.lines\[0\] \(silver/trips\)"):
        profile.run(cfg, spark)
