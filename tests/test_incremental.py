"""Incremental runs on Delta tables: each delivery processed once, and the tables always equal a
full run over the files as they are now. Real flights, one day of each of three months, delivered
one file per run and out of order (March before February); the first month holds a garbled line
and the last re-delivers a flight of the first (a duplicate across deliveries).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from deepspark.cli.tables import report
from deepspark.io import delta, read_table
from deepspark.layout import Layout
from deepspark.stages import aggregate, clean, ingest
from tests.realdata import slice_config, write_months, write_slice

ROOT = Path(__file__).resolve().parents[1]
MONTHS = (1, 2, 3)
ORDER = (1, 3, 2)  # February arrives late, after March


def flights_only(raw, source, work, *extra):
    """conf/flights.yaml's flights source, its cleaning and its daily aggregate, on ``source``."""
    cfg = slice_config(raw, work, "paths.format=delta", "mlflow.enabled=false", *extra)
    p = cfg.pipeline
    flights = dataclasses.replace(p.sources["flights"], uri=str(source))
    pipeline = dataclasses.replace(
        p,
        sources={"flights": flights},
        clean={"flights": p.clean["flights"]},
        aggregates={"carrier_daily": p.aggregates["carrier_daily"]},
        features=None,
        kmeans=None,
        train=None,
        tune=None,
        evaluate=None,
        score=None,
        checks=dataclasses.replace(
            p.checks, tables={k: v for k, v in p.checks.tables.items() if k.endswith("/flights")}
        ),
    )
    return dataclasses.replace(cfg, pipeline=pipeline)


def run(cfg, spark) -> None:
    for stage in (ingest, clean, aggregate):
        stage.run(cfg, spark)


def tables(spark, cfg) -> dict[str, pd.DataFrame]:
    """Every table the run writes, as pandas in one row order."""
    layout = Layout(cfg.paths, cfg.pipeline.name)
    paths = {
        "bronze": layout.path("bronze", "flights"),
        "silver": layout.path("silver", "flights"),
        "gold": layout.path("gold", "carrier_daily"),
        "quarantine/ingest": layout.quarantine("ingest", "flights"),
        "quarantine/clean": layout.quarantine("clean", "flights"),
    }
    return {name: frame(read_table(spark, path, allow_empty=True)) for name, path in paths.items()}


def frame(df) -> pd.DataFrame:
    """A table as pandas, rows in one order: equality is of rows, not of file layout."""
    pdf = df.toPandas()
    return pdf.sort_values(list(pdf.columns), ignore_index=True, na_position="first")


def versions(cfg) -> dict[str, int | None]:
    layout = Layout(cfg.paths, cfg.pipeline.name)
    return {
        t: delta.latest_version(layout.qualified(t))
        for t in ("bronze/flights", "silver/flights", "gold/carrier_daily")
    }


def assert_equal(got: dict, want: dict) -> None:
    assert got.keys() == want.keys()
    for name in want:
        pd.testing.assert_frame_equal(got[name], want[name], obj=name)


@pytest.fixture(scope="module")
def deliveries(spark, tmp_path_factory):
    """The three months delivered one run each, in ORDER, into one source folder."""
    root = tmp_path_factory.mktemp("incremental")
    raw = write_slice(root / "unused", days=1)  # slice_config's other source; never read here
    files = write_months(root / "months", MONTHS)
    source = root / "deliveries"
    source.mkdir()
    cfg = flights_only(raw, source, root / "incremental")
    for month in ORDER:
        shutil.copy2(files[month], source / files[month].name)
        run(cfg, spark)
    return raw, source, root, cfg


def full_run(spark, raw, source, work):
    cfg = flights_only(raw, source, work, "pipeline.incremental=false")
    run(cfg, spark)
    return cfg


def test_deliveries_one_run_each_equal_one_full_run(spark, deliveries):
    raw, source, root, cfg = deliveries
    full = full_run(spark, raw, source, root / "full")
    assert_equal(tables(spark, cfg), tables(spark, full))
    # Each delivery was ingested once: three appends to bronze, one batch each in the file log.
    layout = Layout(cfg.paths, cfg.pipeline.name)
    ops = spark.sql(f"DESCRIBE HISTORY {delta.quoted(layout.path('bronze', 'flights'))}")
    assert [r["operation"] for r in ops.orderBy("version").collect()] == ["WRITE"] * 3
    # Gold: each later delivery replaced only the dates its rows fall in.
    gold = layout.path("gold", "carrier_daily")
    replaced = [
        str(delta.commit_info(gold, v)["operationParameters"].get("predicate")) for v in range(3)
    ]
    assert replaced[0] == "None" and all("unix_date" in p for p in replaced[1:]), replaced
    log = spark.read.format("delta").load(layout.file_log("flights")).toPandas()
    assert sorted(zip(log["file"].str.rsplit("/", n=1).str[-1], log["batch"], strict=True)) == [
        ("2013-01.csv", 1),
        ("2013-02.csv", 3),
        ("2013-03.csv", 2),
    ]


def test_a_run_with_no_new_delivery_commits_nothing(spark, deliveries):
    *_, cfg = deliveries
    before = versions(cfg)
    run(cfg, spark)
    assert versions(cfg) == before


