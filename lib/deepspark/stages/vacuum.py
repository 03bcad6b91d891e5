"""Vacuum: delete the files of Delta versions replaced more than ``paths.retention_days`` ago.

Delta keeps every version's files until a VACUUM deletes those that no version within the
retention still needs; time travel to an older version fails after that. A version that a
registered model was trained on must stay readable, for a retrain or an audit
(``pipeline.train.features_version``): a table holding one older than the retention is not
vacuumed, with one line saying which model holds which version, and its log retention is raised
so the version's commit stays reachable too. Tables whose oldest version is within the
retention have nothing to delete and cost no Spark job.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time

from pyspark.sql import SparkSession

from deepspark import registry, tracking
from deepspark.config import Config
from deepspark.config.pipeline import LAYERS
from deepspark.io import delta
from deepspark.layout import Layout, table_name
from deepspark.stages import StageResult
from deepspark.tracking import Tracking

STAGE = "vacuum"
log = logging.getLogger("deepspark")
DAY_MS = 24 * 3600 * 1000


def run(cfg: Config, spark: SparkSession, tracker: Tracking | None = None) -> StageResult:
    """Vacuum every Delta table of the pipeline, except those a registered model needs."""
    layout = Layout(cfg.paths, cfg.pipeline.name)
    days = cfg.paths.retention_days
    held: dict[str, dict[int, str]] | None = None  # asked of MLflow once a table has old files
    metrics = {"tables": 0.0, "vacuumed": 0.0, "kept": 0.0}
    roots = [f"{layout.root}/{layer}/{cfg.pipeline.name}" for layer in LAYERS]
    with (tracker or Tracking()).stage_run(cfg, STAGE, {"retention_days": days}):
        for path in delta.find_tables(roots):
            metrics["tables"] += 1
            commits = delta.history(path)
            if len(commits) < 2 or commits[0].timestamp_ms >= _cutoff(days):
                continue  # nothing replaced before the cutoff: nothing to delete, no Spark job
            if held is None:  # keyed as the runs record them: absolute local paths, or URIs
                held = _trained_on(cfg)
            key = path if "://" in path else os.path.abspath(path)
            _vacuum(spark, path, commits, days, held.get(key, {}), metrics)
        tracking.log_metrics(metrics)
    log.info(
        "vacuum: %d Delta table(s), %d vacuumed (retention %g days), %d kept for a registered "
        "model", metrics["tables"], metrics["vacuumed"], days, metrics["kept"],
    )  # fmt: skip
    return StageResult(STAGE, metrics, {})


def _cutoff(days: float) -> float:
    return time.time() * 1000 - days * DAY_MS


def _vacuum(
    spark: SparkSession,
    path: str,
    commits: list[delta.Commit],
    days: float,
    held: dict[int, str],
    metrics: dict[str, float],
) -> None:
    """One table with old versions: vacuumed, or kept whole for a registered model's version."""
    now_ms = time.time() * 1000
    cutoff = now_ms - days * DAY_MS
    when = {c.version: c.timestamp_ms for c in commits}
    old = sorted(
        (v, who) for v, who in held.items()
        if v != commits[-1].version and when.get(v, now_ms) < cutoff
    )  # fmt: skip
    if old:
        version, who = old[0]
        age = (now_ms - when[version]) / DAY_MS
        delta.keep_log(spark, path, math.ceil(age + max(days, 30)))
        log.warning(
            "vacuum: kept %s whole: %s was trained on its version %d (%.1f days old), older "
            "than paths.retention_days=%g", table_name(path), who, version, age, days,
        )  # fmt: skip
        metrics["kept"] += 1
        return
    delta.vacuum(spark, path, days * 24)
    metrics["vacuumed"] += 1


def _trained_on(cfg: Config) -> dict[str, dict[int, str]]:
    """Delta tables the pipeline's registered versions were trained on: path -> {version: who}.

    Read from each version's run: its input datasets with a Delta source name the table and
    its version (training records them, :mod:`deepspark.train.report`). ``who`` is
    ``"<model> v<version>"``. Empty with tracking off or nothing registered.
    """
    if not cfg.mlflow.enabled:
        return {}
    mlflow = tracking.setup(cfg.mlflow)
    client, name = mlflow.MlflowClient(), registry.model_name(cfg)
    out: dict[str, dict[int, str]] = {}
    for mv in client.search_model_versions(f"name = '{name}'"):
        if not mv.run_id:
            continue
        for used in client.get_run(mv.run_id).inputs.dataset_inputs:
            if used.dataset.source_type != "delta_table":
                continue
            source = json.loads(used.dataset.source)
            path, version = source.get("path"), source.get("delta_table_version")
            if path is None or version is None:
                continue
            path = path if "://" in path else os.path.abspath(path)
            out.setdefault(path, {})[int(version)] = f"{name} v{mv.version}"
    return out
