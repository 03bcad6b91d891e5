"""The registry gate against the baselines: a version that loses to one never takes champion.

Small synthetic cases on a real MLflow registry (SQLite): the metrics are given, the models are
trivial logged pyfuncs, so each decision is the gate's and nothing else's.
"""

from __future__ import annotations

import mlflow
import pytest

from deepspark import registry
from deepspark.config.train import RegistryConfig
from deepspark.errors import InputError
from deepspark.registry import BaselineCheck
from deepspark.train.publish import baseline_check
from tests.synthetic import tracked_config

NAIVE = {"persistence": 9.0, "seasonal": 9.5, "linear": 8.0}


class Constant(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):  # noqa: D102
        return [0.0] * len(model_input)


@pytest.fixture
def store(tmp_path):
    cfg = tracked_config(tmp_path, "sequence")
    from deepspark import tracking

    ml = tracking.setup(cfg.mlflow)
    yield ml, cfg
    mlflow.set_tracking_uri(None)


def version(ml, name, mae, champion_mae=None, check=None):
    """Log a trivial model and gate it; ``champion_mae`` is what re-scoring the champion gives."""
    with ml.start_run():
        uri = ml.pyfunc.log_model(name="model", python_model=Constant()).model_uri
        return registry.register_and_gate(
            ml, name=name, model_uri=uri, metric="mae", value=mae,
            score=lambda _uri: champion_mae, baselines=check,
        )  # fmt: skip


@pytest.mark.parametrize(
    ("mae", "alias", "reason"),
    [
        # (the version's MAE on the common rows, where it lands, the reason tagged on it)
        (8.5, "challenger", "mae 8.5 does not beat baseline (linear 8) on the same 100 test "
         "rows: challenger, never champion while it loses to a baseline"),
        (8.0, "challenger", "mae 8 does not beat baseline (linear 8) on the same 100 test rows: "
         "challenger, never champion while it loses to a baseline"),  # a tie loses
        (7.5, "champion", "first version of the model; mae 7.5 beats every baseline "
         "(persistence 9, seasonal 9.5, linear 8) on the same 100 test rows"),
    ],
)  # fmt: skip
def test_the_first_version_is_champion_only_if_it_beats_every_baseline(store, mae, alias, reason):
    ml, _ = store
    gate = version(ml, "f", mae, check=BaselineCheck("mae", mae, 100, NAIVE))
    assert (gate.alias, gate.reason) == (alias, reason)
    tags = ml.MlflowClient().get_model_version("f", str(gate.version)).tags
    assert tags["deepspark.gate"] == reason


def test_a_version_that_beats_the_champion_but_loses_to_a_baseline_stays_challenger(store):
    ml, _ = store
    first = version(ml, "f", 7.5, check=BaselineCheck("mae", 7.5, 100, NAIVE))
    worse_than_linear = BaselineCheck("mae", 8.2, 100, NAIVE)
    second = version(ml, "f", 7.0, champion_mae=7.5, check=worse_than_linear)
    assert (first.alias, second.alias) == ("champion", "challenger")
    champion = ml.MlflowClient().get_model_version_by_alias("f", "champion")
    assert int(champion.version) == first.version


def test_a_classifier_that_ties_the_svc_may_be_champion_and_one_below_it_may_not():
    tie = BaselineCheck("accuracy", 0.98, 274, {"svc": 0.98})
    below = BaselineCheck("accuracy", 0.975, 274, {"svc": 0.98})
    assert (tie.lost_to(), below.lost_to()) == ({}, {"svc": 0.98})


def test_scoring_champion_with_none_names_the_gates_last_reason(store):
    ml, cfg = store
    gate = version(ml, "flights", 8.5, check=BaselineCheck("mae", 8.5, 100, NAIVE))
    with pytest.raises(InputError) as e:
        registry.registered_model(cfg, "champion", "scoring")
    assert str(e.value) == (
        "registered model 'flights' has no champion: the gate's last decision, on "
        f"v{gate.version}: {gate.reason}"
    )


SUMMARY = {
    "test.mae": 7.9, "test.mae_common": 7.7, "test.rows_common": 90.0, "test.rows": 100.0,
    "baseline.persistence.mae": 9.0, "baseline.seasonal.mae": 9.5, "baseline.linear.mae": 8.0,
}  # fmt: skip


@pytest.mark.parametrize(
    ("register", "expected"),
    [
        ({"beat_baselines": True, "baselines": ()}, BaselineCheck("mae", 7.7, 90, NAIVE)),
        (
            {"beat_baselines": True, "baselines": ("linear",)},
            BaselineCheck("mae", 7.7, 90, {"linear": 8.0}),
        ),
        ({"beat_baselines": False, "baselines": ()}, None),  # relaxed explicitly
    ],
)
def test_the_check_reads_the_common_rows_and_the_configured_baselines(register, expected):
    assert baseline_check("regression", RegistryConfig(**register), SUMMARY) == expected
