"""The study, driven from the Spark driver: ask, run one trial per Spark task, tell.

Storage is MLflow's own Optuna storage (``mlflow.optuna.storage.MlflowStorage``): the study is
one MLflow run and each trial a run nested under it, holding the trial's parameters, its
per-epoch curves and its value, so the whole search is reviewed in the MLflow UI. Executors reach
it through the tracking store, which is checked from an executor before any trial starts.

MLflow's ``MlflowSparkStudy`` drives the same storage, but not as this stage needs: it runs
``trials / parallelism`` trials one after another inside each Spark task, its tasks race to claim
queued trials (the claim reads, then writes, the run's status), and a killed study's trials stay
RUNNING forever. Here the driver alone asks and tells, under one lock, and runs each trial as one
single-task Spark job from one of ``parallelism`` threads: one trial per task, ``parallelism``
tasks at a time, and an unfinished trial of a killed study is re-run with its own parameters.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from deepspark.config import Config
from deepspark.errors import ConfigError, DeepsparkError, InputError
from deepspark.objectives import HIGHER_IS_BETTER
from deepspark.train.job import TrainJob, prepare
from deepspark.tune.space import apply, suggest
from deepspark.tune.trial import StudyRef, TrialOutcome, TrialTask, make_pruner, run_trial

log = logging.getLogger("deepspark")
INTERRUPTED = "interrupted"  # user attribute of a trial whose study was killed mid-trial


@dataclass
class Progress:
    """What this call did to the study (the driver's threads update it under the study lock)."""

    total: int
    done: int  # finished trials in the study before this call (completed, pruned, failed)
    rerun: int = 0  # unfinished trials of an interrupted call, queued again
    issued: int = 0
    outcomes: list[TrialOutcome] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)


def trial_config(cfg: Config, params: Mapping[str, Any]) -> Config:
    """The config one trial trains: the searched values, one process, no resume, no MLflow run.

    The trial's MLflow run is the storage's (the driver names and tags it); the Trainer's own
    Reporter would open a second one and log a model no one registers.
    """
    tune = cfg.pipeline.tune
    trial = apply(cfg, params)
    train = trial.pipeline.train
    epochs = tune.epochs if tune is not None and tune.epochs else train.epochs
    train = replace(train, processes=1, resume=False, epochs=epochs,
                    warmup_epochs=min(train.warmup_epochs, epochs - 1))  # fmt: skip
    return replace(trial, pipeline=replace(trial.pipeline, train=train),
                   mlflow=replace(trial.mlflow, enabled=False))  # fmt: skip


def direction(job: TrainJob) -> str:
    """``maximize`` for accuracy, ``minimize`` for a loss or an error."""
    return "maximize" if HIGHER_IS_BETTER[job.train.monitor] else "minimize"


def open_study(name: str, experiment_id: str, cfg: Config, job: TrainJob) -> tuple[Any, bool]:
    """The study called ``name`` in the experiment, created on first use; whether it existed."""
    import optuna
    from mlflow.optuna.storage import MlflowStorage

    tune = cfg.pipeline.tune
    storage = MlflowStorage(experiment_id=experiment_id)
    sampler = _sampler(tune)
    pruner = make_pruner(tune.pruner, job.train.epochs)
    kwargs = {"study_name": name, "storage": storage, "sampler": sampler, "pruner": pruner}
    # MlflowStorage does not refuse a second study of the same name: look before creating.
    if storage.get_study_id_by_name_if_exists(name):
        study = optuna.load_study(**kwargs)
        if study.direction.name.lower() != direction(job):
            raise ConfigError(
                f"{cfg.where}: study {name!r} {study.direction.name.lower()}s its value, but "
                f"pipeline.train.monitor={job.train.monitor} is to {direction(job)}; name a new "
                "study (pipeline.tune.study)"
            )
        # A resumed sampler seeded as at the start would suggest the first trials' values again:
        # seed it past the trials the study holds (still reproducible for the same history).
        study.sampler = _sampler(tune, offset=len(study.trials))
        return study, True
    return optuna.create_study(direction=direction(job), **kwargs), False


