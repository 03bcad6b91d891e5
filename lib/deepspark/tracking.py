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
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from deepspark.config import Config, config_hash, to_plain
from deepspark.config.pipeline import MlflowConfig
from deepspark.errors import DeepsparkError, SetupError

log = logging.getLogger(__name__)
_PARAM_KEY_INVALID = re.compile(r"[^A-Za-z0-9_\-. :/]")
# What setup() and system_metrics() put into the environment: a later call in the same process
# may change its own values, but never one the user set.
_ENV_SET: dict[str, str] = {}
_WARNED_MISSING = False  # usable() has said that MLflow is missing
_WARNED_NO_PSUTIL = False  # system_metrics() has said that psutil is missing


class TrackingError(DeepsparkError):
    """Logging to MLflow failed after the job had started (the server stopped answering)."""


def tracking_uri(cfg: MlflowConfig) -> str:
    """The tracking URI with a relative SQLite path made absolute (and its folder created)."""
    uri = cfg.tracking_uri
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri.startswith(prefix + "/"):
        db = Path(uri[len(prefix) :]).resolve()
        db.parent.mkdir(parents=True, exist_ok=True)
        return f"{prefix}{db}"
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
    if not _WARNED_MISSING and os.environ.get("RANK", "0") == "0":
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
    mlflow.set_tracking_uri(tracking_uri(cfg))
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
    _put_env("MLFLOW_HTTP_REQUEST_MAX_RETRIES", str(cfg.http_retries))
    _put_env("MLFLOW_HTTP_REQUEST_TIMEOUT", str(cfg.http_timeout_s))


def _put_env(key: str, value: str) -> None:
    """``os.environ[key] = value`` unless the user set ``key`` (this module's own value is not)."""
    current = os.environ.get(key)
    if current is None or current == _ENV_SET.get(key):
        os.environ[key] = _ENV_SET[key] = value


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
    _put_env("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", str(cfg.system_metrics_s))
    _put_env("MLFLOW_SYSTEM_METRICS_SAMPLES_BEFORE_LOGGING", "1")
    return True


def stop_system_metrics(run_id: str) -> None:
    """Stop the run's system-metrics thread without a last call to the server, if it still runs.

    ``mlflow.end_run`` stops it (and logs its last point) once the server has marked the run
    ended; when that call failed, or the run was dropped (:func:`drop_active_run`), the thread
    would otherwise keep sampling and asking the server about the run until the process exits.
    """
    from mlflow.tracking import fluent

    # MLflow's registry of monitors, the one end_run reads: private, so a release without it
    # (the supported range is mlflow 3.x) leaves the thread to end with the process.
    monitors = getattr(fluent, "run_id_to_system_metrics_monitor", {})
    monitor = monitors.pop(run_id, None)
    if monitor is not None:
        monitor._shutdown_event.set()  # finish() would join and flush: one more failing call


def one_line(e: BaseException) -> str:
    """A failed MLflow call in one short line: the endpoint and the network error, if any.

    MLflow's own message repeats the URL, the query and the urllib3 retry state on one line of
    several hundred characters; the endpoint and the errno are what a user acts on.
    """
    text = str(e).strip()
    first = text.splitlines()[0] if text else type(e).__name__
    request = re.match(r"API request to (\S+) failed with exception", first)
    cause = re.search(r"\[Errno -?\d+\] [^'\")]+|Read timed out|too many \d+ error", first)
    if request and cause:
        return f"request to {request.group(1)} failed: {cause.group(0)}"
    return first if len(first) <= 300 else f"{first[:297]}..."


def outage_errors() -> tuple[type[BaseException], ...]:
    """What a failed MLflow call raises: its own error, a requests error, a socket or file error.

    Anything else (a TypeError, say) is a bug and keeps its traceback.
    """
    import requests
    from mlflow.exceptions import MlflowException

    return (MlflowException, requests.RequestException, OSError)


def drop_active_run() -> None:
    """Forget this thread's active run without telling the server, which stopped answering.

    ``mlflow.end_run`` would ask the server once more (retries and all), and so would MLflow's
    exit hook, after the job's last line. The run stays RUNNING on the server until a rerun
    reopens and ends it.
    """
    from mlflow.environment_variables import MLFLOW_RUN_ID
    from mlflow.tracking import fluent

    stack = fluent._active_run_stack.get()  # private, but what end_run pops (mlflow is pinned)
    if stack:
        stop_system_metrics(stack.pop().info.run_id)
    MLFLOW_RUN_ID.unset()


@contextmanager
def _ending(mlflow: Any, what: str) -> Iterator[None]:
    """End the active run after the body: FINISHED, or FAILED when the body raised.

    ``mlflow.start_run``'s own context manager raises from its exit when the server is gone,
    which would replace the body's error (the one the job must report) with a traceback.
    """
    try:
        yield
    except BaseException:
        _end_run(mlflow, "FAILED", what)
        raise
    reason = _end_run(mlflow, "FINISHED", what)
    if reason is not None:
        raise TrackingError(f"MLflow logging failed: ending {what} ({reason})")


