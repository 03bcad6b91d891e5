"""A tracking server that goes away mid-run: training finishes, checkpoints stay, one clear line.

A real ``mlflow server`` (the one tests/test_mlflow_ui.py starts) is killed while
``python -m deepspark.train`` is between epochs. The job must finish training without stalling
on MLflow's retries, keep its checkpoints, and fail with one line naming what was not logged.
Rerun with the server back on the same port and store, the same command trains nothing and logs
only what was missing, into the same MLflow run. The driver's own pipeline and stage runs, ended
after the server went away, must not replace the job's error either.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from deepspark import tracking
from deepspark.errors import InputError
from deepspark.train import checkpoint as ckpt
from tests.synthetic import ROOT, tracked_config, write_features
from tests.test_mlflow_ui import Store, free_port, start_server, stop_server, wait_healthy

SPLITS = {"train": [1000, 1000], "validation": [100, 100], "test": [100, 100]}
EPOCHS = 5


def serve(tmp: Path, port: int, name: str) -> Store:
    """``mlflow server`` over ``tmp/mlflow.db`` on ``port``, answering /health."""
    log = tmp / f"{name}.log"
    store = Store(tmp, f"http://127.0.0.1:{port}", start_server(tmp, port, log), log)
    wait_healthy(store)
    return store


def kill(store: Store) -> None:
    """The server goes away at once (no graceful shutdown), as a crashed host's would."""
    os.killpg(store.server.pid, signal.SIGKILL)
    store.server.wait(timeout=30)


def train(args: list[str], tmp: Path, name: str) -> subprocess.Popen:
    out = (tmp / f"{name}.out").open("w")
    err = (tmp / f"{name}.err").open("w")
    cmd = [sys.executable, "-m", "deepspark.train", *args]
    return subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=err, text=True)


def finish(proc: subprocess.Popen, tmp: Path, name: str, timeout: float = 180) -> str:
    proc.wait(timeout=timeout)
    return (tmp / f"{name}.err").read_text()


