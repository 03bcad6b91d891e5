"""The digits pipeline end to end on the real scikit-learn data (all 1,797 images), tracked."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
import pyarrow.parquet as pq
import pytest
from sklearn.datasets import load_digits

from deepspark.config import load_config
from deepspark.io import Layout
from deepspark.stages import pipeline

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def run(spark, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("digits")
    cfg = load_config(
        ROOT / "conf" / "digits.yaml",
        [
            f"paths.data={tmp / 'data'}",
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
    assert stages == {"ingest", "clean", "features", "profile"}
    ingest = next(r for r in runs if r.data.tags.get("deepspark.stage") == "ingest")
    assert ingest.data.params["ingest.digits.schema.p_0..63_"] == "int"
    assert ingest.data.metrics["rows_in"] == 1797
