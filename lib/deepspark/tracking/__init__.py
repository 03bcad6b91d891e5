"""MLflow helpers: one parent run per pipeline run, a nested run per stage.

Stages call :func:`stage_run`; when a pipeline run is active the stage nests under it, when a stage
runs alone it gets a top-level run of its own. With ``mlflow.enabled: false`` every call is a no-op.

MLflow itself is optional for training without Spark (``python -m deepspark.train`` on a GPU box
with torch, numpy, pyarrow and pyyaml only): :func:`usable` turns tracking off there, with one
warning, when the package is missing. A Spark job that asks for it fails in one line instead.

Training runs carry MLflow's system metrics (``system/...``: CPU, memory, disk, network, GPU),
sampled every ``mlflow.system_metrics_s`` by a thread that ends with the run
(:func:`system_metrics`).

A tracking server that stops answering mid-job costs bounded time (``mlflow.http_retries`` and
``mlflow.http_timeout_s``), and ending a run it can no longer reach never hides the job's own error.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from deepspark import environ
from deepspark.config import Config
from deepspark.config.pipeline import MlflowConfig
from deepspark.errors import SetupError
from deepspark.tracking.outage import (
    TrackingError,
    drop_active_run,
    ending,
    one_line,
    outage_errors,
    stop_system_metrics,
)
from deepspark.tracking.records import (
    active,
    flatten,
    log_artifacts,
    log_config,
    log_dataset,
    log_metrics,
    meta_dataset,
    run_tags,
)

# What this package's modules hold, importable from deepspark.tracking as before they were split:
# setup and the run context managers here, outage.py (a server that stops answering) and
# records.py (what a run records).
__all__ = [
    "TrackingError",
    "active",
    "bound_http",
    "check_reachable",
    "drop_active_run",
    "flatten",
    "installed",
    "log_artifacts",
    "log_config",
    "log_dataset",
    "log_metrics",
    "meta_dataset",
    "one_line",
    "outage_errors",
    "pipeline_run",
    "run_tags",
    "setup",
    "stage_run",
    "stop_system_metrics",
    "system_metrics",
    "create_store_folder",
    "tracking_uri",
    "usable",
]

log = logging.getLogger(__name__)
_WARNED_MISSING = False  # usable() has said that MLflow is missing
_WARNED_NO_PSUTIL = False  # system_metrics() has said that psutil is missing


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


def usable(cfg: Config, *, optional: bool) -> Config:
    """``cfg`` as is, or with tracking off when it asks for MLflow and MLflow is not installed.

    Args:
        cfg: a job's config.
        optional: whether this job may run untracked (training without Spark: the checkpoints
            and the log hold the results); otherwise a missing MLflow is a setup error.

    Raises:
        SetupError: ``mlflow.enabled`` is true, MLflow is not installed and it is not optional.
    """
    if not cfg.mlflow.enabled or installed():
        return cfg
    if not optional:
        raise SetupError(
            "mlflow.enabled=true but the mlflow package is not installed here; install it (at the "
            "version in your stack's locks/<stack>.txt), or set mlflow.enabled=false"
        )
    global _WARNED_MISSING
    # Once per process, and only on rank 0 of a torchrun launch: one line per job, not per rank.
    if not _WARNED_MISSING and environ.rank() == 0:
        log.warning(
            "MLflow is not installed: tracking is off for this run (results go to the log and "
            "the checkpoints); install mlflow to track, or set mlflow.enabled=false to silence this"
        )
    _WARNED_MISSING = True
    return dataclasses.replace(cfg, mlflow=dataclasses.replace(cfg.mlflow, enabled=False))


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


def system_metrics(cfg: MlflowConfig) -> bool:
    """Whether the next run gets MLflow's system metrics (``start_run(log_system_metrics=...)``).

    Sets their sampling interval (``mlflow.system_metrics_s``, one sample per logged point) so a
    one-minute training run draws a curve (MLflow's default is a point every 10 s); a value the
    user set in ``MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL`` wins. CPU, memory, disk and network
    come from psutil; GPU utilization and memory from pynvml (the ``gpu`` extra), which MLflow
    skips, with an INFO line, where it is missing or finds no GPU. Without psutil MLflow would
    refuse to start the run: the run goes on without system metrics, after one warning.
    """
    if cfg.system_metrics_s <= 0:
        return False
    if importlib.util.find_spec("psutil") is None:
        global _WARNED_NO_PSUTIL
        if not _WARNED_NO_PSUTIL:
            log.warning("psutil is not installed: the training run logs no system metrics")
        _WARNED_NO_PSUTIL = True
        return False
    environ.put_own("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", str(cfg.system_metrics_s))
    environ.put_own("MLFLOW_SYSTEM_METRICS_SAMPLES_BEFORE_LOGGING", "1")
    return True


@contextmanager
def pipeline_run(cfg: Config) -> Iterator[Any]:
    """The parent run of one pipeline run (yields None when tracking is disabled)."""
    if not cfg.mlflow.enabled:
        yield None
        return
    mlflow = setup(cfg.mlflow)
    name = f"{cfg.pipeline.name}-pipeline"
    run = mlflow.start_run(run_name=name, tags=run_tags(cfg))
    with ending(mlflow, f"run {name} ({run.info.run_id})"):
        log_config(mlflow, cfg)
        yield run


@contextmanager
def stage_run(cfg: Config, stage: str, params: Mapping[str, Any] | None = None) -> Iterator[Any]:
    """A run for one stage, nested under the active pipeline run if there is one."""
    if not cfg.mlflow.enabled:
        yield None
        return
    mlflow = setup(cfg.mlflow)
    nested = mlflow.active_run() is not None
    name = f"{cfg.pipeline.name}-{stage}"
    tags = {**run_tags(cfg), "deepspark.stage": stage}
    run = mlflow.start_run(run_name=name, nested=nested, tags=tags)
    with ending(mlflow, f"run {name} ({run.info.run_id})"):
        if not nested:
            log_config(mlflow, cfg)
        if params:
            mlflow.log_params(flatten(params, prefix=stage))
        yield run
