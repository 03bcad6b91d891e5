"""What a run records: metrics, artifacts, input datasets (lineage), the config and its tags.

Every call is a no-op when no run is active (a stage also runs with tracking off), except
:func:`log_config`, which is handed the MLflow module of the run it logs into.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from typing import Any

import yaml

from deepspark.config import Config, config_hash, to_plain

_PARAM_KEY_INVALID = re.compile(r"[^A-Za-z0-9_\-. :/]")


def active() -> bool:
    """Whether an MLflow run is active in this process (stages also run with tracking off).

    Checked without importing mlflow: a job that never started a run need not pay for it.
    """
    mlflow = sys.modules.get("mlflow")
    return mlflow is not None and mlflow.active_run() is not None


def run_id() -> str | None:
    """The active MLflow run's id (what a table's commit names as the run that wrote it)."""
    mlflow = sys.modules.get("mlflow")
    run = mlflow.active_run() if mlflow is not None else None
    return run.info.run_id if run is not None else None


def log_metrics(metrics: Mapping[str, float]) -> None:
    """Log metrics to the active run, if any."""
    if active() and metrics:
        import mlflow

        mlflow.log_metrics({k: float(v) for k, v in metrics.items()})


def log_dataset(
    name: str,
    path: str,
    *,
    rows: int,
    digest: str,
    schema: str,
    context: str,
    version: int | None = None,
) -> None:
    """Record a stage input as an MLflow dataset of the active run (lineage: model -> table).

    Only metadata: where it is, a digest of its files, its row count and schema (and a Delta
    table's version), so a model can be traced back to exactly the data it saw without MLflow
    reading that data again.
    """
    if not active():
        return
    import mlflow

    tags = {"path": path, "rows": str(rows), "schema": schema[:5000]}
    if version is not None:
        tags["version"] = str(version)
    mlflow.log_input(meta_dataset(name, path, digest, version), context=context, tags=tags)


def meta_dataset(name: str, path: str, digest: str, version: int | None = None) -> Any:
    """The MLflow dataset :func:`log_dataset` records (metrics name it to say what they are on).

    A Delta table's ``version`` makes its source MLflow's Delta source, which records it.
    """
    from mlflow.data.meta_dataset import MetaDataset

    return MetaDataset(_dataset_source(path, version), name=name, digest=digest)


def _dataset_source(path: str, version: int | None = None) -> Any:
    import warnings

    from mlflow.data.dataset_source_registry import resolve_dataset_source

    if path.startswith("file://"):
        path = path[len("file://") :]
    if version is not None:
        from mlflow.data.delta_dataset_source import DeltaDatasetSource

        class VersionedSource(DeltaDatasetSource):
            # MLflow's to_dict tests the version for truth, so it drops version 0: the first
            # version of every table (mlflow 3.x, delta_dataset_source.py).
            def to_dict(self) -> dict[Any, Any]:
                return {**super().to_dict(), "delta_table_version": version}

        return VersionedSource(path=path, delta_table_version=version)
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
