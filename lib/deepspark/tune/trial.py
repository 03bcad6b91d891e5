"""One trial, inside one Spark task: a single-process training run that reports every epoch.

:func:`run_trial` is top-level and picklable: the driver hands it a :class:`TrialTask` (the
trial's whole training job, already checked) and Spark runs it on an executor. It trains with
the pipeline's own Trainer and loader on the features Parquet, reports the best validation value
so far to the study after each epoch (what the pruner reads), logs the epoch's curves to the
trial's MLflow run, and stops when the pruner or early stopping says so. A failure comes back as
an outcome with its traceback, not as a task failure: Spark would retry a task, and a trial that
failed once on its own settings fails again.
"""

from __future__ import annotations

import logging
import tempfile
import time
import traceback
from dataclasses import dataclass, replace
from typing import Any

from deepspark.config.tune import PrunerConfig
from deepspark.logconf import quiet_progress_bars
from deepspark.train.job import TrainJob

log = logging.getLogger("deepspark.tune")


@dataclass(frozen=True)
class StudyRef:
    """Where a trial finds its study: MLflow's Optuna storage, in one experiment."""

    name: str
    experiment_id: str
    tracking_uri: str
    pruner: PrunerConfig
    epochs: int  # a trial's most epochs: hyperband's largest budget
    metric: str  # the validation metric a trial's value is (pipeline.train.monitor, resolved)


@dataclass(frozen=True)
class TrialTask:
    """What one Spark task needs to run one trial."""

    study: StudyRef
    trial_id: str  # the trial's MLflow run, which is also its id in the storage
    number: int
    params: dict[str, Any]
    job: TrainJob  # pipeline.train with the trial's values; one process, no resume, MLflow off
    threads: int  # torch threads: this task's share of the executor's cores


@dataclass(frozen=True)
class TrialOutcome:
    """What a trial came to; ``value`` is its best validation value (None: no epoch finished)."""

    number: int
    value: float | None
    epochs: int
    pruned: bool
    seconds: float
    error: str | None = None  # the traceback, when the trial failed


def make_pruner(cfg: PrunerConfig, epochs: int) -> Any:
    """The Optuna pruner for ``cfg`` (steps are epochs, 0-based)."""
    import optuna

    if cfg.kind == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=cfg.startup_trials, n_warmup_steps=cfg.warmup_epochs
        )
    if cfg.kind == "hyperband":
        low = max(1, cfg.warmup_epochs)
        return optuna.pruners.HyperbandPruner(min_resource=low, max_resource=max(low, epochs))
    return optuna.pruners.NopPruner()


def run_trial(task: TrialTask) -> TrialOutcome:
    """Train the trial's job for at most ``job.train.epochs`` epochs; never raises."""
    started = time.perf_counter()
    epochs, pruned = 0, False
    trainer = None
    quiet_progress_bars()  # an executor's Python worker: its stderr is the executor's log
    try:
        import torch

        torch.set_num_threads(task.threads)
        trial, client, storage = _connect(task)
        from deepspark.train.trainer import Trainer
        from deepspark.train.worker import importable

        importable(task.job)  # a package.module:factory model, shipped with --py-files

        gpu = task.job.train.use_gpu and torch.cuda.is_available()
        with tempfile.TemporaryDirectory(prefix="deepspark-trial-") as scratch:
            job = replace(task.job, checkpoint_dir=scratch)  # best weights: not kept past the trial
            trainer = Trainer(job, rank=0, world=1, device=torch.device("cuda" if gpu else "cpu"),
                              gpu=gpu)  # fmt: skip
            for epoch in range(job.train.epochs):
                record = trainer.epoch(epoch)
                epochs = epoch + 1
                _log_epoch(client, task.trial_id, record)
                trial.report(float(trainer.state.best), epoch)  # the best so far: monotone
                if trainer.state.stopped:
                    break
                if trial.should_prune():
                    pruned = True
                    break
        storage.flush_all_batches()
        best = trainer.state.best
        return TrialOutcome(task.number, None if best is None else float(best), epochs, pruned,
                            time.perf_counter() - started)  # fmt: skip
    except Exception:
        best = trainer.state.best if trainer is not None else None
        return TrialOutcome(task.number, None if best is None else float(best), epochs, False,
                            time.perf_counter() - started, traceback.format_exc())  # fmt: skip


def _connect(task: TrialTask) -> tuple[Any, Any, Any]:
    """The trial as Optuna sees it (for report and should_prune), an MLflow client, the storage."""
    import mlflow
    import optuna
    from mlflow.optuna.storage import MlflowStorage

    mlflow.set_tracking_uri(task.study.tracking_uri)
    storage = MlflowStorage(experiment_id=task.study.experiment_id)
    study = optuna.load_study(
        study_name=task.study.name,
        storage=storage,
        sampler=optuna.samplers.RandomSampler(),  # a task never samples: the driver does
        pruner=make_pruner(task.study.pruner, task.study.epochs),
    )
    return optuna.trial.Trial(study, task.trial_id), mlflow.MlflowClient(), storage


def _log_epoch(client: Any, run_id: str, record: dict[str, float]) -> None:
    from mlflow.entities import Metric

    now, step = int(time.time() * 1000), int(record["epoch"])
    metrics = [Metric(k, float(v), now, step) for k, v in record.items() if k != "epoch"]
    client.log_batch(run_id, metrics=metrics, synchronous=True)
