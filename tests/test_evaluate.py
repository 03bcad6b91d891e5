"""The evaluate stage on small registered models: metrics, baselines, artifacts, clear errors."""

from __future__ import annotations

import json

import mlflow
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from deepspark.errors import ConfigError, InputError
from deepspark.stages import evaluate as evaluate_stage
from deepspark.stages import train as train_stage
from tests.synthetic import ROOT, tracked_config, write_features

SPLITS = {"train": [300, 300], "validation": [100, 100], "test": [100, 100]}
NULL_SEASONAL = 5  # leading rows of each test file without a same-hour-yesterday value
START = np.datetime64("2013-11-15T00:00:00", "us")


def tracked(tmp, kind, *extra):
    return tracked_config(
        tmp, kind, "pipeline.evaluate.samples=4", "pipeline.evaluate.ig_steps=16", *extra
    )


def with_series(split, table):
    """Test rows get two series (A, B) with hourly target times; some lack a seasonal value."""
    if split != "test":
        return table
    n = table.num_rows
    seasonal = table.column("baseline_seasonal").to_pylist()
    seasonal[:NULL_SEASONAL] = [None] * NULL_SEASONAL
    hours = (START + np.arange(n) // 2 * np.timedelta64(1, "h")).astype("datetime64[us]")
    table = table.set_column(
        table.schema.get_field_index("baseline_seasonal"),
        "baseline_seasonal",
        pa.array(seasonal, type=pa.float32()),
    )
    table = table.append_column("origin", pa.array(np.where(np.arange(n) % 2, "B", "A")))
    return table.append_column("target_time", pa.array(hours, type=pa.timestamp("us", tz="UTC")))


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("evaluate")
    root = write_features(tmp / "data", "flights", "sequence", SPLITS, table_hook=with_series)
    manifest = json.loads((root / "_manifest.json").read_text())
    manifest.update(series_key="origin", time="hour_utc")
    (root / "_manifest.json").write_text(json.dumps(manifest))
    write_features(tmp / "data", "digits", "image", SPLITS)
    flights = train_stage.run(tracked(tmp, "sequence", "pipeline.train.epochs=4"), None)
    digits = train_stage.run(tracked(tmp, "image", "pipeline.train.epochs=1"), None)
    # The real gate decides their aliases; the tests evaluate v1 of each by number.
    assert flights.metrics["registry.version"] == digits.metrics["registry.version"] == 1.0
    return tmp


def test_image_classifier_metrics_tables_and_plots(store):
    result = evaluate_stage.run(tracked(store, "image", "pipeline.evaluate.model=1"), None)
    m = result.metrics
    test = pq.read_table(store / "data" / "features" / "digits" / "test")
    x, y = np.stack(test.column("x").to_numpy(zero_copy_only=False)), test.column("y").to_numpy()
    champion = mlflow.pyfunc.load_model(result.outputs["model_uri"])
    pred = champion.predict(x.astype(np.float32))["label"].to_numpy()
    assert m["eval.rows"] == m["rows_in"] == 200 and m["model_version"] == 1
    assert m["eval.accuracy"] == pytest.approx(float((pred == y).mean()))
    assert m["eval.misclassified"] == float((pred != y).sum())
    for c in (0, 1):
        hit = (pred == c) & (y == c)
        assert m[f"eval.recall.{c}"] == pytest.approx(hit.sum() / (y == c).sum())
    assert 0.0 <= m["eval.macro_f1"] <= 1.0
    assert 0.0 <= m["eval.ig.completeness_error"] < 0.5  # 16 steps through ReLUs and max-pools
    assert artifacts(store, result) == {
        "confusion_matrix.png", "integrated_gradients.png", "misclassified.png",
        "per_class.csv", "per_class.json",
    }  # fmt: skip
    assert set(result.outputs) >= {"model_uri", "mlflow_run", "evaluate/per_class.csv"}


def test_forecaster_against_baselines_on_the_same_rows(store):
    result = evaluate_stage.run(tracked(store, "sequence", "pipeline.evaluate.model=1"), None)
    m = result.metrics
    excluded = 2 * NULL_SEASONAL
    assert (m["eval.rows"], m["eval.rows_common"], m["eval.rows_excluded"]) == (
        200.0,
        200.0 - excluded,
        float(excluded),
    )
    test = pq.read_table(store / "data" / "features" / "flights" / "test").to_pandas()
    common = test["baseline_seasonal"].notna().to_numpy()
    x, y = np.stack(test["x"]).astype(np.float32), test["y"].to_numpy(np.float64)
    pred = np.asarray(mlflow.pyfunc.load_model(result.outputs["model_uri"]).predict(x))
    assert m["eval.mae"] == pytest.approx(np.abs(pred - y)[common].mean(), rel=1e-5)
    persistence = np.abs(test["baseline_persistence"] - y)[common].mean()
    assert m["eval.baseline.persistence.mae"] == pytest.approx(persistence, rel=1e-5)
    # y = 10 + 5a - 3t + noise(0.1): the linear baseline nails it, a constant forecast does not.
    assert m["eval.baseline.linear.mae"] < 0.2 < m["eval.baseline.persistence.mae"]
    assert m["eval.mape_rows"] == float((np.abs(y[common]) >= 1.0).sum())
    for name in ("a", "b"):  # both inputs drive the target
        assert m[f"eval.importance.{name}"] > 0.5
    assert artifacts(store, result) == {
        "attribution.csv", "attribution.png", "forecast_A.png", "forecast_B.png",
        "forecast_metrics.csv", "forecast_metrics.json", "permutation_importance.csv",
        "permutation_importance.png", "residuals.png",
    }  # fmt: skip
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{store / 'mlflow.db'}")
    run = client.get_run(result.outputs["mlflow_run"])
    assert run.data.tags["deepspark.stage"] == "evaluate"
    assert run.data.params["evaluate.model"] == "1"
    # v1 loses to the linear baseline: the run says it is not the champion, and why.
    version = client.get_model_version("flights", "1")
    assert version.aliases == ["challenger"]
    assert run.data.tags["deepspark.evaluated"] == "flights v1 (challenger, not the champion)"
    assert run.data.tags["deepspark.gate"] == version.tags["deepspark.gate"]
    assert run.data.metrics["eval.baseline.seasonal.mae"] == m["eval.baseline.seasonal.mae"]


def test_a_missing_model_is_one_clear_error(store, tmp_path):
    conf = ROOT / "conf" / "flights.yaml"
    with pytest.raises(InputError) as e:
        evaluate_stage.run(tracked(store, "sequence", "pipeline.evaluate.model=9"), None)
    assert str(e.value) == (
        "registered model 'flights' has no version or alias 9; train it first "
        f"(./spark-submit.sh jobs/train.py -c {conf})"
    )
    with pytest.raises(InputError) as e:  # an empty registry: no champion yet
        evaluate_stage.run(tracked(tmp_path, "sequence"), None)
    assert str(e.value) == (
        "registered model 'flights' has no version or alias champion; train it first "
        f"(./spark-submit.sh jobs/train.py -c {conf})"
    )


def test_evaluation_needs_the_registry(store):
    with pytest.raises(ConfigError, match="evaluation loads the model from the MLflow registry"):
        evaluate_stage.run(tracked(store, "sequence", "mlflow.enabled=false"), None)


def artifacts(store, result):
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{store / 'mlflow.db'}")
    listed = client.list_artifacts(result.outputs["mlflow_run"], "evaluate")
    names = {a.path.removeprefix("evaluate/") for a in listed}
    logged = {k.removeprefix("evaluate/") for k in result.outputs if k.startswith("evaluate/")}
    assert logged == names
    return names
