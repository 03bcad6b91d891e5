"""MLflow helpers that need no Spark: param flattening and the tracking URI."""

from __future__ import annotations

from pathlib import Path

from deepspark.config.model import MlflowConfig
from deepspark.tracking import flatten, tracking_uri


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
    uri = tracking_uri(MlflowConfig(tracking_uri="sqlite:///work/m.db"))
    assert uri == f"sqlite:///{tmp_path / 'work' / 'm.db'}"
    assert (tmp_path / "work").is_dir()


def test_server_uri_is_kept():
    assert (
        tracking_uri(MlflowConfig(tracking_uri="http://127.0.0.1:5000")) == "http://127.0.0.1:5000"
    )


def test_an_unreachable_tracking_server_fails_fast_in_one_line(tmp_path):
    import socket
    import subprocess
    import sys

    with socket.socket() as s:  # a free port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.run(
        [sys.executable, "-m", "deepspark.train", "--conf", "conf/digits.yaml",
         f"mlflow.tracking_uri=http://127.0.0.1:{port}"],
        cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1] == (
        f"error: MLflow tracking server http://127.0.0.1:{port} is not reachable "
        "([Errno 111] Connection refused); start it, or set "
        "mlflow.tracking_uri=sqlite:///work/mlflow.db for a local store"
    )
