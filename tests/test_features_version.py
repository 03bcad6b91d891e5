"""Training pinned to a version of Delta features: the same data, the same model, after new data.

The sensors pipeline of tests/test_custom_pipeline.py, on Delta tables. Its features are built
once, a model is trained on them, the readings change and the features are rebuilt. Training
pinned to the first version then reads exactly the first version's files and learns exactly the
first model; unpinned, it reads only the new version's files, not the folder (which keeps both).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from deepspark import manifest as features
from deepspark.config import load_config
from deepspark.errors import InputError
from deepspark.layout import MANIFEST, Layout
from deepspark.stages import pipeline
from deepspark.stages import train as train_stage
from deepspark.train import checkpoint as ckpt
from deepspark.train.job import prepare
from tests.test_custom_pipeline import SENSORS, readings

TRAIN = """
  train:
    model: rnn
    rnn: {hidden: [8]}
    epochs: 2
    batch_size: 16
    processes: 1
    register: {enabled: false}
"""


def _config(tmp, *extra):
    conf = tmp / "sensors.yaml"
    conf.write_text(SENSORS.format(uri=tmp / "readings.json") + TRAIN)
    return load_config(
        conf,
        [
            f"paths.data={tmp / 'data'}", f"paths.checkpoints={tmp / 'checkpoints'}",
            "paths.format=delta",
            f"mlflow.tracking_uri=sqlite:///{tmp / 'm.db'}",
            f"mlflow.artifact_root={tmp / 'art'}",
            *extra,
        ],
    )  # fmt: skip


def _build_features(tmp, spark):
    cfg = _config(tmp, "pipeline.stages=[ingest, clean, aggregate, features]")
    pipeline.run(cfg, spark)
    return features.read(Layout(cfg.paths, "sensors").path("features", MANIFEST))


@pytest.fixture(scope="module")
def built(spark, tmp_path_factory):
    """The sensors pipeline through its features, once: version 0 of each split."""
    tmp = tmp_path_factory.mktemp("versions")
    readings(tmp / "readings.json")
    return tmp, _build_features(tmp, spark)


def _trained(tmp, *extra):
    result = train_stage.run(_config(tmp, *extra), None)
    folder = result.outputs["checkpoints"]
    return result, {k: v.clone() for k, v in ckpt.load(folder)["model"].items()}


def test_a_version_that_is_not_kept_is_refused_naming_the_ones_that_are(built):
    tmp, _ = built
    with pytest.raises(InputError) as e:
        prepare(_config(tmp, "pipeline.train.features_version=7"))
    assert str(e.value) == f"{tmp}/data/features/sensors: no features version 7 (kept: 0)"


def test_training_pinned_to_a_version_learns_from_exactly_that_version(
    spark, built, tmp_path, caplog
):
    import mlflow

    shutil.copytree(built[0], tmp_path, dirs_exist_ok=True)  # the readings' path changes: rebuilt
    first = built[1]
    assert first.version == 0 and first.splits["train"].paths
    original, model = _trained(tmp_path)

    # New readings replace the old: the features are rebuilt as a new version of each split.
    path = tmp_path / "readings.json"
    path.write_text(path.read_text().replace('"humidity": 4', '"humidity": 6'))
    second = _build_features(tmp_path, spark)
    assert second.version == 1
    # Nothing new: every table is up to date, the features too (no version 2).
    caplog.set_level("INFO", logger="deepspark")
    assert _build_features(tmp_path, spark) == second
    said = [r.getMessage() for r in caplog.records if r.getMessage().startswith("features: ")]
    assert said == [
        "features: features/sensors/train is up to date (built from gold/sensors/device_hourly "
        "v1); skipped"
    ]
    folder = tmp_path / "data" / "features" / "sensors" / "train"
    kept = {p.name for p in folder.glob("*.parquet")}
    assert kept == set(first.splits["train"].paths) | set(second.splits["train"].paths)

    # Unpinned: the latest version's files only, though the folder holds both versions'.
    latest = prepare(_config(tmp_path))
    assert latest.manifest == second and latest.splits["train"].version == 1
    assert latest.splits["train"].rows == second.splits["train"].rows
    assert {u.rsplit("/", 1)[1] for u in latest.splits["train"].file_urls} == set(
        second.splits["train"].paths
    )

    # Pinned to version 0, into an empty checkpoint folder: its manifest (scaling, row counts)
    # and its files give the same checkpoint hash, the same test metrics, the same model.
    empty = tmp_path / "empty"
    result, again = _trained(
        tmp_path, "pipeline.train.features_version=0", f"paths.checkpoints={empty}"
    )
    before, after = Path(original.outputs["checkpoints"]), Path(result.outputs["checkpoints"])
    assert after.parent.parent == empty and after.name == before.name
    test = {k: v for k, v in original.metrics.items() if k.startswith("test.")}
    assert test and {k: result.metrics[k] for k in test} == test
    assert again.keys() == model.keys()
    for name, tensor in model.items():
        assert torch.equal(again[name], tensor), name
    run = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'm.db'}").get_run(
        result.outputs["mlflow_run"]
    )
    assert run.data.params["features.version"] == "0"
    sources = {d.dataset.name: json.loads(d.dataset.source) for d in run.inputs.dataset_inputs}
    assert sources["sensors/features/train"] == {
        "path": str(folder), "delta_table_version": 0,
    }  # fmt: skip


def test_vacuum_deletes_replaced_files_but_keeps_what_a_registered_model_was_trained_on(
    spark, built, tmp_path, caplog
):
    from deepspark.io import delta
    from deepspark.stages import vacuum

    shutil.copytree(built[0], tmp_path, dirs_exist_ok=True)
    trained = train_stage.run(_config(tmp_path, "pipeline.train.register.enabled=true"), None)
    assert trained.outputs["registered_model"] == "sensors"  # version 1, on features version 0
    path = tmp_path / "readings.json"
    path.write_text(path.read_text().replace('"humidity": 4', '"humidity": 6'))
    _build_features(tmp_path, spark)  # every table a new version, the features' version 1
    data = tmp_path / "data"
    silver = data / "silver" / "sensors" / "readings"
    splits = {s: data / "features" / "sensors" / s for s in ("test", "train", "validation")}
    before = {s: {p.name for p in f.glob("*.parquet")} for s, f in splits.items()}

    caplog.set_level("INFO", logger="deepspark")
    result = vacuum.run(_config(tmp_path, "paths.retention_days=0"), spark)

    # Silver keeps only its latest version's files; the older version can no longer be read.
    assert {p.as_uri() for p in silver.glob("*.parquet")} == set(
        delta.version_files(spark, str(silver))
    )
    # Each split holds version 0 that "sensors v1" was trained on: kept whole, one line each,
    # its log kept past the 30 days Delta would keep it for.
    kept = [r.getMessage() for r in caplog.records if r.getMessage().startswith("vacuum: kept")]
    assert kept == [
        f"vacuum: kept features/sensors/{s} whole: sensors v1 was trained on its version 0 "
        "(0.0 days old), older than paths.retention_days=0"
        for s in splits
    ]
    assert {s: {p.name for p in f.glob("*.parquet")} for s, f in splits.items()} == before
    detail = spark.sql(f"DESCRIBE DETAIL delta.`{splits['train']}`").first()
    assert detail["properties"]["delta.logRetentionDuration"] == "interval 31 days"
    assert result.metrics["kept"] == 3 and result.metrics["vacuumed"] >= 1
    assert prepare(_config(tmp_path, "pipeline.train.features_version=0")).splits["train"].rows
