"""Bad training input fails in one line before any process starts."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest

from deepspark.errors import ConfigError, InputError
from deepspark.train.job import prepare
from tests.synthetic import train_config, write_features

GOOD = {"train": [40, 40], "validation": [20, 20], "test": [20, 20]}


def test_a_good_job_carries_shapes_scaling_and_a_stable_checkpoint_folder(tmp_path):
    write_features(tmp_path / "data", "flights", "sequence", GOOD)
    cfg = train_config(tmp_path, "sequence")
    job = prepare(cfg)
    assert (job.task, job.x_shape, job.n_out, job.y_scale) == ("regression", (4, 2), 1, (10.0, 5.0))
    assert {s: i.rows for s, i in job.splits.items()} == {"train": 80, "validation": 40, "test": 40}
    assert prepare(cfg).checkpoint_dir == job.checkpoint_dir
    other = prepare(train_config(tmp_path, "sequence", "pipeline.train.lr=0.1"))
    assert other.checkpoint_dir != job.checkpoint_dir
    resumed = prepare(train_config(tmp_path, "sequence", "pipeline.train.resume=false"))
    assert resumed.checkpoint_dir == job.checkpoint_dir  # not a learning setting


def test_no_features_yet(tmp_path):
    cfg = train_config(tmp_path, "image")
    with pytest.raises(InputError, match=r"_manifest.json: no feature manifest; run the features"):
        prepare(cfg)


def test_model_must_fit_the_feature_kind(tmp_path):
    write_features(tmp_path / "data", "digits", "image", GOOD)
    cfg = train_config(tmp_path, "image", "pipeline.train.model=rnn")
    with pytest.raises(
        ConfigError,
        match=r"train.model=rnn needs sequence features, but pipeline 'digits' has image features",
    ):
        prepare(cfg)


def test_missing_column_lists_what_is_there(tmp_path):
    hook = lambda split, t: t.rename_columns(["pixels", "y"])  # noqa: E731
    write_features(tmp_path / "data", "digits", "image", GOOD, table_hook=hook)
    with pytest.raises(
        InputError, match=r"train split is missing column\(s\) x \(available: pixels, y\)$"
    ):
        prepare(train_config(tmp_path, "image"))


def test_wrong_label_type(tmp_path):
    def hook(split, t):
        return t.set_column(1, "y", t.column("y").cast(pa.float32()))

    write_features(tmp_path / "data", "digits", "image", GOOD, table_hook=hook)
    with pytest.raises(InputError, match=r"column y must be an integer label, found float$"):
        prepare(train_config(tmp_path, "image"))


def test_rows_that_do_not_fit_the_shape(tmp_path):
    def hook(split, t):
        short = pa.array([v[:15] for v in t.column("x").to_pylist()], type=pa.list_(pa.float32()))
        return t.set_column(0, "x", short)

    write_features(tmp_path / "data", "digits", "image", GOOD, table_hook=hook)
    with pytest.raises(
        InputError, match=r"x rows hold 15 values, the manifest's x_shape needs 16$"
    ):
        prepare(train_config(tmp_path, "image"))


def test_empty_split(tmp_path):
    write_features(tmp_path / "data", "digits", "image", {**GOOD, "test": [0]})
    with pytest.raises(InputError, match=r"the test split is empty; check the split settings$"):
        prepare(train_config(tmp_path, "image"))


def test_fewer_row_groups_than_processes(tmp_path):
    write_features(tmp_path / "data", "digits", "image", {**GOOD, "train": [40, 40, 40]})
    cfg = train_config(tmp_path, "image", "pipeline.train.processes=4")
    with pytest.raises(
        InputError,
        match=r"train: 3 row group\(s\) for train.processes=4; Petastorm shards by row group",
    ):
        prepare(cfg)


def test_labels_must_be_zero_based(tmp_path):
    root = write_features(tmp_path / "data", "digits", "image", GOOD)
    manifest = json.loads((root / "_manifest.json").read_text())
    (root / "_manifest.json").write_text(json.dumps({**manifest, "classes": [1, 2]}))
    with pytest.raises(
        InputError, match=r"labels must be 0..K-1 for classification, found \[1, 2\]"
    ):
        prepare(train_config(tmp_path, "image"))
