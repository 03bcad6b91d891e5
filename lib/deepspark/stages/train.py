"""Train: feature Parquet -> Petastorm -> DDP -> a checkpointed model in one MLflow run.

With a SparkSession the processes are started by TorchDistributor; without one (``python -m
deepspark.train``, torchrun) this process is the worker. Either way the features are checked
first, so bad input fails here in one line, before any process is launched.

When the tracking server stopped answering mid-run, training still finishes and keeps its
checkpoints; the job then fails in one line naming what was not logged, and the same command,
rerun with the server up, logs only that (no epoch is trained again).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from deepspark.config import Config
from deepspark.stages import StageResult
from deepspark.tracking import Tracking, TrackingError
from deepspark.train import launch
from deepspark.train.job import prepare

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

STAGE = "train"
log = logging.getLogger("deepspark")


def run(cfg: Config, spark: SparkSession | None, tracker: Tracking | None = None) -> StageResult:
    """Train the configured model on the pipeline's features; metrics from rank 0."""
    tracker = tracker or Tracking()
    # Called directly (tests, notebooks) as well as from the CLI: the same MLflow-is-optional rule.
    cfg = tracker.usable(cfg, optional=spark is None)
    # The training run is started by rank 0 in another process: it names the pipeline's run, when
    # there is one, as its parent by id.
    job = prepare(cfg, parent_run_id=tracker.parent if cfg.mlflow.enabled else None)
    log.debug(
        "train %s: %s on %s, %d train rows, checkpoints in %s",
        cfg.pipeline.name, cfg.pipeline.train.model, job.x_shape, job.splits["train"].rows,
        job.checkpoint_dir,
    )  # fmt: skip
    summary = launch.with_distributor(job) if spark is not None else launch.in_process(job)
    summary = summary or {}
    if summary.get("mlflow_failed"):
        run = summary.get("run_id")
        raise TrackingError(
            f"MLflow logging failed mid-run ({', '.join(summary['mlflow_failed'])}; first error: "
            f"{summary['mlflow_error']}); training finished and its checkpoints are kept in "
            f"{job.checkpoint_dir}; rerun the same command with the server up to log the results "
            + (f"to run {run}" if run else "to a new run")
        )
    metrics = {
        k: float(v)
        for k, v in summary.items()
        if isinstance(v, int | float) and not isinstance(v, bool)
    }
    outputs = {"checkpoints": job.checkpoint_dir}
    if summary.get("run_id"):
        outputs["mlflow_run"] = summary["run_id"]
    if summary.get("registered_model"):
        outputs["registered_model"] = summary["registered_model"]
        outputs["registry_alias"] = summary["registry_alias"]
    return StageResult(STAGE, metrics, outputs)