def _end_run(mlflow: Any, status: str, what: str) -> str | None:
    """``mlflow.end_run(status)``; on failure a warning and the one-line reason (never raises)."""
    try:
        mlflow.end_run(status=status)  # pops the run before it calls the server
    except Exception as e:  # whatever the client raised, the job's own outcome comes first
        reason = one_line(e)
        log.warning("MLflow: could not end %s as %s: %s", what, status, reason)
        return reason
    return None


@contextmanager
def pipeline_run(cfg: Config) -> Iterator[Any]:
    """The parent run of one pipeline run (yields None when tracking is disabled)."""
    if not cfg.mlflow.enabled:
        yield None
        return
    mlflow = setup(cfg.mlflow)
    name = f"{cfg.pipeline.name}-pipeline"
    run = mlflow.start_run(run_name=name, tags=run_tags(cfg))
    with _ending(mlflow, f"run {name} ({run.info.run_id})"):
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
    with _ending(mlflow, f"run {name} ({run.info.run_id})"):
        if not nested:
            log_config(mlflow, cfg)
        if params:
            mlflow.log_params(flatten(params, prefix=stage))
        yield run


def active() -> bool:
    """Whether an MLflow run is active in this process (stages also run with tracking off).

    Checked without importing mlflow: a job that never started a run need not pay for it.
    """
    mlflow = sys.modules.get("mlflow")
    return mlflow is not None and mlflow.active_run() is not None


def log_metrics(metrics: Mapping[str, float]) -> None:
    """Log metrics to the active run, if any."""
    if active() and metrics:
        import mlflow

        mlflow.log_metrics({k: float(v) for k, v in metrics.items()})


def log_dataset(name: str, path: str, *, rows: int, digest: str, schema: str, context: str) -> None:
    """Record a stage input as an MLflow dataset of the active run (lineage: model -> Parquet).

    Only metadata: where it is, a digest of its files, its row count and schema, so a model can be
    traced back to exactly the data it saw without MLflow reading that data again.
    """
    if not active():
        return
    import mlflow

    tags = {"path": path, "rows": str(rows), "schema": schema[:5000]}
    mlflow.log_input(meta_dataset(name, path, digest), context=context, tags=tags)


def meta_dataset(name: str, path: str, digest: str) -> Any:
    """The MLflow dataset :func:`log_dataset` records (metrics name it to say what they are on)."""
    from mlflow.data.meta_dataset import MetaDataset

    return MetaDataset(_dataset_source(path), name=name, digest=digest)


def _dataset_source(path: str) -> Any:
    import warnings

    from mlflow.data.dataset_source_registry import resolve_dataset_source

    if path.startswith("file://"):
        path = path[len("file://") :]
    # Several source types claim a local path; MLflow picks the file-system one and warns about
    # the ambiguity on every call, which says nothing to a pipeline user.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return resolve_dataset_source(path)


def log_artifacts(local_dir: str, artifact_path: str | None = None) -> None:
    """Log a local folder's files to the active run, if any."""
    if active():
        import mlflow

        mlflow.log_artifacts(local_dir, artifact_path=artifact_path)


def flatten(data: Any, prefix: str = "") -> dict[str, str]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": "1"}``, as MLflow params.

    Keys keep only the characters MLflow accepts (a column range like ``p{0..63}`` becomes
    ``p_0..63_``); values are cut to MLflow's param size.
    """
    out: dict[str, str] = {}
    if isinstance(data, Mapping):
        for k, v in data.items():
            out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
    else:
        out[_PARAM_KEY_INVALID.sub("_", prefix)] = str(data)[:6000]
    return out


def log_config(mlflow: Any, cfg: Config) -> None:
    """Log the resolved config as ``config.yaml`` plus a few headline params."""
    # The full resolved config as an artifact (params get cut and flattened; this does not).
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "config.yaml")
        with open(path, "w", encoding="utf-8") as fh:
            yaml.safe_dump(to_plain(cfg), fh, sort_keys=False)
        mlflow.log_artifact(path)
    mlflow.log_params(flatten({"pipeline": cfg.pipeline.name, "spark.master": cfg.spark.master}))


def run_tags(cfg: Config) -> dict[str, str]:
    """Tags every deepspark run carries: pipeline, config file and hash, git commit."""
    tags = {
        "deepspark.pipeline": cfg.pipeline.name,
        "deepspark.config_file": cfg.files[-1] if cfg.files else "",
        "deepspark.config_hash": config_hash(cfg),
    }
    commit = _git_commit()
    if commit:
        tags["mlflow.source.git.commit"] = commit
    return tags


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None
