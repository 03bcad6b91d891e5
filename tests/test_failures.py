"""Failures around the data: missing paths, corrupt Parquet, missing keys, a job's exit.

Each error is one line naming the file and what was expected; a failed stage leaves the
previous output exactly as it was and no staging debris behind. The corpus of bad deliveries
(bad files, bad rows, anomalies) is tests/test_bad_input.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from deepspark.config import load_config
from deepspark.errors import InputError, ReconciliationError, SetupError
from deepspark.layout import Layout
from deepspark.stages import clean, ingest
from deepspark.stages.accounting import reconcile

ROOT = Path(__file__).resolve().parents[1]

PIPELINE = """
pipeline:
  name: tiny
  sources:
    t:
      uri: {uri}
      format: {fmt}
      options: {{header: true}}
      schema: {{a: int, b: int, c: string}}
      max_quarantine_fraction: 0.5
  clean:
    t:
      required: [a]
      pseudonymize: [c]
"""


def tiny(tmp_path, uri, fmt="csv", *overrides):
    path = tmp_path / "tiny.yaml"
    path.write_text(PIPELINE.format(uri=uri, fmt=fmt))
    return load_config(
        path, [f"paths.data={tmp_path / 'data'}", "mlflow.enabled=false", *overrides]
    )


def csv(tmp_path, text, name="t.csv"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_missing_input_path(spark, tmp_path):
    cfg = tiny(tmp_path, tmp_path / "nope.csv")
    with pytest.raises(InputError) as e:
        ingest.run(cfg, spark)
    assert str(e.value) == f"{tmp_path / 'nope.csv'}: input path does not exist (source 't')"


def test_empty_directory(spark, tmp_path):
    (tmp_path / "empty").mkdir()
    cfg = tiny(tmp_path, tmp_path / "empty")
    with pytest.raises(InputError) as e:
        ingest.run(cfg, spark)
    assert str(e.value) == f"{tmp_path / 'empty'}: input is empty (no data files; source 't')"


@pytest.fixture
def ingested(spark, tmp_path):
    cfg = tiny(tmp_path, csv(tmp_path, "a,b,c\n1,2,x\n,3,y\n4,5,z\n"))
    ingest.run(cfg, spark)
    clean.run(cfg, spark)
    return cfg


def _parquet_files(path: str) -> list[Path]:
    return sorted(p for p in Path(path).glob("*.parquet"))


@pytest.mark.parametrize("damage", ["truncate", "garbage", "truncate-without-crc"])
def test_corrupt_parquet_names_the_file_and_keeps_previous_output(spark, ingested, damage):
    layout = Layout(ingested.paths, "tiny")
    silver = layout.path("silver", "t")
    before = pq.read_table(silver).to_pandas()
    victim = _parquet_files(layout.path("bronze", "t"))[0]
    data = victim.read_bytes()
    victim.write_bytes(b"not parquet" * 10 if damage == "garbage" else data[: len(data) // 2])
    if (
        damage == "truncate-without-crc"
    ):  # no checksum sidecar: the Parquet footer check must catch it
        victim.with_name(f".{victim.name}.crc").unlink()
    with pytest.raises(InputError) as e:
        clean.run(ingested, spark)
    message = str(e.value)
    assert victim.name in message and "expected a complete Parquet file" in message
    assert "\n" not in message
    pd.testing.assert_frame_equal(pq.read_table(silver).to_pandas(), before)
    leftovers = [p.name for p in Path(silver).parent.iterdir() if ".staging-" in p.name]
    assert leftovers == []


def test_clean_quarantines_nulls_and_reconciles(spark, ingested):
    layout = Layout(ingested.paths, "tiny")
    q = pq.read_table(layout.quarantine("clean", "t")).to_pandas()
    assert q[["rule", "reason"]].to_dict("records") == [
        {"rule": "required:a", "reason": "a is null"}
    ]
    assert len(pq.read_table(layout.path("silver", "t"))) == 2


def test_pseudonymization_refuses_to_run_without_a_key(spark, ingested, monkeypatch):
    monkeypatch.delenv("DEEPSPARK_PSEUDONYM_KEY")
    with pytest.raises(SetupError) as e:
        clean.run(ingested, spark)
    assert str(e.value).startswith(
        "pseudonymizing t.c needs a secret key in $DEEPSPARK_PSEUDONYM_KEY "
        "(at least 16 bytes; it is unset)"
    )


def test_short_key_is_refused(spark, ingested, monkeypatch):
    monkeypatch.setenv("DEEPSPARK_PSEUDONYM_KEY", "short")
    with pytest.raises(SetupError, match=r"it is only 5 bytes"):
        clean.run(ingested, spark)


def test_reconcile_message():
    with pytest.raises(ReconciliationError) as e:
        reconcile("clean t", 10, 7, 2)
    assert str(e.value) == (
        "clean t: rows_in=10 != rows_clean=7 + rows_quarantined=2 (difference 1)"
    )


def test_job_exits_non_zero_with_one_line(tmp_path):
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(PIPELINE.format(uri=tmp_path / "nope.csv", fmt="csv"))
    env = {**os.environ, "PYTHONPATH": str(ROOT / "lib")}
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "jobs" / "ingest.py"),
            "-c",
            str(cfg),
            f"paths.data={tmp_path / 'data'}",
            "mlflow.enabled=false",
            "spark.master=local[1]",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=180,
    )
    assert proc.returncode == 1
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert errors == [f"error: {tmp_path / 'nope.csv'}: input path does not exist (source 't')"]


def test_job_rejects_bad_config_before_starting_spark(tmp_path):
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(PIPELINE.format(uri="x.csv", fmt="csv"))
    proc = subprocess.run(
        [sys.executable, str(ROOT / "jobs" / "clean.py"), "-c", str(cfg), "spark.mastr=x"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT / "lib")},
    )
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1] == (
        "error: command-line override 'spark.mastr=x': unknown key 'spark.mastr' "
        "(expected one of: app_name, master, driver_memory, settings)"
    )
