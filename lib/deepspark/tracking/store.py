"""Pointing MLflow at the configured store: the URI, the experiment, bounded HTTP, reachability.

Stateless: every function takes the ``mlflow`` section and keeps nothing between calls.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from deepspark import environ
from deepspark.config.pipeline import MlflowConfig
from deepspark.errors import SetupError

_SQLITE = "sqlite:///"  # a local store: the path follows (absolute with a fourth slash)


def tracking_uri(cfg: MlflowConfig) -> str:
    """The tracking URI with a relative SQLite path made absolute (nothing is created)."""
    uri = cfg.tracking_uri
    if uri.startswith(_SQLITE) and not uri.startswith(_SQLITE + "/"):
        return f"{_SQLITE}{Path(uri.removeprefix(_SQLITE)).resolve()}"
    return uri


def create_store_folder(cfg: MlflowConfig) -> str:
    """The tracking URI, with the folder of a SQLite store created (SQLite creates only files)."""
    uri = tracking_uri(cfg)
    if uri.startswith(_SQLITE):
        Path(uri.removeprefix(_SQLITE)).parent.mkdir(parents=True, exist_ok=True)
    return uri


def installed() -> bool:
    """Whether the mlflow package can be imported here (looked up, not imported: that is slow)."""
    return importlib.util.find_spec("mlflow") is not None


def check_reachable(cfg: MlflowConfig, timeout_s: float = 5.0) -> None:
    """Fail fast, in one line, when a configured tracking server does not answer.

    Called by every job before its SparkSession is built: a run that can only be tracked at the
    end should not spend an hour of compute first. Local stores (``sqlite:``, files) need no check.
    """
    uri = cfg.tracking_uri
    if not cfg.enabled or not uri.startswith(("http://", "https://")):
        return
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout_s) as resp:
            if resp.status == 200:
                return
            found = f"HTTP {resp.status}"
    except urllib.error.HTTPError as e:
        found = f"HTTP {e.code}"
    except (urllib.error.URLError, OSError) as e:
        found = str(getattr(e, "reason", e))
    raise SetupError(
        f"MLflow tracking server {uri} is not reachable ({found}); start it, or set "
        "mlflow.tracking_uri=sqlite:///work/mlflow.db for a local store"
    )


def setup(cfg: MlflowConfig) -> Any:
    """Point MLflow at the configured store and experiment (created on first use); the module."""
    import mlflow

    bound_http(cfg)
    mlflow.set_tracking_uri(create_store_folder(cfg))
    experiment = mlflow.get_experiment_by_name(cfg.experiment)
    if experiment is None:
        root = cfg.artifact_root
        location = root if "://" in root else Path(root).resolve().as_uri()
        mlflow.create_experiment(cfg.experiment, artifact_location=f"{location}/{cfg.experiment}")
    mlflow.set_experiment(cfg.experiment)
    return mlflow


def bound_http(cfg: MlflowConfig) -> None:
    """Cap MLflow's HTTP retries and timeout for this process (and the processes it starts).

    MLflow's defaults (7 retries with exponential backoff, 120 s per request) turn one call to a
    server that went away into minutes; training would stall on every epoch's metrics. Values
    the user set in the environment win.
    """
    environ.put_own("MLFLOW_HTTP_REQUEST_MAX_RETRIES", str(cfg.http_retries))
    environ.put_own("MLFLOW_HTTP_REQUEST_TIMEOUT", str(cfg.http_timeout_s))