def test_server_down_mid_run_keeps_checkpoints_and_a_rerun_logs_only_the_results(tmp_path):
    import mlflow

    write_features(tmp_path / "data", "digits", "image", SPLITS)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    args = [
        "-c", "conf/digits.yaml",
        f"paths.data={tmp_path / 'data'}", f"paths.checkpoints={tmp_path / 'checkpoints'}",
        f"mlflow.tracking_uri={url}", f"mlflow.artifact_root={tmp_path / 'artifacts'}",
        "pipeline.train.processes=1", "pipeline.train.batch_size=16",
        f"pipeline.train.epochs={EPOCHS}", "pipeline.train.patience=0",
        "pipeline.train.cnn.channels=[8, 8]", "pipeline.train.cnn.hidden=16",
    ]  # fmt: skip
    store = serve(tmp_path, port, "server")
    proc = None
    try:
        proc = train(args, tmp_path, "first")
        deadline = time.monotonic() + 120
        killed_after = 0
        while not killed_after:
            folders = list((tmp_path / "checkpoints" / "digits").glob("*/"))
            state = ckpt.read_state(folders[0]) if folders else None
            if state and state["epoch"] >= 1:
                kill(store)
                killed_after = state["epoch"]
            assert proc.poll() is None, finish(proc, tmp_path, "first")[-3000:]
            assert time.monotonic() < deadline, "no epoch finished in 120 s"
            time.sleep(0.05)
        assert killed_after < EPOCHS - 1, f"the server went down only after epoch {killed_after}"
        err = finish(proc, tmp_path, "first")
        folder = folders[0]

        assert proc.returncode == 1, err[-3000:]
        assert "Traceback" not in err, err[-3000:]
        first_lost = killed_after + 1
        epochs_lost = f"epochs {first_lost}-{EPOCHS}" if first_lost < EPOCHS else f"epoch {EPOCHS}"
        last = err.strip().splitlines()[-1]
        assert re.fullmatch(
            rf"error: MLflow logging failed mid-run \({epochs_lost} metrics, learning-curve plots, "
            r"model, test metrics, registry gate; first error: request to "
            rf"{re.escape(url)}/api/2\.0/mlflow/\S+ failed: \[Errno 111\] Connection refused\); "
            rf"training finished and its checkpoints are kept in {re.escape(str(folder))}; rerun "
            r"the same command with the server up to log the results to run ([0-9a-f]{32})",
            last,
        ), last
        run_id = last.rsplit(" ", 1)[-1]
        assert {p.name for p in folder.iterdir()} >= {ckpt.LAST, ckpt.BEST, ckpt.STATE}
        state = ckpt.read_state(folder)
        assert state["finished"] and state["epoch"] == EPOCHS and state["run_id"] == run_id
        trained = ckpt.load(folder)
        assert len(trained["history"]) == EPOCHS

        store = serve(tmp_path, port, "server-again")
        proc = train([*args, "-v"], tmp_path, "rerun")  # -v: a trained step would log a line
        err = finish(proc, tmp_path, "rerun")
        assert proc.returncode == 0, err[-3000:]
        assert "reporting only" in err and "epoch 1/" not in err, err[-3000:]

        client = mlflow.MlflowClient(tracking_uri=url)
        run = client.get_run(run_id)
        assert run.info.status == "FINISHED"
        assert {"test.accuracy", "baseline.svc.accuracy"} <= set(run.data.metrics)
        # Every epoch once: the lost ones were logged from the checkpoint's history, no epoch
        # was trained (or logged) twice.
        steps = [m.step for m in client.get_metric_history(run_id, "train_loss")]
        assert sorted(steps) == list(range(EPOCHS))
        models = client.search_logged_models(
            experiment_ids=[run.info.experiment_id], filter_string=f"source_run_id = '{run_id}'"
        )
        assert len(models) == 1
        assert run.data.tags["deepspark.registered"] == "digits v1 (champion)"
        assert client.list_artifacts(run_id, "plots")
        state, rerun = ckpt.read_state(folder), ckpt.load(folder)
        assert state["finished"] and state["mlflow_failed"] == []
        assert rerun["history"] == trained["history"]
        for name, tensor in trained["model"].items():
            assert torch.equal(rerun["model"][name], tensor), name
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
        stop_server(store.server)


def test_ending_driver_runs_on_a_gone_server_keeps_the_real_error(tmp_path, monkeypatch, caplog):
    import mlflow

    for key in ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_TIMEOUT"):
        monkeypatch.delenv(key, raising=False)  # restored after the test; setup() sets them
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cfg = tracked_config(tmp_path, "image", f"mlflow.tracking_uri={url}")
    store = serve(tmp_path, port, "server")
    refused = (
        rf"request to {re.escape(url)}/api/2\.0/mlflow/\S+ failed: \[Errno 111\] Connection refused"
    )
    try:
        started = time.monotonic()
        with (
            pytest.raises(tracking.TrackingError) as ended,
            (tracker := tracking.Tracking()).pipeline_run(cfg) as parent,
            pytest.raises(InputError) as failed,
            tracker.stage_run(cfg, "features") as stage,
        ):
            kill(store)
            raise InputError("the stage's own error")
        # The stage failed: its error is the one raised, ending its run only warned.
        assert str(failed.value) == "the stage's own error" and failed.value.__context__ is None
        warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
        assert any(
            re.fullmatch(
                rf"MLflow: could not end run digits-features \({stage.info.run_id}\) as FAILED: "
                + refused,
                w,
            )
            for w in warnings
        ), warnings
        # The pipeline's body succeeded: ending its run is what failed, in one line.
        assert re.fullmatch(
            rf"MLflow logging failed: ending run digits-pipeline \({parent.info.run_id}\) "
            rf"\({refused}\)",
            str(ended.value),
        ), str(ended.value)
        assert mlflow.active_run() is None
        # Two calls, each with the configured 2 retries: seconds, not MLflow's minutes.
        assert time.monotonic() - started < 60
    finally:
        stop_server(store.server)
