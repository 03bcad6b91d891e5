"""The digits pipeline end to end on the real scikit-learn data (all 1,797 images), tracked."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from sklearn.datasets import load_digits
from torch.utils.data import DataLoader

from deepspark.config import load_config
from deepspark.data import FeatureDataset
from deepspark.layout import Layout
from deepspark.stages import pipeline

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def run(spark, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("digits")
    cfg = load_config(
        ROOT / "conf" / "digits.yaml",
        [
            f"paths.data={tmp / 'data'}",
            f"paths.checkpoints={tmp / 'checkpoints'}",
            f"mlflow.tracking_uri=sqlite:///{tmp / 'mlflow.db'}",
            f"mlflow.artifact_root={tmp / 'artifacts'}",
        ],
    )
    return {"cfg": cfg, "results": pipeline.run(cfg, spark), "layout": Layout(cfg.paths, "digits")}


def test_every_image_lands_in_exactly_one_split(run):
    manifest = json.loads(Path(run["layout"].path("features", "_manifest.json")).read_text())
    rows = {s: manifest["splits"][s]["rows"] for s in ("train", "validation", "test")}
    assert sum(rows.values()) == 1797
    assert manifest["x_shape"] == [1, 8, 8] and manifest["classes"] == list(range(10))
    ids = [pq.read_table(run["layout"].path("features", s)).column("id").to_pylist() for s in rows]
    assert len(set().union(*ids)) == 1797


def test_split_is_stratified(run):
    digits = load_digits()
    overall = np.bincount(digits.target) / len(digits.target)
    test = pq.read_table(run["layout"].path("features", "test")).to_pandas()
    share = np.bincount(test["y"], minlength=10) / len(test)
    assert np.abs(share - overall).max() < 0.01


def test_images_are_scaled_and_match_the_source(run):
    digits = load_digits()
    known = {
        tuple((img.ravel() / 16.0).astype(np.float32)): int(t)
        for img, t in zip(digits.images, digits.target, strict=True)
    }
    train = pq.read_table(run["layout"].path("features", "train")).to_pandas()
    x = np.stack(train["x"])
    assert x.dtype == np.float32 and x.shape[1] == 64 and x.min() >= 0.0 and x.max() <= 1.0
    for row, label in zip(x[:50], train["y"][:50], strict=True):
        assert known[tuple(row)] == label


def test_stages_are_nested_runs_with_sanitized_params(run):
    cfg = run["cfg"]
    client = mlflow.MlflowClient(tracking_uri=cfg.mlflow.tracking_uri)
    exp = client.get_experiment_by_name(cfg.mlflow.experiment)
    runs = client.search_runs([exp.experiment_id])
    stages = {
        r.data.tags.get("deepspark.stage") for r in runs if "mlflow.parentRunId" in r.data.tags
    }
    assert stages == {"ingest", "clean", "features", "profile", "train", "evaluate", "score"}
    ingest = next(r for r in runs if r.data.tags.get("deepspark.stage") == "ingest")
    assert ingest.data.params["ingest.digits.schema.p_0..63_"] == "int"
    assert ingest.data.metrics["rows_in"] == 1797


def test_cnn_reaches_98_percent_and_beats_the_svc_baseline(run):
    m = run["results"]["train"].metrics
    assert m["test.rows"] == 274
    assert m["test.accuracy"] >= 0.98
    assert m["test.accuracy"] >= m["baseline.svc.accuracy"]


def test_a_plain_dataloader_trains_a_small_model_on_the_digits_features(run):
    # docs/TRAINING.md's bring-your-own-loop example: FeatureDataset under torch's own DataLoader.
    torch.manual_seed(0)
    train = FeatureDataset(run["layout"].path("features", "train"), batch_size=32, shuffle=True)
    model = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    for epoch in range(10):
        train.set_epoch(epoch)
        for batch in DataLoader(train, batch_size=None):
            loss = torch.nn.functional.cross_entropy(model(batch["x"]), batch["y"].long())
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    test = FeatureDataset(run["layout"].path("features", "test"), batch_size=64)
    test = DataLoader(test, batch_size=None)
    with torch.no_grad():
        hits = [(model(b["x"]).argmax(1) == b["y"]).sum().item() for b in test]
    assert sum(hits) / 274 >= 0.93  # all 274 test images; a linear model alone reaches ~0.95


def test_one_tracked_training_run_with_curves_and_a_servable_model(run):
    cfg = run["cfg"]
    client = mlflow.MlflowClient(tracking_uri=cfg.mlflow.tracking_uri)
    exp = client.get_experiment_by_name(cfg.mlflow.experiment)
    runs = client.search_runs([exp.experiment_id])
    parent = next(r for r in runs if "mlflow.parentRunId" not in r.data.tags)
    (train,) = [r for r in runs if r.data.tags.get("deepspark.stage") == "train"]
    assert train.data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert train.info.run_id == run["results"]["train"].outputs["mlflow_run"]
    assert (
        train.data.params["train.model"] == "cnn" and train.data.params["train.world_size"] == "2"
    )
    epochs = int(train.data.metrics["epochs"])
    for key in ("train_loss", "val_loss", "val_accuracy", "samples_per_s", "data_wait_fraction"):
        assert len(client.get_metric_history(train.info.run_id, key)) == epochs, key
    plots = {a.path for a in client.list_artifacts(train.info.run_id, "plots")}
    assert plots == {"plots/loss.png", "plots/val_accuracy.png"}

    (logged,) = client.search_logged_models([exp.experiment_id])
    assert logged.source_run_id == train.info.run_id
    mlflow.set_tracking_uri(cfg.mlflow.tracking_uri)
    model = mlflow.pyfunc.load_model(f"models:/{logged.model_id}")
    assert [s.shape for s in model.metadata.signature.inputs.inputs] == [(-1, 64)]
    test = pq.read_table(run["layout"].path("features", "test")).to_pandas()
    labels = model.predict(np.stack(test["x"]).astype(np.float32))["label"].to_numpy()
    accuracy = float((labels == test["y"].to_numpy()).mean())
    assert accuracy == pytest.approx(train.data.metrics["test.accuracy"])


def test_training_run_has_system_metrics_and_its_model_the_test_metrics(run):
    cfg = run["cfg"]
    client = mlflow.MlflowClient(tracking_uri=cfg.mlflow.tracking_uri)
    exp = client.get_experiment_by_name(cfg.mlflow.experiment)
    runs = client.search_runs([exp.experiment_id])
    (train,) = [r for r in runs if r.data.tags.get("deepspark.stage") == "train"]
    run_id = train.info.run_id
    # A curve, sampled by rank 0 alone: one point per step (a second monitor would repeat steps).
    cpu = client.get_metric_history(run_id, "system/cpu_utilization_percentage")
    assert len(cpu) >= 2 and [m.step for m in cpu] == list(range(len(cpu)))
    assert "system/system_memory_usage_megabytes" in train.data.metrics
    # Only the training run samples the host; the stage runs' work happens on Spark's executors.
    sampled = {
        r.data.tags.get("deepspark.stage")
        for r in runs
        if any(k.startswith("system/") for k in r.data.metrics)
    }
    assert sampled == {"train"}

    # The test metrics and the baseline are on the logged model, on the test split, once.
    (logged,) = client.search_logged_models([exp.experiment_id])
    on_model = {m.key: m for m in client.get_logged_model(logged.model_id).metrics}
    for key in ("test.accuracy", "test.rows", "baseline.svc.accuracy"):
        assert on_model[key].value == train.data.metrics[key], key
        assert on_model[key].run_id == run_id, key
        assert on_model[key].dataset_name == "digits/features/test", key
        assert len(client.get_metric_history(run_id, key)) == 1, key
    assert not any(k.startswith(("system/", "val_", "train_")) for k in on_model)
    # The registered version is that model: its page links to the model and these numbers.
    (version,) = client.search_model_versions("name='digits'")
    assert version.source == f"models:/{logged.model_id}"


def test_stage_inputs_are_recorded_as_mlflow_datasets(run):
    cfg = run["cfg"]
    client = mlflow.MlflowClient(tracking_uri=cfg.mlflow.tracking_uri)
    exp = client.get_experiment_by_name(cfg.mlflow.experiment)
    runs = {r.data.tags.get("deepspark.stage"): r for r in client.search_runs([exp.experiment_id])}

    def inputs(stage):
        got = {}
        for d in client.get_run(runs[stage].info.run_id).inputs.dataset_inputs:
            tags = {t.key: t.value for t in d.tags}
            got[d.dataset.name] = (tags["mlflow.data.context"], int(tags["rows"]), d.dataset.digest)
        return got

    train = inputs("train")
    assert {k: v[:2] for k, v in train.items()} == {
        "digits/features/train": ("train", 1255),
        "digits/features/validation": ("validation", 268),
        "digits/features/test": ("test", 274),
    }
    assert all(len(v[2]) == 16 for v in train.values())  # a digest of the files actually read
    assert {k: v[:2] for k, v in inputs("features").items()} == {
        "digits/silver/digits": ("input", 1797)
    }
