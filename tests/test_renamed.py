"""Renamed config keys and stages (docs/GLOSSARY.md): the old names still work, with one warning."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest

from deepspark.config import load_config
from deepspark.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
FLIGHTS = ROOT / "conf" / "flights.yaml"

OLD = """\
base: {base}
pipeline:
  name: p
  sources:
    t: {{uri: /data/t.csv, format: csv, schema: {{a: int, x: double}}}}
  aggregates:
    hourly: {{source: t, keys: [a], metrics: {{n: {{fn: count}}}}}}
  cluster: {{table: gold/hourly, features: [n], output: hourly_clusters, k_max: 4}}
  validation:
    thresholds: {{drift: 0.3}}
  stages: [ingest, aggregate, cluster]
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "old.yaml"
    path.write_text(text.format(base=ROOT / "conf" / "base.yaml"))
    return path


def test_old_keys_and_stage_names_load_as_the_new_ones_with_one_line_each(tmp_path, caplog):
    path = _write(tmp_path, OLD)
    with caplog.at_level(logging.WARNING, logger="deepspark"):
        cfg = load_config(path)
    assert cfg.pipeline.kmeans.output == "hourly_clusters"
    assert cfg.pipeline.checks.thresholds.drift == 0.3
    assert cfg.pipeline.stages == ("ingest", "aggregate", "kmeans")
    assert [r.getMessage() for r in caplog.records] == [
        f"{path}: 'pipeline.cluster' is now 'pipeline.kmeans' (docs/GLOSSARY.md); "
        "the old name still works",
        f"{path}: 'pipeline.validation' is now 'pipeline.checks' (docs/GLOSSARY.md); "
        "the old name still works",
        f"{path}: pipeline.stages: 'cluster' is now 'kmeans' (docs/GLOSSARY.md); "
        "the old name still works",
    ]


def test_old_keys_in_overrides_are_renamed_too(caplog):
    with caplog.at_level(logging.WARNING, logger="deepspark"):
        cfg = load_config(
            FLIGHTS, ["pipeline.cluster.k_max=5", "pipeline.stages=[ingest, clean, cluster]"]
        )
    assert cfg.pipeline.kmeans.k_max == 5
    assert cfg.pipeline.stages == ("ingest", "clean", "kmeans")
    assert len(caplog.records) == 2
    assert caplog.records[0].getMessage() == (
        "command-line override 'pipeline.cluster.k_max=5': 'pipeline.cluster' is now "
        "'pipeline.kmeans' (docs/GLOSSARY.md); the old name still works"
    )


def test_old_and_new_name_in_one_file_is_an_error(tmp_path):
    path = _write(tmp_path, OLD + "  kmeans: {{table: gold/hourly, features: [n], output: o}}\n")
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert str(e.value) == (
        f"{path}: both 'pipeline.cluster' and its new name 'pipeline.kmeans'; "
        "keep 'pipeline.kmeans'"
    )


def test_the_old_stage_name_runs_the_new_stage_with_one_warning_line(tmp_path):
    # `deepspark run cluster --help` resolves the stage (and warns) before argparse prints help.
    proc = subprocess.run(
        [sys.executable, "-m", "deepspark.cli", "run", "cluster", "--help"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    )  # fmt: skip
    warnings = [ln for ln in proc.stderr.splitlines() if "GLOSSARY" in ln]
    assert len(warnings) == 1 and "stage 'cluster' is now 'kmeans'" in warnings[0], proc.stderr
    assert proc.stdout.startswith("usage: kmeans ")
