"""MLflow helpers that need no Spark: params, tracking URI, unreachable server, HTTP limits."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from deepspark import environ, tracking
from deepspark.config import load_config
from deepspark.config.pipeline import MlflowConfig
from deepspark.errors import ConfigError
from deepspark.tracking import create_store_folder, flatten, tracking_uri


def test_flatten_nests_with_dots_and_sanitizes_keys():
    params = flatten({"schema": {"p{0..63}": "int", "label": "int"}, "n": 3}, prefix="ingest")
    assert params == {
        "ingest.schema.p_0..63_": "int",
        "ingest.schema.label": "int",
        "ingest.n": "3",
    }


def test_flatten_cuts_long_values():
    assert len(flatten({"x": "y" * 10_000})["x"]) == 6000


def test_relative_sqlite_uri_becomes_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    uri = create_store_folder(MlflowConfig(tracking_uri="sqlite:///work/m.db"))
    assert uri == f"sqlite:///{tmp_path / 'work' / 'm.db'}"
    assert (tmp_path / "work").is_dir()


def test_reading_the_uri_creates_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    uri = tracking_uri(MlflowConfig(tracking_uri="sqlite:///work/m.db"))
    assert uri == f"sqlite:///{tmp_path / 'work' / 'm.db'}"
    assert list(tmp_path.iterdir()) == []


def test_server_uri_is_kept():
    assert (
        tracking_uri(MlflowConfig(tracking_uri="http://127.0.0.1:5000")) == "http://127.0.0.1:5000"
    )


@pytest.mark.parametrize(
    "entry", [["-m", "deepspark.train"], ["jobs/train.py"]], ids=["python-m", "jobs"]
)
def test_an_unreachable_tracking_server_fails_fast_in_one_line(entry):
    import socket
    import subprocess
    import sys
    import time

    with socket.socket() as s:  # a free port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, *entry, "-c", "conf/digits.yaml",
         f"mlflow.tracking_uri=http://127.0.0.1:{port}"],
        cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 1
    # Before any Spark session, process or epoch: the one line is all the job prints.
    assert proc.stderr.strip().splitlines() == [
        f"error: MLflow tracking server http://127.0.0.1:{port} is not reachable "
        "([Errno 111] Connection refused); start it, or set "
        "mlflow.tracking_uri=sqlite:///work/mlflow.db for a local store"
    ]
    assert time.monotonic() - started < 15


def test_http_limits_go_to_the_environment_unless_the_user_set_them(monkeypatch):
    for key in ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_TIMEOUT"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setattr(environ, "_OWN", {})
    tracking.bound_http(MlflowConfig(http_retries=3, http_timeout_s=20))
    assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "3"
    assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "20"
    # A later config in the same process replaces what setup put there...
    tracking.bound_http(MlflowConfig(http_retries=1, http_timeout_s=5))
    assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "1"
    # ...but never what the user set.
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "300")
    tracking.bound_http(MlflowConfig(http_retries=0, http_timeout_s=7))
    assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "0"
    assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "300"


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("mlflow.http_retries=11", "mlflow: http_retries: expected 0 to 10, found 11"),
        ("mlflow.http_retries=-1", "mlflow: http_retries: expected 0 to 10, found -1"),
        ("mlflow.http_timeout_s=0", "mlflow: http_timeout_s: expected at least 1, found 0"),
    ],
)
def test_http_limits_out_of_range_fail_at_load(override, message):
    conf = Path(__file__).resolve().parents[1] / "conf" / "digits.yaml"
    with pytest.raises(ConfigError) as e:
        load_config(conf, [override])
    assert str(e.value) == f"{conf}: {message}"


def test_a_failed_mlflow_call_reads_as_one_short_line():
    from mlflow.exceptions import MlflowException

    # What MLflow 3.17 raises when the server is gone (its retries exhausted), verbatim.
    refused = MlflowException(
        "API request to http://127.0.0.1:5000/api/2.0/mlflow/runs/log-batch failed with exception "
        "HTTPConnectionPool(host='127.0.0.1', port=5000): Max retries exceeded with url: "
        "/api/2.0/mlflow/runs/log-batch (Caused by NewConnectionError(\"HTTPConnection(host='127."
        "0.0.1', port=5000): Failed to establish a new connection: [Errno 111] Connection "
        'refused"))'
    )
    assert tracking.one_line(refused) == (
        "request to http://127.0.0.1:5000/api/2.0/mlflow/runs/log-batch failed: "
        "[Errno 111] Connection refused"
    )
    assert tracking.one_line(OSError("disk full\nmore")) == "disk full"
    assert tracking.one_line(RuntimeError("x" * 400)) == "x" * 297 + "..."


def test_system_metrics_interval_goes_to_the_environment_unless_the_user_set_it(monkeypatch):
    key = "MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL"
    monkeypatch.delenv(key, raising=False)
    monkeypatch.delenv("MLFLOW_SYSTEM_METRICS_SAMPLES_BEFORE_LOGGING", raising=False)
    monkeypatch.setattr(environ, "_OWN", {})
    tracker = tracking.Tracking()
    assert tracker.system_metrics(MlflowConfig(system_metrics_s=1.5))
    assert os.environ[key] == "1.5"
    assert os.environ["MLFLOW_SYSTEM_METRICS_SAMPLES_BEFORE_LOGGING"] == "1"
    monkeypatch.setenv(key, "30")
    assert tracker.system_metrics(MlflowConfig(system_metrics_s=1.0))
    assert os.environ[key] == "30"
    assert not tracker.system_metrics(MlflowConfig(system_metrics_s=0))


def _monitors() -> list:
    import threading

    return [t for t in threading.enumerate() if t.name == "SystemMetricsMonitor" and t.is_alive()]


@pytest.mark.parametrize("end", ["FINISHED", "FAILED", "dropped"])
def test_system_metrics_draw_a_curve_and_stop_with_the_run(tmp_path, monkeypatch, end):
    import time

    monkeypatch.setattr(environ, "_OWN", {})
    for key in ("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(key, raising=False)
    cfg = MlflowConfig(
        tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
        artifact_root=str(tmp_path / "artifacts"),
        system_metrics_s=0.2,
    )
    mlflow = tracking.setup(cfg)
    before = len(_monitors())
    run = mlflow.start_run(log_system_metrics=tracking.Tracking().system_metrics(cfg))
    try:
        time.sleep(1.5)
    finally:
        if end == "dropped":  # what the Reporter does once the server stopped answering
            tracking.drop_active_run()
        else:
            mlflow.end_run(status=end)
    deadline = time.monotonic() + 5
    while len(_monitors()) > before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(_monitors()) == before, "the system metrics thread outlived its run"
    history = mlflow.MlflowClient().get_metric_history(
        run.info.run_id, "system/cpu_utilization_percentage"
    )
    assert len(history) >= 2 and [m.step for m in history] == list(range(len(history)))
    assert all(0 <= m.value <= 100 for m in history)
