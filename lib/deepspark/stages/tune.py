"""Tune: an Optuna study over ``pipeline.train`` keys, one single-process trial per Spark task.

Everything that can be checked is checked before the first trial: the search space against the
training config (:mod:`deepspark.tune.space`), the features against the model (training's own
preflight), and, from an executor, the MLflow store and the features. The study lives in MLflow
(one run, a nested run per trial: :mod:`deepspark.tune.study`); rerunning the same command
resumes it. It ends with ``{data}/tuning/{pipeline}/best.yaml``, an overlay of the searched
config with the best values (``deepspark run train -c <it>`` trains and registers that model
through the gate), the trials as CSV, and three plots, all logged to the study's run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from deepspark import environ, tracking
from deepspark.config import Config, to_plain
from deepspark.errors import ConfigError, DeepsparkError
from deepspark.io import staged_outputs
from deepspark.layout import Layout
from deepspark.stages import StageResult
from deepspark.tracking import Tracking
from deepspark.train.job import TrainJob, prepare
from deepspark.tune import report
from deepspark.tune.space import check_space
from deepspark.tune.study import (
    Progress,
    check_reach,
    finished,
    open_study,
    requeue_unfinished,
    run_trials,
    trial_config,
)
from deepspark.tune.trial import StudyRef

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

STAGE = "tune"


log = logging.getLogger("deepspark")


class TuneError(DeepsparkError):
    """A study ended with no completed trial."""


def run(cfg: Config, spark: SparkSession, tracker: Tracking | None = None) -> StageResult:
    """Run (or resume) the study until it holds ``pipeline.tune.trials`` finished trials.

    The study is a top-level MLflow run of its own (tune is not a pipeline stage): ``tracker``
    is taken for the stages' common signature, and its parent run is never used.
    """
    started = time.perf_counter()
    check_space(cfg)
    tune = cfg.pipeline.tune
    if not cfg.mlflow.enabled:
        raise ConfigError(f"{cfg.where}: tune keeps its study in MLflow; mlflow.enabled is false")
    job = prepare(trial_config(cfg, {}))  # the features against the model, before any trial
    mlflow = tracking.setup(cfg.mlflow)
    uri = tracking.tracking_uri(cfg.mlflow)
    experiment = mlflow.get_experiment_by_name(cfg.mlflow.experiment).experiment_id
    check_reach(spark, uri, experiment, job)
    name = tune.study or study_name(cfg, job)
    study, existed = open_study(name, experiment, cfg, job)
    study_run = study._study_id  # MlflowStorage: the study's MLflow run
    client = mlflow.MlflowClient()
    client.update_run(study_run, status="RUNNING")
    for key, value in tracking.run_tags(cfg).items():
        client.set_tag(study_run, key, value)
    client.set_tag(study_run, "deepspark.stage", STAGE)
    progress = Progress(total=tune.trials, done=finished(study))
    progress.rerun = requeue_unfinished(study) if existed else 0
    log.info(
        "tune %s: study %s, %s %d of %d trials, %d at a time%s", cfg.pipeline.name, name,
        "resumed with" if existed else "new,", progress.done, tune.trials, tune.parallelism,
        f"; re-running {progress.rerun} unfinished" if progress.rerun else "",
    )  # fmt: skip
    ref = StudyRef(name, experiment, uri, tune.pruner, job.train.epochs, job.train.monitor)
    try:
        if progress.done < progress.total:
            run_trials(spark, cfg, study, ref, progress, _threads(spark, tune.parallelism))
    except BaseException:
        client.set_terminated(study_run, status="KILLED")
        raise
    done = report.snapshot(study)
    outputs = _outputs(cfg, spark, done, job, client, study_run)
    client.set_terminated(study_run, status="FINISHED")
    return _result(cfg, done, progress, job, outputs, study_run, time.perf_counter() - started)


def study_name(cfg: Config, job: TrainJob) -> str:
    """``<pipeline>-<hash>`` of what the trials search and train on (not of how many run).

    The same search over the same features resumes; a changed space, training config or feature
    set starts a new study. ``trials`` and ``parallelism`` stay out: raising ``trials`` extends
    the study it names.
    """
    tune = to_plain(cfg.pipeline.tune)
    for key in ("trials", "parallelism", "study"):
        tune.pop(key)
    blob = {"tune": tune, "train": to_plain(cfg.pipeline.train), "data": job.manifest.config_hash,
            "paths": cfg.paths.data}  # fmt: skip
    digest = hashlib.sha256(json.dumps(blob, sort_keys=True, default=str).encode()).hexdigest()
    return f"{cfg.pipeline.name}-tune-{digest[:8]}"


def _threads(spark: SparkSession, parallelism: int) -> int:
    """Torch threads per trial: the local cores shared out; on a cluster, ``spark.task.cpus``."""
    sc = spark.sparkContext
    if sc.master.startswith("local"):
        return environ.torch_threads(parallelism, cores=sc.defaultParallelism)
    return environ.torch_threads(1, cores=int(sc.getConf().get("spark.task.cpus", "1")))


def _outputs(cfg: Config, spark: SparkSession, study, job: TrainJob, client, run_id: str) -> dict:
    """best.yaml and trials.csv (staged, beside the pipeline's data), plots: all in the run.

    ``study`` is the in-memory snapshot (:func:`deepspark.tune.report.snapshot`).
    """
    tune = cfg.pipeline.tune
    layout = Layout(cfg.paths, cfg.pipeline.name)
    metric = job.train.monitor
    params = report.best_params(study, tune.space)
    written: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as tmp, staged_outputs(spark) as out:
        frame = report.trials_table(study)
        csv = frame.to_csv(index=False)
        table = layout.path("tuning", "trials.csv")
        out.write_text(table, csv)
        written["trials"] = table
        local = [Path(tmp) / "trials.csv"]
        local[0].write_text(csv)
        if params is not None:
            best = study.best_trial
            path = layout.path("tuning", "best.yaml")
            header = (
                f"deepspark tune: study {study.study_name}, best of {len(frame)} trials: "
                f"trial {best.number}, validation {metric} {best.value:.6g}\n"
                f"Train and register it: deepspark run train -c {path}"
            )
            text = report.overlay(cfg, params, header)
            out.write_text(path, text)
            written["best_config"] = path
            local.append(Path(tmp) / "best.yaml")
            local[-1].write_text(text)
        local += report.plots(study, Path(tmp), f"validation {metric}")
        out.commit()
        for f in local:
            client.log_artifact(run_id, str(f), "tune" if f.suffix != ".png" else "plots")
    if params is not None:
        client.log_metric(run_id, f"best_val_{metric}", float(study.best_value))
    return written


def _result(cfg: Config, study, progress: Progress, job: TrainJob, outputs: dict, run_id: str,
            seconds: float) -> StageResult:  # fmt: skip
    from optuna.trial import TrialState

    counts = {s.name.lower(): 0 for s in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)}
    for t in study.get_trials(deepcopy=False):
        if t.state.name.lower() in counts:
            counts[t.state.name.lower()] += 1
    metrics = {"trials_run": float(len(progress.outcomes)), "trials_rerun": float(progress.rerun),
               **{f"trials_{k}": float(v) for k, v in counts.items()}}  # fmt: skip
    metric = job.train.monitor
    if "best_config" in outputs:
        best = study.best_trial
        metrics[f"best_val_{metric}"] = float(best.value)
        log.info("tune %s: best trial %d, validation %s %.4g (%s); %d trials in %.0fs; "
                 "train it: deepspark run train -c %s", cfg.pipeline.name, best.number, metric,
                 best.value, report.describe(best.params),
                 len(progress.outcomes), seconds, outputs["best_config"])  # fmt: skip
    elif counts["fail"]:
        failed = [o for o in progress.outcomes if o.error]
        first = failed[0].error.strip().splitlines()[-1] if failed else "see the trial runs"
        raise TuneError(
            f"tune {cfg.pipeline.name}: no trial of study {study.study_name} completed "
            f"({counts['fail']} failed; the first: {first}); each trial's traceback is its "
            "MLflow run's error.txt"
        )
    return StageResult(STAGE, metrics, {**outputs, "mlflow_run": run_id})
