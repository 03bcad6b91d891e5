"""The whole pipeline in one Spark session.

The configured stages run in order, under one MLflow parent run with a nested run per stage.
"""

from __future__ import annotations

import importlib
import logging

from pyspark.sql import SparkSession

from deepspark import tracking
from deepspark.config import Config
from deepspark.stages import StageResult

log = logging.getLogger("deepspark")


def stage_runner(stage: str):  # noqa: ANN201 - returns a stage's run(cfg, spark)
    """The ``run`` function of a stage module (imported on demand)."""
    return importlib.import_module(f"deepspark.stages.{stage}").run


def applicable(cfg: Config) -> list[str]:
    """The configured stages that have something to do for this pipeline."""
    p = cfg.pipeline
    skip = {
        "clean": not p.clean,
        "aggregate": not p.aggregates,
        "features": p.features is None,
        "profile": not (p.profile.tables or p.profile.lines),
        "cluster": p.cluster is None,
        "train": p.train is None,
        # Scoring loads the champion from the registry: only after a registered training run.
        "score": p.train is None or not p.train.register.enabled or not cfg.mlflow.enabled,
    }
    skip["evaluate"] = skip["score"]  # evaluation loads the registered model the same way
    return [s for s in p.stages if not skip.get(s, False)]


def run(cfg: Config, spark: SparkSession) -> dict[str, StageResult]:
    """Run every applicable stage; the first failure stops the pipeline (and is reported)."""
    results: dict[str, StageResult] = {}
    with tracking.pipeline_run(cfg):
        for stage in applicable(cfg):
            log.info("pipeline %s: stage %s", cfg.pipeline.name, stage)
            results[stage] = stage_runner(stage)(cfg, spark)
        totals = {
            f"{stage}.{k}": v
            for stage, r in results.items()
            for k, v in r.metrics.items()
            if k in ("rows_in", "rows_out", "rows_quarantined")
        }
        tracking.log_metrics(totals)
    warnings = [w for r in results.values() for w in r.warnings]
    if warnings:
        log.warning(
            "pipeline %s finished with %d validation warning(s):\n  %s",
            cfg.pipeline.name,
            len(warnings),
            "\n  ".join(warnings),
        )
    return results