def _sampler(tune: Any, offset: int = 0) -> Any:
    import optuna

    seed = tune.seed + 7919 * offset  # a prime stride: resumed seeds never meet earlier ones
    if tune.sampler == "tpe":
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=tune.startup_trials)
    return optuna.samplers.RandomSampler(seed=seed)


def requeue_unfinished(study: Any) -> int:
    """Trials left RUNNING by a killed study: marked failed and interrupted, parameters re-queued.

    Only the driver runs trials of its study, and a new driver means the old one is gone: a
    RUNNING trial found now will never finish. Its parameters are queued, so the next ask
    re-runs exactly that trial (Optuna's ``enqueue_trial``) before sampling anything new.
    """
    from optuna.trial import TrialState

    storage = study._storage  # the study's own storage: Optuna has no public setter for this
    stale = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    for trial in stale:
        storage.set_trial_user_attr(trial._trial_id, INTERRUPTED, True)
        storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
        study.enqueue_trial(dict(trial.params), skip_if_exists=False)
    return len(stale)


def finished(study: Any) -> int:
    """Trials that count towards ``pipeline.tune.trials``: all but interrupted and queued ones."""
    from optuna.trial import TrialState

    done = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
    trials = study.get_trials(deepcopy=False, states=done)
    return sum(1 for t in trials if not t.user_attrs.get(INTERRUPTED))


def run_trials(
    spark: Any, cfg: Config, study: Any, ref: StudyRef, progress: Progress, threads: int
) -> None:
    """Run the missing trials, ``parallelism`` at a time, each as a one-task Spark job."""
    tune = cfg.pipeline.tune
    lock = threading.Lock()
    workers = [
        threading.Thread(
            target=_worker,
            args=(spark, cfg, study, ref, progress, lock, threads),
            name=f"tune-{i}",
            daemon=True,
        )
        for i in range(min(tune.parallelism, progress.total - progress.done))
    ]
    for w in workers:
        w.start()
    try:
        while any(w.is_alive() for w in workers):
            for w in workers:
                w.join(timeout=0.5)  # short waits: Ctrl-C reaches this thread between them
    except KeyboardInterrupt:
        with lock:
            progress.issued = progress.total  # no new trial
        spark.sparkContext.cancelAllJobs()
        raise
    if progress.errors:
        raise progress.errors[0]


def _worker(spark: Any, cfg: Config, study: Any, ref: StudyRef, progress: Progress,
            lock: threading.Lock, threads: int) -> None:  # fmt: skip
    """One slot: ask for a trial, run it on a Spark task, tell its outcome; until none is left."""
    import mlflow

    client = mlflow.MlflowClient()
    while True:
        with lock:
            if progress.done + progress.issued >= progress.total or progress.errors:
                return
            progress.issued += 1
            trial = study.ask()
            params = suggest(trial, cfg.pipeline.tune.space)
            # MLflow's storage queues the values; written now, a kill from here on leaves a
            # trial that a resumed study can re-run with them (found by the SIGKILL test).
            study._storage.flush_all_batches()
        _name_run(client, cfg, ref.name, trial)
        try:
            outcome = _run_one(spark, cfg, ref, trial, params, threads)
            with lock:
                _tell(study, client, trial, outcome)
                progress.outcomes.append(outcome)
                _log_outcome(ref.metric, trial.number, outcome, params, progress)
        except BaseException as e:  # a bug, or the driver going down: stop every slot
            with lock:
                progress.errors.append(e)
            return


