"""Shared fixtures: one local[2] SparkSession for the whole test session, and temp workdirs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
# pyspark.testing compares through pandas-on-Spark, which warns unless this is set.
os.environ.setdefault("PYARROW_IGNORE_TIMEZONE", "1")
os.environ.setdefault(
    "PYSPARK_PYTHON", os.environ.get("PYSPARK_PYTHON", __import__("sys").executable)
)
# A fixed test-only key: pseudonymized values are then stable across test runs.
os.environ.setdefault("DEEPSPARK_PSEUDONYM_KEY", "test-only-key-0123456789abcdef")


@pytest.fixture(scope="session")
def spark():
    from deepspark.config.pipeline import SparkConfig
    from deepspark.spark import build_session

    cfg = SparkConfig(
        app_name="deepspark-tests",
        master="local[2]",
        driver_memory="2g",
        settings={
            "spark.sql.session.timeZone": "UTC",
            "spark.sql.ansi.enabled": "true",  # as conf/base.yaml: Spark 3.5 defaults to off
            "spark.sql.shuffle.partitions": "2",
            "spark.default.parallelism": "2",
            "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
            "spark.ui.enabled": "false",
            "spark.ui.showConsoleProgress": "false",
            "spark.sql.adaptive.enabled": "true",
        },
    )
    # Delta's jars in every test session: one session serves both table formats' tests.
    session = build_session(cfg, delta=True)
    yield session
    session.stop()


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """A fresh working directory: relative config paths (work/data, work/mlflow.db) land here."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture(scope="session")
def flights_slice(spark, tmp_path_factory):
    """The whole flights pipeline on ten January days, run once for every module that reads it.

    tests/test_pipeline_flights.py checks what each stage wrote; tests/test_tune.py searches on
    its features (on a copy); the cluster tier compares its standalone run with this one (on a
    copy). Built once: the ten days' ETL and training are most of its cost.
    """
    from deepspark.layout import Layout
    from deepspark.stages import pipeline
    from tests.realdata import slice_config, write_slice

    tmp = tmp_path_factory.mktemp("flights")
    raw = write_slice(tmp / "raw")
    cfg = slice_config(raw, tmp)
    results = pipeline.run(cfg, spark)
    layout = Layout(cfg.paths, "flights")
    return {"cfg": cfg, "raw": raw, "results": results, "layout": layout, "work": tmp}
