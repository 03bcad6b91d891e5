"""Tune: Optuna studies whose trials train on Spark tasks, nested under one MLflow run per study.

The main study runs on the flights slice's real features (a copy, so its store and tuning folder
are its own); pruning and resume run on synthetic features, where a hopeless trial is hopeless
by construction and a trial takes a second.
"""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pandas as pd
import pytest

from deepspark.config import load_config
from deepspark.errors import ConfigError, InputError
from deepspark.stages import train as train_stage
from deepspark.stages import tune
from deepspark.stages.tune import TuneError
from deepspark.train.job import prepare
from deepspark.tune import study as studies
from deepspark.tune.space import suggest
from tests.realdata import slice_config
from tests.synthetic import ROOT, tracked_config, write_features

SPACE = [
    "pipeline.tune.space={lr: {low: 0.0005, high: 0.005, log: true},"
    " rnn.hidden: {choices: [[8], [16, 8]]}, rnn.dropout: {low: 0.0, high: 0.2}}",
]


def runs_of(uri: str) -> pd.DataFrame:
    mlflow.set_tracking_uri(uri)
    return mlflow.search_runs(search_all_experiments=True)


@pytest.fixture(scope="module")
def study(spark, flights_slice, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tune")
    source = Path(flights_slice["layout"].path("features", "train")).parent
    shutil.copytree(source, tmp / "data" / "features" / "flights")
    cfg = slice_config(
        flights_slice["raw"], tmp, *SPACE, "pipeline.tune.trials=4",
        "pipeline.tune.parallelism=2", "pipeline.tune.epochs=3",
    )  # fmt: skip
    return {"cfg": cfg, "result": tune.run(cfg, spark), "tmp": tmp}


def test_four_trials_two_at_a_time_are_nested_runs_of_the_study(study):
    result, cfg = study["result"], study["cfg"]
    m = result.metrics
    assert m["trials_run"] == 4 and m["trials_complete"] + m["trials_pruned"] == 4
    runs = runs_of(cfg.mlflow.tracking_uri)
    parent = runs[runs.run_id == result.outputs["mlflow_run"]].iloc[0]
    assert parent["tags.deepspark.stage"] == "tune" and parent.status == "FINISHED"
    trials = runs[runs["tags.mlflow.parentRunId"] == parent.run_id]
    assert len(trials) == 4
    client = mlflow.MlflowClient()
    for _, trial in trials.iterrows():
        # The searched values as parameters, a curve per epoch, and the value told to the study.
        assert {"params.lr", "params.rnn.hidden", "params.rnn.dropout"} <= set(trial.dropna().index)
        curve = client.get_metric_history(trial.run_id, "val_mae")
        assert [p.step for p in curve] == list(range(int(trial["metrics.tune.epochs"])))
        assert trial["tags.mlflow.runName"].startswith(parent["tags.mlflow.runName"] + "-trial-")
    assert trials["metrics.value"].min() == pytest.approx(m["best_val_mae"])
    artifacts = {a.path for d in ("plots", "tune") for a in client.list_artifacts(parent.run_id, d)}
    assert artifacts == {
        "plots/optimization_history.png", "plots/param_importances.png",
        "plots/parallel_coordinates.png", "tune/best.yaml", "tune/trials.csv",
    }  # fmt: skip


def test_the_best_config_is_an_overlay_that_trains_and_registers_through_the_gate(study, spark):
    result, cfg = study["result"], study["cfg"]
    best = load_config(result.outputs["best_config"])  # extends conf/flights.yaml
    runs = runs_of(cfg.mlflow.tracking_uri)
    winner = runs[runs["metrics.value"] == runs["metrics.value"].min()].iloc[0]
    assert best.pipeline.train.lr == pytest.approx(float(winner["params.lr"]))
    assert str(list(best.pipeline.train.rnn.hidden)) == winner["params.rnn.hidden"]
    assert best.paths == cfg.paths and best.mlflow == cfg.mlflow  # the searched setup
    trained = train_stage.run(best, spark)
    assert trained.outputs["registered_model"] == "flights"
    trials = pd.read_csv(result.outputs["trials"])
    assert len(trials) == 4 and set(trials.state) <= {"COMPLETE", "PRUNED"}


def synthetic(tmp, *extra: str):
    write_features(tmp / "data", "flights", "sequence",
                   {"train": [300, 300], "validation": [100, 100], "test": [100, 100]})  # fmt: skip
    # ema 0: a few epochs of averaged weights barely leave the initial ones, whatever the lr.
    return tracked_config(tmp, "sequence", "pipeline.tune.epochs=4", "pipeline.tune.parallelism=1",
                          "pipeline.train.ema=0.0", *extra)  # fmt: skip


def test_a_hopeless_trial_is_pruned_at_the_end_of_its_warmup(spark, tmp_path):
    # lr 1e-7 cannot move the weights; after a completed lr 0.02 trial the median pruner stops it
    # once its warmup epoch is over. Queued values fix what each trial trains.
    space = "pipeline.tune.space={lr: {choices: [0.02, 1.0e-7]}}"
    pruner = ["pipeline.tune.pruner.startup_trials=1", "pipeline.tune.pruner.warmup_epochs=1"]
    cfg = synthetic(tmp_path, space, "pipeline.tune.trials=1", *pruner)
    opened = open_for(cfg)
    opened.enqueue_trial({"lr": 0.02})
    opened._storage.flush_all_batches()  # this instance's queue: the stage opens its own
    assert tune.run(cfg, spark).metrics["trials_complete"] == 1
    opened.enqueue_trial({"lr": 1.0e-7})
    opened._storage.flush_all_batches()
    more = load_config(cfg.files[-1], [*_overrides(cfg), space, "pipeline.tune.trials=2", *pruner])
    m = tune.run(more, spark).metrics
    assert (m["trials_complete"], m["trials_pruned"]) == (1, 1)
    pruned = [t for t in opened.get_trials() if t.state.name == "PRUNED"][0]
    assert pruned.params == {"lr": 1.0e-7} and sorted(pruned.intermediate_values) == [0, 1]


def open_for(cfg):
    from deepspark import tracking

    job = prepare(studies.trial_config(cfg, {}))
    experiment = tracking.setup(cfg.mlflow).get_experiment_by_name(cfg.mlflow.experiment)
    return studies.open_study(tune.study_name(cfg, job), experiment.experiment_id, cfg, job)[0]


def test_a_killed_study_keeps_its_trials_and_reruns_the_unfinished_one(spark, tmp_path):
    cfg = synthetic(tmp_path, "pipeline.tune.space={lr: {low: 0.001, high: 0.03, log: true}}",
                    "pipeline.tune.trials=2")  # fmt: skip
    first = tune.run(cfg, spark)
    assert first.metrics["trials_complete"] == 2
    # What a killed driver leaves: a trial asked for and given its values, never told.
    opened = open_for(cfg)
    cut = opened.ask()
    values = suggest(cut, cfg.pipeline.tune.space)
    opened._storage.flush_all_batches()
    kept = {t.number: t.value for t in opened.get_trials() if t.state.name == "COMPLETE"}

    space = "pipeline.tune.space={lr: {low: 0.001, high: 0.03, log: true}}"
    more = load_config(cfg.files[-1], [*_overrides(cfg), space, "pipeline.tune.trials=3"])
    again = tune.run(more, spark).metrics
    assert again["trials_run"] == 1 and again["trials_rerun"] == 1
    trials = {t.number: t for t in opened.get_trials()}
    assert {n: trials[n].value for n in kept} == kept  # completed trials are kept as they were
    assert trials[cut.number].state.name == "FAIL"
    assert trials[cut.number].user_attrs == {studies.INTERRUPTED: True}
    rerun = [t for t in trials.values() if t.number > cut.number]
    assert len(rerun) == 1 and rerun[0].state.name == "COMPLETE"
    assert rerun[0].params == pytest.approx(values)  # the same trial, run again


def test_a_study_whose_every_trial_fails_ends_in_one_error(spark, tmp_path):
    # Valid config values that the features cannot take: each trial fails in its own preflight,
    # is recorded as failed with the reason, and the study goes on; with none completed, it ends
    # in one line carrying the first reason.
    cfg = synthetic(tmp_path, "pipeline.tune.space={batch_size: {choices: [5000, 6000]}}",
                    "pipeline.tune.trials=2")  # fmt: skip
    with pytest.raises(TuneError) as e:
        tune.run(cfg, spark)
    message = str(e.value)
    assert message.startswith("tune flights: no trial of study flights-tune-")
    assert "completed (2 failed; the first: " in message and "\n" not in message
    assert "rows, fewer than one batch per process (1 x " in message


def test_a_custom_models_arguments_are_searched_on_the_executors(spark, tmp_path, monkeypatch):
    # tests/byo is on the driver's path only (as a user's folder would be): each trial's Spark
    # task finds the module through the job's import root, and model_args.width is searched.
    monkeypatch.syspath_prepend(str(ROOT / "tests" / "byo"))
    cfg = synthetic(tmp_path, "pipeline.train.model=tiny_gru:make", "pipeline.tune.trials=2",
                    "pipeline.tune.space={model_args.width: {choices: [4, 12]}}")  # fmt: skip
    opened = open_for(cfg)
    for width in (4, 12):  # both values, whatever the sampler would have drawn
        opened.enqueue_trial({"model_args.width": width})
    opened._storage.flush_all_batches()
    m = tune.run(cfg, spark).metrics
    assert m["trials_complete"] == 2
    assert sorted(t.params["model_args.width"] for t in opened.get_trials()) == [4, 12]


def _overrides(cfg) -> list[str]:
    return [
        f"paths.data={cfg.paths.data}", f"paths.checkpoints={cfg.paths.checkpoints}",
        f"mlflow.tracking_uri={cfg.mlflow.tracking_uri}",
        f"mlflow.artifact_root={cfg.mlflow.artifact_root}", "pipeline.train.batch_size=16",
        "pipeline.train.epochs=3", "pipeline.train.processes=1", "pipeline.train.rnn.hidden=[8]",
        "pipeline.train.lr=0.01",
        "pipeline.tune.epochs=4", "pipeline.tune.parallelism=1", "pipeline.train.ema=0.0",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("pipeline.tune.space={}",
         "pipeline.tune: space: expected at least one pipeline.train key to search"),
        ("pipeline.tune.space={lr: {low: 0.01, high: 0.001}}",
         "pipeline.tune.space.lr: expected low < high, found low=0.01, high=0.001"),
        ("pipeline.tune.space={lr: {low: 0.0, high: 0.01, log: true}}",
         "pipeline.tune.space.lr: log: expected low > 0, found 0.0"),
        ("pipeline.tune.space={lr: {choices: []}}",
         "pipeline.tune.space.lr: expected either low and high, or choices"),
        ("pipeline.tune.space={processes: {choices: [1, 2]}}",
         "pipeline.tune: space.processes: processes says how a trial is launched or registered, "
         "not what it learns; searchable keys are the rest of pipeline.train"),
    ],
)  # fmt: skip
def test_an_inconsistent_space_is_one_line_naming_the_key(override, message):
    with pytest.raises(ConfigError) as e:
        load_config(flights_conf(), [override])
    assert str(e.value).endswith(message)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize(
    ("space", "message"),
    [
        ("{lrr: {low: 0.001, high: 0.01}}",
         "pipeline.tune.space.lrr: unknown key 'pipeline.train.lrr' (expected one of: model,"),
        ("{rnn.hidden: {choices: [[64], big]}}",
         "pipeline.tune.space.rnn.hidden: "),
        ("{rnn.dropout: {low: 0.1, high: 1.5}}",
         "pipeline.tune.space.rnn.dropout: "),
    ],
)  # fmt: skip
def test_a_key_or_value_training_cannot_take_fails_before_any_trial(tmp_path, space, message):
    cfg = load_config(flights_conf(), [f"pipeline.tune.space={space}", f"paths.data={tmp_path}"])
    with pytest.raises(ConfigError) as e:
        tune.run(cfg, None)  # fails in check_space: no Spark session is touched
    assert str(e.value).startswith(f"{flights_conf()}: {message}")
    assert "\n" not in str(e.value)


