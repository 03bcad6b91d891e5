"""MLflow helpers: one parent run per pipeline run, a nested run per stage.

Stages call :func:`stage_run`; when a pipeline run is active the stage nests under it, when a stage
runs alone it gets a top-level run of its own. With ``mlflow.enabled: false`` every call is a no-op.
"""

from __future__ import annotations

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
from deepspark.config.model import MlflowConfig
from deepspark.errors import SetupError

log = logging.getLogger(__name__)
_PARAM_KEY_INVALID = re.compile(r"[^A-Za-z0-9_\-. :/]")


def tracking_uri(cfg: MlflowConfig) -> str:
    """The tracking URI with a relative SQLite path made absolute (and its folder created)."""
    uri = cfg.tracking_uri
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri.startswith(prefix + "/"):
        db = Path(uri[len(prefix) :]).resolve()
        db.parent.mkdir(parents=True, exist_ok=True)
        return f"{prefix}{db}"
    return uri


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

    mlflow.set_tracking_uri(tracking_uri(cfg))
    experiment = mlflow.get_experiment_by_name(cfg.experiment)
    if experiment is None:
        root = cfg.artifact_root
        location = root if "://" in root else Path(root).resolve().as_uri()
        mlflow.create_experiment(cfg.experiment, artifact_location=f"{location}/{cfg.experiment}")
    mlflow.set_experiment(cfg.experiment)
    return mlflow


@contextmanager
def pipeline_run(cfg: Config) -> Iterator[Any]:
    """The parent run of one pipeline run (yields None when tracking is disabled)."""
    if not cfg.mlflow.enabled:
        yield None
        return
    mlflow = setup(cfg.mlflow)
    with mlflow.start_run(run_name=f"{cfg.pipeline.name}-pipeline", tags=run_tags(cfg)) as run:
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
    with mlflow.start_run(run_name=name, nested=nested, tags=tags) as run:
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
    from mlflow.data.meta_dataset import MetaDataset

    dataset = MetaDataset(_dataset_source(path), name=name, digest=digest)
    tags = {"path": path, "rows": str(rows), "schema": schema[:5000]}
    mlflow.log_input(dataset, context=context, tags=tags)


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