def _run_one(spark: Any, cfg: Config, ref: StudyRef, trial: Any, params: dict[str, Any],
             threads: int) -> TrialOutcome:  # fmt: skip
    """Preflight the trial's job here (a bad combination fails the trial, not the study), run it."""
    started = time.perf_counter()
    try:
        job = prepare(trial_config(cfg, params))
    except DeepsparkError as e:
        return TrialOutcome(trial.number, None, 0, False, time.perf_counter() - started, str(e))
    task = TrialTask(ref, trial._trial_id, trial.number, params, job, threads)
    sc = spark.sparkContext
    sc.setLocalProperty("spark.job.description", f"tune {ref.name} trial {trial.number}")
    try:
        return sc.parallelize([task], 1).map(run_trial).collect()[0]
    except Exception as e:  # the task itself died (an executor lost, out of memory)
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        return TrialOutcome(trial.number, None, 0, False, time.perf_counter() - started, first)


def _name_run(client: Any, cfg: Config, study: str, trial: Any) -> None:
    client.set_tag(trial._trial_id, "mlflow.runName", f"{study}-trial-{trial.number}")
    client.set_tag(trial._trial_id, "deepspark.pipeline", cfg.pipeline.name)
    client.set_tag(trial._trial_id, "deepspark.stage", "tune-trial")


def _tell(study: Any, client: Any, trial: Any, outcome: TrialOutcome) -> None:
    import math

    from optuna.trial import TrialState

    value = outcome.value
    if outcome.error is not None or value is None or not math.isfinite(value):
        error = outcome.error or f"no finite validation value ({value})"
        client.set_tag(trial._trial_id, "deepspark.tune.error", error.strip().splitlines()[-1])
        client.log_text(trial._trial_id, error, "error.txt")
        study.tell(trial, state=TrialState.FAIL)
    elif outcome.pruned:
        study.tell(trial, state=TrialState.PRUNED)
    else:
        study.tell(trial, value)
    client.log_metric(trial._trial_id, "tune.epochs", outcome.epochs)
    client.log_metric(trial._trial_id, "tune.seconds", outcome.seconds)


def _log_outcome(metric: str, number: int, outcome: TrialOutcome, params: dict,
                 progress: Progress) -> None:  # fmt: skip
    from deepspark.tune.report import describe

    shown = describe(params)
    n = progress.done + len(progress.outcomes)
    if outcome.error is not None or outcome.value is None:
        what = f"failed: {(outcome.error or 'no value').strip().splitlines()[-1][:200]}"
    elif outcome.pruned:
        what = f"pruned after {outcome.epochs} epoch(s) at {metric} {outcome.value:.4g}"
    else:
        what = f"{metric} {outcome.value:.4g} after {outcome.epochs} epoch(s)"
    log.info("trial %d (%d/%d): %s in %.0fs (%s)", number, n, progress.total, what,
             outcome.seconds, shown)  # fmt: skip


def check_reach(spark: Any, uri: str, experiment_id: str, job: TrainJob) -> None:
    """From an executor: the tracking store answers and the training split can be read.

    Raises:
        InputError: one line naming what an executor could not reach, before any trial starts.
    """
    sc = spark.sparkContext
    sc.setLocalProperty("spark.job.description", "tune: can executors reach the study?")
    url = job.splits["train"].url
    problem = sc.parallelize([0], 1).map(lambda _: _reach(uri, experiment_id, url)).collect()[0]
    if problem:
        raise InputError(
            f"tune: an executor cannot reach {problem}; trials run on executors, so the MLflow "
            "store (mlflow.tracking_uri: a server, or a database on storage every executor "
            "mounts) and the features must be reachable there"
        )


def _reach(uri: str, experiment_id: str, url: str) -> str | None:
    import os

    if uri.startswith("sqlite:///"):
        db = uri[len("sqlite:///") :]
        if not os.path.exists(db):  # MLflow would create an empty store there and carry on
            return f"the MLflow store {uri} (no such file on the executor)"
    try:
        import mlflow

        mlflow.set_tracking_uri(uri)
        mlflow.MlflowClient().get_experiment(experiment_id)
    except Exception as e:
        return f"the MLflow store {uri} ({str(e).strip().splitlines()[0][:200]})"
    try:
        from deepspark.data import inspect_split

        inspect_split(url)
    except Exception as e:
        return f"the features at {url} ({str(e).strip().splitlines()[0][:200]})"
    return None