def test_a_store_executors_cannot_reach_fails_before_any_trial(spark, tmp_path):
    cfg = synthetic(tmp_path, "pipeline.tune.space={lr: {low: 0.001, high: 0.03}}")
    job = prepare(studies.trial_config(cfg, {}))
    gone = f"sqlite:///{tmp_path / 'elsewhere' / 'mlflow.db'}"
    with pytest.raises(InputError) as e:
        studies.check_reach(spark, gone, "0", job)
    assert str(e.value).startswith(
        f"tune: an executor cannot reach the MLflow store {gone} (no such file on the executor); "
    )


def flights_conf():
    return ROOT / "conf" / "flights.yaml"


@pytest.mark.slow
def test_a_study_killed_mid_trial_resumes_where_it_stopped(tmp_path):
    # `deepspark run tune` killed (SIGKILL: no cleanup) while a trial runs, after one finished;
    # the same command again keeps the finished trial, re-runs the cut one and completes.
    cfg = synthetic(tmp_path, "pipeline.tune.space={lr: {low: 0.001, high: 0.03, log: true}}")
    args = [*_overrides(cfg), "pipeline.tune.trials=3", "pipeline.tune.epochs=40",
            "pipeline.tune.pruner.kind=none", "pipeline.train.patience=0",
            "pipeline.tune.space={lr: {low: 0.001, high: 0.03, log: true}}"]  # fmt: skip
    cmd = [sys.executable, "-m", "deepspark.cli", "run", "tune", "-c", str(flights_conf()), *args]
    env = {**os.environ, "DEEPSPARK_LOG_LEVEL": "WARNING"}
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    db = tmp_path / "mlflow.db"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        states = _trial_states(db)
        if states.count("FINISHED") >= 1 and "RUNNING" in states:
            break
        time.sleep(0.2)
    assert proc.poll() is None, "the study ended before a trial could be cut"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before = _trial_states(db)
    assert "RUNNING" in before

    out = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    study = open_for(load_config(flights_conf(), args))
    trials = sorted(study.get_trials(), key=lambda t: t.number)
    cut = [t for t in trials if t.user_attrs.get(studies.INTERRUPTED)]
    assert len(cut) == 1 and cut[0].state.name == "FAIL"
    rerun = [t for t in trials if t.number > cut[0].number and t.params == cut[0].params]
    assert rerun and rerun[0].state.name == "COMPLETE"
    assert sum(t.state.name == "COMPLETE" for t in trials) == 3  # kept + re-run + the rest


def _trial_states(db: Path) -> list[str]:
    if not db.exists():
        return []
    with sqlite3.connect(db, timeout=5) as con:
        try:
            rows = con.execute("SELECT status FROM runs WHERE name LIKE '%-trial-%'").fetchall()
        except sqlite3.OperationalError:  # the file exists, MLflow has not made its tables yet
            return []
    return [r[0] for r in rows]