def test_tables_lists_each_version_with_what_changed(deliveries):
    *_, cfg = deliveries
    sections = {}
    for line in report(cfg).splitlines():
        if not line.startswith(" "):
            sections[line] = []
        else:
            sections[list(sections)[-1]].append(line.split())
    bronze = sections["bronze/flights/flights"]
    # v, date, time, operation, mode, rows, "rows", stage, then what changed
    assert [(v[0], v[3], v[4], v[7]) for v in bronze] == [
        ("v0", "WRITE", "Overwrite", "ingest"),
        ("v1", "WRITE", "Append", "ingest"),
        ("v2", "WRITE", "Append", "ingest"),
    ]
    assert [" ".join(v[8:]) for v in bronze] == [
        "delivery 1 of flights: all files",
        "delivery 2 of flights: 1 new files",
        "delivery 3 of flights: 1 new files",
    ]
    # Silver: built whole from the first delivery, then each later one merged in on its key.
    silver = sections["silver/flights/flights"]
    assert [v[3] for v in silver] == ["WRITE", "MERGE", "MERGE"]
    assert [" ".join(v[-2:]) for v in silver] == [f"bronze/flights/flights v{n}" for n in range(3)]
    assert {"quarantine/flights/ingest/flights", "bronze/flights/_files/flights"} <= set(sections)


def test_a_changed_file_replaces_its_rows(spark, deliveries):
    raw, source, root, cfg = deliveries
    feb = source / "2013-02.csv"
    lines = feb.read_text().splitlines()
    feb.write_text("\n".join(lines[:-5]) + "\n")  # February re-delivered, five flights fewer
    run(cfg, spark)
    assert_equal(tables(spark, cfg), tables(spark, full_run(spark, raw, source, root / "full2")))


KILLED = """
import os, signal, sys
from pathlib import Path

sys.path.insert(0, {root!r})
from deepspark.io import deliveries
from deepspark.spark import build_session
from deepspark.stages import ingest
from tests.test_incremental import flights_only

cfg = flights_only({raw!r}, Path({source!r}), Path({work!r}))
spark = build_session(cfg.spark, delta=True)


def killed(*args, **kwargs):  # after the batch's appends, before its files are logged
    os.kill(os.getpid(), signal.SIGKILL)


deliveries.log_rows = killed
ingest.run(cfg, spark)
"""


def killed_delivery(spark, tmp_path, months, before, script):
    """``months[0]`` delivered and put through ``before``; then ``months[1]``, in a process that
    ``script`` kills. Returns the slice's raw files, the source folder and the config."""
    raw = write_slice(tmp_path / "unused", days=1)
    files = write_months(tmp_path / "months", months)
    source = tmp_path / "deliveries"
    source.mkdir()
    shutil.copy2(files[months[0]], source)
    cfg = flights_only(raw, source, tmp_path / "incremental")
    before(cfg, spark)
    shutil.copy2(files[months[1]], source)
    script = script.format(
        root=str(ROOT), raw={k: str(v) for k, v in raw.items()}, source=str(source),
        work=str(tmp_path / "incremental"),
    )  # fmt: skip
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]
    return raw, source, cfg


def test_a_run_killed_between_its_commits_is_redone_whole(spark, tmp_path):
    raw, source, cfg = killed_delivery(spark, tmp_path, (1, 2), ingest.run, KILLED)
    bronze = Layout(cfg.paths, cfg.pipeline.name).path("bronze", "flights")
    # The kill left February in bronze, unlogged: a rerun that trusted the log would add it twice.
    assert json.loads(delta.commit_info(bronze, 1)["userMetadata"])["batch"] == 2
    ingest.run(cfg, spark)
    ops = spark.sql(f"DESCRIBE HISTORY {delta.quoted(bronze)}").orderBy("version").collect()
    assert [r["operation"] for r in ops] == ["WRITE", "WRITE", "RESTORE", "WRITE"]
    full = flights_only(raw, source, tmp_path / "full", "pipeline.incremental=false")
    ingest.run(full, spark)
    for table in (bronze, Layout(cfg.paths, cfg.pipeline.name).quarantine("ingest", "flights")):
        want = table.replace(str(tmp_path / "incremental"), str(tmp_path / "full"))
        got, expected = frame(read_table(spark, table)), frame(read_table(spark, want))
        pd.testing.assert_frame_equal(got, expected, obj=table)


KILLED_MERGE = """
import os, signal, sys
from pathlib import Path

sys.path.insert(0, {root!r})
from deepspark.io import StagedOutputs
from deepspark.spark import build_session
from deepspark.stages import clean, ingest
from tests.test_incremental import flights_only

cfg = flights_only({raw!r}, Path({source!r}), Path({work!r}))
spark = build_session(cfg.spark, delta=True)
ingest.run(cfg, spark)
merge = StagedOutputs.merge


def killed(self, *args, **kwargs):  # silver merged, the quarantine not appended yet
    merge(self, *args, **kwargs)
    os.kill(os.getpid(), signal.SIGKILL)


StagedOutputs.merge = killed
clean.run(cfg, spark)
"""


def test_a_run_killed_between_merge_and_quarantine_is_rebuilt(spark, tmp_path):
    # March, then January: it re-delivers a March flight, a duplicate across deliveries.
    raw, source, cfg = killed_delivery(spark, tmp_path, (3, 1), run, KILLED_MERGE)
    layout = Layout(cfg.paths, cfg.pipeline.name)
    silver = layout.path("silver", "flights")
    assert delta.commit_info(silver, 1)["operation"] == "MERGE"  # the kill came after it
    run(cfg, spark)  # silver and the quarantine disagree on bronze's version: rebuilt whole
    assert delta.commit_info(silver, 2)["operationParameters"]["mode"] == "Overwrite"
    full = full_run(spark, raw, source, tmp_path / "full")
    assert_equal(tables(spark, cfg), tables(spark, full))
