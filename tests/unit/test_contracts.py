"""The typed contracts a stage or a process boundary carries: manifest, train state, config."""

from __future__ import annotations

import pickle

import pytest

from deepspark.config import load_config
from deepspark.config.train import TrainConfig
from deepspark.errors import InputError
from deepspark.manifest import FeatureManifest, SplitSummary
from deepspark.train.state import Logged, Tensors, TrainState
from tests.synthetic import ROOT

SEQUENCE = {
    "pipeline": "flights", "source": "/data/gold/flights/airport_hourly", "config_hash": "abc",
    "kind": "sequence", "x_shape": [24, 2], "series_key": "origin", "time": "hour_utc",
    "inputs": ["departures", "dep_delay_mean"], "target": "dep_delay_mean", "window": 24,
    "horizon": 1, "frequency": "hour", "season": 24,
    "scaling": {
        "departures": {"mean": 30.0, "std": 12.0}, "dep_delay_mean": {"mean": 12.5, "std": 0.0},
    },
    "grid_rows": 26280,
    "splits": {"train": {"rows": 100, "files": 2, "row_groups": 4, "schema": "x array<float>"}},
}  # fmt: skip


def test_the_manifest_file_round_trips_through_its_type():
    manifest = FeatureManifest.from_json(SEQUENCE)
    assert manifest.to_json() == SEQUENCE
    assert manifest.splits["train"] == SplitSummary(100, 2, 4, "x array<float>")
    assert manifest.task == "regression" and manifest.n_out == 1
    assert manifest.y_scale == (12.5, 1.0)  # a constant target scales by 1, not by 0


def test_a_forecaster_without_its_target_statistics_is_refused():
    data = {**SEQUENCE, "scaling": {"departures": {"mean": 30.0, "std": 12.0}}}
    with pytest.raises(InputError) as e:
        FeatureManifest.from_json(data).y_scale  # noqa: B018 - the property is the check
    assert str(e.value) == (
        "features of 'flights': no scaling statistics for the target 'dep_delay_mean' in the "
        "manifest; rebuild the features (jobs/features.py)"
    )


def test_an_image_manifest_knows_its_classes():
    data = {"pipeline": "digits", "kind": "image", "x_shape": [1, 8, 8], "max_value": 16.0,
            "classes": [0, 1, 2], "splits": {"test": {"rows": 3}}}  # fmt: skip
    manifest = FeatureManifest.from_json(data)
    assert (manifest.task, manifest.n_out, manifest.y_scale) == ("classification", 3, None)
    assert manifest.to_json()["splits"] == {"test": {"rows": 3}}


def test_a_file_that_is_not_a_manifest_is_one_clear_error():
    with pytest.raises(InputError) as e:
        FeatureManifest.from_json({"pipeline": "p", "x_shape": [1]}, "/d/_manifest.json")
    assert str(e.value) == "/d/_manifest.json: not a feature manifest (KeyError: 'kind')"


def test_the_train_state_round_trips_through_last_pt():
    state = TrainState(
        epoch=3, best=0.5, bad_epochs=1, stopped=False, history=[{"epoch": 0, "val_mae": 0.5}],
        run_id="r1", seed=7, logged=Logged(params=True, epochs=1, failed=["epoch 2"]),
    )  # fmt: skip
    state.config = {"pipeline": {"name": "flights"}}
    payload = state.to_payload(Tensors(model={"w": 1}, optimizer={"o": 2}))
    assert payload["model"] == {"w": 1} and "averaged" not in payload  # only what exists
    assert TrainState.from_payload(payload) == state
    assert Tensors.from_payload(payload) == Tensors(model={"w": 1}, optimizer={"o": 2})
    assert state.unreported


def test_a_checkpoint_from_before_the_mlflow_entry_had_everything_logged():
    old = {"epoch": 2, "history": [{"epoch": 0}, {"epoch": 1}], "model": {}}
    assert TrainState.from_payload(old).logged == Logged(params=True, epochs=2)


def test_the_whole_config_pickles_and_compares_equal():
    cfg = load_config(ROOT / "conf" / "flights.yaml")
    again = pickle.loads(pickle.dumps(cfg))
    assert again == cfg and again.pipeline.sources["flights"].options["header"] is True
    with pytest.raises(TypeError):
        again.pipeline.sources["flights"].options["header"] = False  # still read-only


def test_auto_is_resolved_per_task_and_a_loss_must_fit_the_task():
    forecaster = TrainConfig(model="rnn").resolved("regression", target_is_input=True)
    assert (forecaster.loss, forecaster.monitor, forecaster.ema) == ("l1", "mae", 0.995)
    assert (forecaster.residual, forecaster.register.metric) == ("persistence", "mae")
    classifier = TrainConfig(model="cnn").resolved("classification")
    assert (classifier.loss, classifier.monitor, classifier.ema) == ("cross_entropy", "loss", 0.0)
    assert (classifier.residual, classifier.register.metric) == ("none", "accuracy")
    with pytest.raises(ValueError) as e:
        TrainConfig(model="rnn", loss="cross_entropy").resolved("regression")
    assert str(e.value) == (
        "loss: cross_entropy does not fit a regression model; expected l1, mse or huber"
    )
