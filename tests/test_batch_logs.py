"""Batch logs stay quiet: no library draws a progress bar into a log that is not a terminal.

A bar redraws itself with carriage returns, which a file keeps, every one of them: MLflow's
"Downloading artifacts" bars wrote 494 into the Quick start's spark-submit log. The score stage
loads the logged model from the MLflow registry by downloading it for its Spark UDF, a transfer
MLflow draws its bar for; run as a batch job, stdout and stderr files, its log must hold no
carriage return.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from deepspark.logconf import NO_PROGRESS_BARS, quiet_progress_bars
from deepspark.registry import model_name
from deepspark.stages import train as train_stage
from tests.synthetic import ROOT, conf_file, tracked_config, tracked_overrides, write_features

SPLITS = {"train": [100, 100], "validation": [50], "test": [50]}


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("logs")
    write_features(tmp / "data", "digits", "image", SPLITS)
    train_stage.run(tracked_config(tmp, "image", "pipeline.train.epochs=1"), None)
    return tmp


def score(store: Path, logs: Path, **env: str) -> tuple[int, bytes]:
    """``deepspark run score`` of version 1 as a batch job; its exit code and its log.

    The environment is this one's without the progress-bar switches (training in this process
    may have set them), plus ``env``.
    """
    environ = {k: v for k, v in os.environ.items() if k not in NO_PROGRESS_BARS}
    args = [sys.executable, "-m", "deepspark.cli", "run", "score", "-c", str(conf_file("image"))]
    args += tracked_overrides(
        store, "image", "pipeline.score.model=1", "spark.settings.spark.ui.enabled=false"
    )
    logs.mkdir()
    with open(logs / "stdout", "wb") as out, open(logs / "stderr", "wb") as err:
        done = subprocess.run(args, stdout=out, stderr=err, env={**environ, **env}, cwd=ROOT)
    return done.returncode, (logs / "stdout").read_bytes() + (logs / "stderr").read_bytes()


def test_a_stage_that_loads_a_logged_model_logs_no_carriage_return(store, tmp_path):
    code, log = score(store, tmp_path / "logs")
    assert code == 0, log.decode()
    assert re.search(rb"INFO deepspark: score digits done in \d+\.\ds\n", log), log.decode()
    assert log.count(b"\r") == 0
    assert b"Downloading artifacts" not in log


# What the score stage's Spark UDF does first, alone: download the logged model from the registry.
DOWNLOAD = """
import sys, mlflow
from deepspark.logconf import quiet_progress_bars
quiet_progress_bars()
mlflow.set_tracking_uri(sys.argv[1])
mlflow.artifacts.download_artifacts(sys.argv[2], dst_path=sys.argv[3])
"""


def test_the_bars_a_user_asks_for_are_drawn(store, tmp_path):
    # With the bars switched on by hand, that download draws MLflow's bar into the same kind of
    # file (the test above is not quiet by accident), and the user's settings win. Without
    # Spark: the bar is MLflow's, and a second score job would only add a JVM's start.
    name = model_name(tracked_config(store, "image"))
    environ = {k: v for k, v in os.environ.items() if k not in NO_PROGRESS_BARS}
    on = {"MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "true", "TQDM_DISABLE": ""}
    args = [f"sqlite:///{store / 'mlflow.db'}", f"models:/{name}/1", str(tmp_path / "model")]
    with open(tmp_path / "log", "wb") as log:
        subprocess.run([sys.executable, "-c", DOWNLOAD, *args], stdout=log, stderr=log,
                       env={**environ, **on}, cwd=ROOT, check=True)  # fmt: skip
    log = (tmp_path / "log").read_bytes()
    assert b"Downloading artifacts" in log and b"\r" in log
    assert (tmp_path / "model" / "MLmodel").exists()


class Stream:
    def __init__(self, tty: bool) -> None:
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


def test_bars_are_switched_off_only_where_stderr_is_not_a_terminal(monkeypatch):
    for key in NO_PROGRESS_BARS:
        monkeypatch.delenv(key, raising=False)
    assert quiet_progress_bars(Stream(tty=True)) is False
    assert not set(NO_PROGRESS_BARS) & set(os.environ)
    assert quiet_progress_bars(Stream(tty=False)) is True
    assert {k: os.environ[k] for k in NO_PROGRESS_BARS} == {
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
        "TQDM_DISABLE": "1",
    }


def test_a_switch_the_user_set_wins(monkeypatch):
    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "true")
    monkeypatch.setenv("TQDM_DISABLE", "")
    assert quiet_progress_bars(Stream(tty=False)) is True
    assert os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] == "true"
    assert os.environ["TQDM_DISABLE"] == ""
