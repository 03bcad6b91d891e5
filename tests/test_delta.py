"""Delta Lake tables (``paths.format: delta``), against Delta itself: the stack's jars, a real
table log, time travel. The Parquet run of the same slice is the oracle: the formats differ in
how a table is stored and versioned, never in a row of it.
"""

from __future__ import annotations

import pandas as pd
import pytest

from deepspark.errors import InputError
from deepspark.io import delta, read_table, table_files
from deepspark.layout import Layout
from deepspark.stages import aggregate, clean, ingest
from tests.realdata import slice_config, write_slice
from tests.test_failures import csv, tiny

ETL = (ingest, clean, aggregate)
TABLES = (
    "bronze/flights",
    "bronze/weather",
    "silver/flights",
    "silver/weather",
    "gold/airport_hourly",
    "gold/carrier_daily",
)


def history(spark, path: str) -> list[tuple[int, str]]:
    rows = spark.sql(f"DESCRIBE HISTORY {delta.quoted(path)}").select("version", "operation")
    return sorted((int(r["version"]), r["operation"]) for r in rows.collect())


def frame(df) -> pd.DataFrame:
    """A table as pandas, rows in one order: equality is of rows, not of file layout."""
    pdf = df.toPandas()
    return pdf.sort_values(list(pdf.columns), ignore_index=True, na_position="first")


def quarantines(layout: Layout) -> list[str]:
    return [layout.quarantine(stage, t) for stage in ("ingest", "clean") for t in ("flights",)]


def run_etl(spark, raw, work, fmt: str) -> Layout:
    cfg = slice_config(raw, work, f"paths.format={fmt}", "mlflow.enabled=false")
    for stage in ETL:
        stage.run(cfg, spark)
    return Layout(cfg.paths, cfg.pipeline.name)


@pytest.fixture(scope="module")
def runs(spark, tmp_path_factory):
    """One day of real flights and weather through ingest, clean and aggregate in each format;
    the slice's defects (a garbled line, a duplicate) reach both quarantines."""
    root = tmp_path_factory.mktemp("delta")
    raw = write_slice(root / "raw", days=1)
    return raw, root, {fmt: run_etl(spark, raw, root / fmt, fmt) for fmt in ("parquet", "delta")}


def test_delta_tables_equal_the_parquet_run_row_for_row(spark, runs):
    _, _, layouts = runs
    for name in TABLES:
        path = layouts["delta"].qualified(name)
        assert history(spark, path) == [(0, "WRITE")], name  # one write, one commit
        expected = frame(spark.read.parquet(layouts["parquet"].qualified(name)))
        pd.testing.assert_frame_equal(frame(read_table(spark, path)), expected, obj=name)
    pairs = zip(quarantines(layouts["delta"]), quarantines(layouts["parquet"]), strict=True)
    for path, pq_path in pairs:
        got = frame(read_table(spark, path, allow_empty=True))
        pd.testing.assert_frame_equal(got, frame(spark.read.parquet(pq_path)), obj=path)
        assert len(got) == 1, path  # ingest: the garbled line; clean: the duplicate


def test_a_full_rerun_is_a_new_version_and_the_old_one_stays_readable(spark, runs):
    raw, root, layouts = runs
    silver = layouts["delta"].path("silver", "flights")
    first = frame(read_table(spark, silver))
    overrides = ("paths.format=delta", "mlflow.enabled=false")
    clean.run(slice_config(raw, root / "delta", *overrides), spark)
    assert history(spark, silver) == [(0, "WRITE")]  # bronze has not moved: no commit
    clean.run(slice_config(raw, root / "delta", *overrides, "pipeline.incremental=false"), spark)
    assert history(spark, silver) == [(0, "WRITE"), (1, "WRITE")]
    assert delta.latest_version(silver) == 1
    old = spark.read.format("delta").option("versionAsOf", 0).load(silver)
    pd.testing.assert_frame_equal(frame(old), first)
    # A version's file list is the table: pyarrow reads it without Delta and finds every row.
    files = table_files(spark, silver)
    assert files == delta.version_files(spark, silver, 1) == delta.written_files(silver, 1)
    assert sum(pd.read_parquet(f.removeprefix("file://")).shape[0] for f in files) == len(first)


def test_a_failed_stage_restores_the_version_it_replaced(spark, tmp_path):
    cfg = tiny(tmp_path, csv(tmp_path, "a,b,c\n1,2,x\n2,3,y\n"), "csv", "paths.format=delta")
    ingest.run(cfg, spark)
    bronze = Layout(cfg.paths, "tiny").path("bronze", "t")
    before = frame(read_table(spark, bronze))
    csv(tmp_path, "a,b,c\nx,2,x\ny,3,y\n3,4,z\n")  # 2 of 3 rows unparseable: over the limit
    with pytest.raises(InputError, match="2 of 3 rows do not parse"):
        ingest.run(cfg, spark)
    # The write was committed before the gate failed; the failure put version 0 back.
    assert history(spark, bronze) == [(0, "WRITE"), (1, "WRITE"), (2, "RESTORE")]
    pd.testing.assert_frame_equal(frame(read_table(spark, bronze)), before)


def test_a_failed_first_write_leaves_no_table(spark, tmp_path):
    cfg = tiny(tmp_path, csv(tmp_path, "a,b,c\nx,2,x\ny,3,y\n3,4,z\n"), "csv", "paths.format=delta")
    with pytest.raises(InputError, match="2 of 3 rows do not parse"):
        ingest.run(cfg, spark)
    assert not (tmp_path / "data" / "bronze" / "tiny" / "t").exists()


def test_a_parquet_folder_becomes_a_delta_table(spark, tmp_path):
    source = csv(tmp_path, "a,b,c\n1,2,x\n2,3,y\n")
    ingest.run(tiny(tmp_path, source), spark)
    bronze = tmp_path / "data" / "bronze" / "tiny" / "t"
    before = frame(read_table(spark, str(bronze)))
    ingest.run(tiny(tmp_path, source, "csv", "paths.format=delta"), spark)
    assert (bronze / "_delta_log").is_dir()
    assert not bronze.with_name("t.__parquet").exists()
    pd.testing.assert_frame_equal(frame(read_table(spark, str(bronze))), before)
