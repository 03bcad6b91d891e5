"""Registry gate on trained versions (challenger with a reason) and Spark batch scoring of a named
version, with quarantine."""

from __future__ import annotations

import mlflow
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from deepspark.errors import InputError
from deepspark.stages import score as score_stage
from deepspark.stages import train as train_stage
from tests.synthetic import tracked_config, write_features

SPLITS = {"train": [300, 300], "validation": [100, 100], "test": [100, 100]}


def tracked(tmp, *extra):
    return tracked_config(tmp, "sequence", *extra)


@pytest.fixture(scope="module")
def registered(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("registry")
    write_features(tmp / "data", "flights", "sequence", SPLITS)
    good = train_stage.run(tracked(tmp, "pipeline.train.epochs=6"), None)
    worse = train_stage.run(tracked(tmp, "pipeline.train.epochs=1", "pipeline.train.seed=5"), None)
    return {"tmp": tmp, "good": good, "worse": worse}


def test_versions_that_lose_to_a_baseline_are_challengers_with_the_reason(registered):
    # y is linear in the inputs: a few epochs of an RNN do not beat the linear baseline, and the
    # real gate keeps each version challenger, the first included (tests/test_gate.py: the rule).
    good, worse = registered["good"], registered["worse"]
    assert (good.outputs["registered_model"], good.outputs["registry_alias"]) == (
        "flights",
        "challenger",
    )
    assert worse.outputs["registry_alias"] == "challenger"
    assert worse.metrics["test.mae"] > good.metrics["test.mae"]
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{registered['tmp'] / 'mlflow.db'}")
    aliases = client.get_registered_model("flights").aliases
    assert {a: int(v) for a, v in aliases.items()} == {"challenger": 2}  # no champion
    for version, result in (("1", good), ("2", worse)):
        m = result.metrics
        lost = ", ".join(
            f"{b} {m[f'baseline.{b}.mae']:.6g}"
            for b in ("persistence", "seasonal", "linear")
            if m["test.mae_common"] >= m[f"baseline.{b}.mae"]
        )
        assert "linear" in lost, m
        assert client.get_model_version("flights", version).tags["deepspark.gate"] == (
            f"mae {m['test.mae_common']:.6g} does not beat baseline ({lost}) on the same 200 "
            "test rows: challenger, never champion while it loses to a baseline"
        )
    run = client.get_run(worse.outputs["mlflow_run"])
    assert run.data.tags["deepspark.registered"] == "flights v2 (challenger)"


def test_scoring_writes_predictions_and_quarantines_what_the_model_cannot_take(registered, spark):
    tmp = registered["tmp"]
    test_dir = tmp / "data" / "features" / "flights" / "test"
    bad = pa.table(
        {
            "x": pa.array(
                [None, [1.0] * 7, [1.0] * 7 + [float("nan")]], type=pa.list_(pa.float32())
            ),
            "y": pa.array([1.0, 2.0, 3.0], type=pa.float32()),
            "baseline_persistence": pa.array([0.0] * 3, type=pa.float32()),
            "baseline_seasonal": pa.array([0.0] * 3, type=pa.float32()),
        }
    )
    pq.write_table(bad, test_dir / "part-00009.parquet")
    result = score_stage.run(tracked(tmp, "pipeline.score.model=1"), spark)  # no champion
    assert result.metrics == {
        "rows_in": 203.0,
        "rows_out": 200.0,
        "rows_quarantined": 3.0,
        "model_version": 1.0,
    }
    scored = pq.read_table(result.outputs["predictions"]).to_pandas()
    assert set(scored.columns) == {
        "y", "baseline_persistence", "baseline_seasonal", "prediction", "model_name",
        "model_version",
    }  # fmt: skip
    assert (scored["model_name"] == "flights").all() and (scored["model_version"] == 1).all()
    # v1 learned y = 10 + 5a - 3b well: Spark's predictions match its test MAE.
    mae = float(np.mean(np.abs(scored["prediction"] - scored["y"])))
    assert mae == pytest.approx(registered["good"].metrics["test.mae"], rel=1e-4)
    layout_q = tmp / "data" / "quarantine" / "flights" / "score" / "test"
    reasons = sorted(pq.read_table(layout_q).column("reason").to_pylist())
    assert reasons == [
        "x has 7 values, the model takes 8",
        "x has a null or NaN value",
        "x is null",
    ]


def test_scoring_an_unknown_version_is_one_clear_error(registered, spark):
    with pytest.raises(
        InputError, match=r"registered model 'flights' has no version or alias 9; train it first"
    ):
        score_stage.run(tracked(registered["tmp"], "pipeline.score.model=9"), spark)
