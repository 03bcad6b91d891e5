"""The registry gate against the baselines: a version that loses to one never takes champion,
and neither does one that no real comparison backs (no baseline, no common rows, a NaN).

Small synthetic cases on a real MLflow registry (SQLite): the metrics are given, the models are
trivial logged pyfuncs, so each decision is the gate's and nothing else's.
"""

from __future__ import annotations

import mlflow
import pytest

from deepspark import registry
from deepspark.config import load_config
from deepspark.config.train import RegistryConfig
from deepspark.errors import ConfigError, InputError
from deepspark.registry import BaselineCheck
from deepspark.train.publish import baseline_check
from tests.synthetic import ROOT, tracked_config

NAIVE = {"persistence": 9.0, "seasonal": 9.5, "linear": 8.0}


class Constant(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):  # noqa: D102
        return [0.0] * len(model_input)


def _store(tmp):
    cfg = tracked_config(tmp, "sequence")
    from deepspark import tracking

    return tracking.setup(cfg.mlflow), cfg


@pytest.fixture
def store(tmp_path):
    yield _store(tmp_path)
    mlflow.set_tracking_uri(None)


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """One registry for cases that each gate their own model name (a store costs seconds)."""
    yield _store(tmp_path_factory.mktemp("gate"))[0]
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


@pytest.mark.parametrize(
    ("second", "alias", "reason"),
    [
        (7.0, "champion", "mae 7 beats champion v1 (7.2) on the same test rows"),
        (7.2, "challenger", "mae 7.2 does not beat champion v1 (7.2) on the same test rows"),
    ],
)
def test_a_version_that_beats_every_baseline_still_has_to_beat_the_champion(
    shared, second, alias, reason
):
    # The champion (7.5 when it was gated) is re-scored on the new rows: 7.2 there.
    name = f"champion_{alias}"
    first = version(shared, name, 7.5, check=BaselineCheck("mae", 7.5, 100, NAIVE))
    gate = version(shared, name, second, champion_mae=7.2,
                   check=BaselineCheck("mae", second, 100, NAIVE))  # fmt: skip
    assert (first.alias, gate.alias, gate.reason) == ("champion", alias, reason)
    assert (gate.champion_version, gate.champion_value) == (first.version, 7.2)


NAN, INF = float("nan"), float("inf")
NO_COMPARISON = "no real comparison with the baselines: "
WITHOUT_ONE = ": challenger, never champion without one"


@pytest.mark.parametrize(
    ("check", "reason"),
    [
        # season <= horizon: the seasonal baseline is null on every row, so no row is common.
        (BaselineCheck("mae", NAN, 0, dict.fromkeys(NAIVE, NAN)),
         "0 test rows to compare on (mae nan)"),
        # register.baselines naming none the run computed, or a classifier without scikit-learn.
        (BaselineCheck("accuracy", 0.9, 274, {}),
         "none was computed (accuracy 0.9 on 274 test rows)"),
        (BaselineCheck("mae", NAN, 100, NAIVE),  # a model that predicts NaN
         "the version's mae is nan on the same 100 test rows (persistence 9, seasonal 9.5, "
         "linear 8)"),
        (BaselineCheck("mae", -INF, 100, NAIVE),
         "the version's mae is -inf on the same 100 test rows (persistence 9, seasonal 9.5, "
         "linear 8)"),
        (BaselineCheck("mae", 7.5, 100, {**NAIVE, "seasonal": NAN}),
         "a baseline's mae is not finite on the same 100 test rows (persistence 9, seasonal nan, "
         "linear 8)"),
    ],
    ids=["no-common-rows", "no-baseline", "nan-model", "infinite-model", "nan-baseline"],
)  # fmt: skip
def test_a_check_that_compares_nothing_is_a_loss_that_says_why(shared, request, check, reason):
    name = request.node.callspec.id.replace("-", "_")
    gate = version(shared, name, check.value, check=check)
    assert (gate.alias, gate.reason) == ("challenger", NO_COMPARISON + reason + WITHOUT_ONE)
    assert not check.passed() and check.problem() == reason
    tags = shared.MlflowClient().get_model_version(name, str(gate.version)).tags
    assert tags["deepspark.gate"] == gate.reason


def test_a_classifier_without_scikit_learn_has_no_baseline_and_is_not_champion(shared):
    # baselines.svc_accuracy returns None without scikit-learn: the summary has no baseline.
    check = baseline_check("classification", RegistryConfig(), {"test.accuracy": 0.95,
                                                                "test.rows": 274.0})  # fmt: skip
    assert check == BaselineCheck("accuracy", 0.95, 274, {})
    gate = version(shared, "no_sklearn", 0.95, check=check)
    assert (gate.alias, gate.reason) == (
        "challenger", NO_COMPARISON + "none was computed (accuracy 0.95 on 274 test rows)"
        + WITHOUT_ONE,
    )  # fmt: skip


def test_a_nan_metric_is_never_champion_even_with_the_baselines_relaxed(shared):
    gate = version(shared, "relaxed_nan", NAN)  # beat_baselines false: no check at all
    assert (gate.alias, gate.reason) == (
        "challenger",
        "mae is nan: challenger, never champion without a real comparison",
    )


SEASON = (
    "season: expected more than horizon={} steps, found {}: the seasonal baseline (the target one "
    "season earlier) would be missing on every row"
)


@pytest.mark.parametrize(
    ("conf", "overrides", "message"),
    [
        ("flights", ["pipeline.train.register.baselines=[svc]"],
         "pipeline: train.register.baselines: expected some of persistence, seasonal, linear "
         "(what training computes for a sequence forecaster), found svc"),
        ("digits", ["pipeline.train.register.baselines=[svc, linear]"],
         "pipeline: train.register.baselines: expected some of svc (what training computes for "
         "an image classifier), found linear"),
        ("flights", ["pipeline.features.sequence.horizon=24"],  # the default season: a day
         "pipeline.features.sequence: "
         + SEASON.format(24, "24 (the hour grid's default)")),
        ("flights", ["pipeline.features.sequence.season=5", "pipeline.features.sequence.horizon=6"],
         "pipeline.features.sequence: " + SEASON.format(6, 5)),
    ],
    ids=["svc-on-a-forecaster", "linear-on-a-classifier", "default-season", "season"],
)  # fmt: skip
def test_a_gate_that_could_compare_nothing_is_a_config_error(conf, overrides, message):
    path = ROOT / "conf" / f"{conf}.yaml"
    with pytest.raises(ConfigError) as e:
        load_config(path, overrides)
    assert str(e.value) == f"{path}: {message}"


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


def test_a_pipeline_asking_for_an_alias_that_names_no_version_skips_scoring(store, tmp_path):
    # Every version won: there is no challenger. A config that names it explicitly still gets a
    # pipeline that runs (tests/test_refused_model.py: the same with no champion, end to end).
    from deepspark.stages import StageResult, pipeline

    ml, _ = store
    won = version(ml, "flights", 7.5, check=BaselineCheck("mae", 7.5, 100, NAIVE))
    cfg = tracked_config(tmp_path, "sequence", "pipeline.score.model=challenger")
    assert registry.missing_alias(cfg, "champion") is None
    assert registry.missing_alias(cfg, "challenger") == registry.NoAlias(
        "flights", "challenger", won.version,
        f"registered model 'flights' has no challenger: the gate's last decision, on v1: "
        f"{won.reason}",
    )  # fmt: skip
    assert pipeline._run_stage(cfg, "score", None) == StageResult(
        "score", skipped="not scored: no challenger"
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
