"""loader.backend: ``auto`` resolved once before launch, a missing Petastorm named in one line,
and processes that stop a Petastorm reader early exit cleanly."""

from __future__ import annotations

import sys

import pytest

from deepspark.cli import main
from deepspark.config import to_plain
from deepspark.data import backend
from deepspark.stages import train as train_stage
from deepspark.tracking import flatten
from deepspark.train.job import prepare
from tests.synthetic import ROOT, train_config, write_features

sys.path.insert(0, str(ROOT / "benchmarks"))
import datagen_features as datagen  # noqa: E402
import petastorm_exit  # noqa: E402

GOOD = {"train": [40, 40], "validation": [20, 20], "test": [20, 20]}
MISSING = (
    "error: pipeline.train.loader.backend: petastorm is not installed; install the extra: "
    "pip install 'deepspark[petastorm]' (or use backend: auto/arrow)"
)


def test_asking_for_a_missing_petastorm_fails_before_launch_in_one_line(
    tmp_path, monkeypatch, capsys
):
    write_features(tmp_path / "data", "flights", "sequence", GOOD)
    monkeypatch.setattr(backend, "petastorm_installed", lambda: False)
    launched = []
    monkeypatch.setattr(train_stage.launch, "in_process", lambda job: launched.append(job))
    argv = [
        "-c", str(ROOT / "conf" / "flights.yaml"), f"paths.data={tmp_path / 'data'}",
        f"paths.checkpoints={tmp_path / 'ckpt'}", "mlflow.enabled=false",
        "pipeline.train.loader.backend=petastorm",
    ]  # fmt: skip
    assert main(train_stage.run, job="deepspark.train", argv=argv, spark=False) == 1
    assert capsys.readouterr().err.strip().splitlines() == [MISSING]
    assert launched == []


def test_auto_is_resolved_once_and_recorded_in_the_job(tmp_path, monkeypatch):
    write_features(tmp_path / "data", "flights", "sequence", GOOD)
    monkeypatch.setattr(backend, "petastorm_installed", lambda: False)
    auto = prepare(train_config(tmp_path, "sequence"))  # conf/*.yaml leave the default: auto
    assert auto.config.pipeline.train.loader.backend == "arrow"
    assert auto.train.loader.backend == "arrow"  # what every rank rebuilds
    params = flatten(to_plain(auto.train), prefix="train")
    assert params["train.loader.backend"] == "arrow"  # what MLflow records
    arrow = prepare(train_config(tmp_path, "sequence", "pipeline.train.loader.backend=arrow"))
    assert arrow.checkpoint_dir == auto.checkpoint_dir  # same reader, same folder

    monkeypatch.setattr(backend, "petastorm_installed", lambda: True)
    monkeypatch.setattr(backend, "PETASTORM_WITHIN_10_PERCENT", True)
    one = prepare(train_config(tmp_path, "sequence", "pipeline.train.loader.workers=1"))
    assert one.config.pipeline.train.loader.backend == "petastorm"
    assert one.checkpoint_dir != arrow.checkpoint_dir  # another reader shuffles differently


def test_processes_that_stop_a_petastorm_reader_early_exit_cleanly(tmp_path):
    pytest.importorskip("petastorm")
    # Row groups of ~16 MB of images: before the fix, 3-4 of these 16 processes aborted.
    datagen.generate(tmp_path, "image", 20_000, 2, 16, seed=7)
    url = (datagen.split_dir(tmp_path, "image", 20_000) / "train").as_uri()
    counts = petastorm_exit.count_aborts(url, 16, concurrency=2, workers=2)
    assert counts["aborts"] == 0, counts
