"""Bring-your-own model: ``pipeline.train.model: package.module:factory`` trained, registered and
scored by Spark; a wrong factory is one line before any process starts."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import zipfile

import mlflow
import pyarrow.parquet as pq
import pytest

from deepspark import serving
from deepspark.errors import ConfigError
from deepspark.stages import score as score_stage
from deepspark.stages import train as train_stage
from deepspark.train.job import prepare
from tests.synthetic import ROOT, tracked_config, train_config, write_features

BYO = ROOT / "tests" / "byo"  # tiny_gru.py: on no sys.path but the one a test gives it
GOOD = {"train": [40, 40], "validation": [20, 20], "test": [20, 20]}


@pytest.fixture
def byo(monkeypatch):
    monkeypatch.syspath_prepend(str(BYO))


def _error(tmp_path, *extra: str) -> str:
    write_features(tmp_path / "data", "flights", "sequence", GOOD)
    with pytest.raises(ConfigError) as e:
        prepare(train_config(tmp_path, "sequence", *extra))
    return str(e.value)


def test_the_model_must_be_built_in_or_module_colon_factory(tmp_path):
    with pytest.raises(ConfigError) as e:
        train_config(tmp_path, "sequence", "pipeline.train.model=tiny_gru.make")
    assert str(e.value) == (
        f"{ROOT / 'conf' / 'flights.yaml'}: pipeline.train.model: expected cnn, rnn, mlp or "
        "package.module:factory, found 'tiny_gru.make'"
    )
    with pytest.raises(ConfigError, match=r"pipeline.train: model_args: only for a package"):
        train_config(tmp_path, "sequence", "pipeline.train.model_args.width=4")


def test_a_module_that_is_not_there(tmp_path):
    assert _error(tmp_path, "pipeline.train.model=no_such_models.seq:make") == (
        f"{ROOT / 'conf' / 'flights.yaml'}: pipeline.train.model=no_such_models.seq:make: module "
        f"'no_such_models.seq' not found; expected it on PYTHONPATH or in the working directory "
        f"({os.getcwd()})"
    )


def test_a_factory_that_is_not_there_or_not_callable(tmp_path, byo):
    assert _error(tmp_path, "pipeline.train.model=tiny_gru:mkae").endswith(
        "pipeline.train.model=tiny_gru:mkae: module 'tiny_gru' has no attribute 'mkae' "
        "(its functions and classes: TinyGRU, make, not_a_module, per_step)"
    )
    assert _error(tmp_path, "pipeline.train.model=tiny_gru:WIDTH").endswith(
        "tiny_gru:WIDTH: expected a callable factory, found int"
    )


def test_a_factory_that_returns_no_module_or_the_wrong_shape(tmp_path, byo):
    assert _error(tmp_path, "pipeline.train.model=tiny_gru:not_a_module").endswith(
        "tiny_gru:not_a_module: expected an nn.Module, the factory returned a builtins.dict"
    )
    assert _error(tmp_path, "pipeline.train.model=tiny_gru:per_step").endswith(
        "tiny_gru:per_step: expected output (batch, n_out) = (2, 1) for input (2, 4, 2), "
        "found (2, 4, 1)"
    )
    message = _error(
        tmp_path, "pipeline.train.model=tiny_gru:make", "pipeline.train.model_args.w=3"
    )
    assert message.endswith(
        "tiny_gru:make(x_shape=(4, 2), n_out=1, task='regression', w=3) failed: TypeError: "
        "make() got an unexpected keyword argument 'w'"
    )
    assert "\n" not in message


def test_model_args_are_part_of_the_checkpoint_identity(tmp_path, byo):
    write_features(tmp_path / "data", "flights", "sequence", GOOD)
    model = "pipeline.train.model=tiny_gru:make"
    four = prepare(train_config(tmp_path, "sequence", model, "pipeline.train.model_args.width=4"))
    six = prepare(train_config(tmp_path, "sequence", model, "pipeline.train.model_args.width=6"))
    assert four.checkpoint_dir != six.checkpoint_dir
    assert os.path.basename(four.checkpoint_dir).startswith("tiny_gru.make-")
    assert four.model_root == str(BYO)


RANK = """
import importlib.util, pickle, sys
from deepspark.models import build_model
from deepspark.train.worker import importable

job = pickle.load(open(sys.argv[1], "rb"))
assert importlib.util.find_spec("tiny_gru") is None, "importable before the job said where"
importable(job)
net = build_model(job.train, job.x_shape, job.n_out, y_scale=job.y_scale)
print(type(net.core).__name__, net.core.gru.hidden_size)
"""


def test_a_rank_puts_the_module_the_driver_found_on_its_path(tmp_path, byo):
    # A rank is a fresh interpreter: neither the driver's sys.path nor its working directory.
    write_features(tmp_path / "data", "flights", "sequence", GOOD)
    custom = ("pipeline.train.model=tiny_gru:make", "pipeline.train.model_args.width=5")
    job = prepare(train_config(tmp_path, "sequence", *custom))
    (tmp_path / "job.pkl").write_bytes(pickle.dumps(job))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run(
        [sys.executable, "-c", RANK, str(tmp_path / "job.pkl")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["TinyGRU", "5"]


def test_a_custom_model_trains_registers_and_scores_on_spark(tmp_path, byo, spark):
    # Spark's Python workers do not have the test's sys.path: the logged model ships the module.
    write_features(tmp_path / "data", "flights", "sequence", GOOD)
    custom = ("pipeline.train.model=tiny_gru:make", "pipeline.train.model_args.width=6")
    cfg = tracked_config(tmp_path, "sequence", *custom, "pipeline.train.epochs=1")
    trained = train_stage.run(cfg, None)
    assert trained.metrics["registry.version"] == 1.0  # champion or not: the real gate decides
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    net = serving.module("models:/flights/1")
    assert (type(net.core).__module__, type(net.core).__name__) == ("tiny_gru", "TinyGRU")
    assert net.core.gru.hidden_size == 6
    logged = mlflow.artifacts.download_artifacts("models:/flights/1", dst_path=str(tmp_path / "m"))
    assert sorted(os.listdir(os.path.join(logged, "code"))) == ["deepspark", "tiny_gru.py"]
    scored = score_stage.run(
        tracked_config(tmp_path, "sequence", *custom, "pipeline.score.model=1"), spark
    )
    assert scored.metrics["rows_out"] == scored.metrics["rows_in"] == 40
    predictions = pq.read_table(scored.outputs["predictions"]).column("prediction")
    assert predictions.null_count == 0 and len(predictions) == 40


def test_submit_ships_the_module_file_or_its_package_zipped(tmp_path, monkeypatch, byo):
    from deepspark.cli.submit.command import command, parse

    monkeypatch.chdir(ROOT)
    monkeypatch.delenv("SPARK_MASTER", raising=False)
    package = tmp_path / "src" / "mymodels"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "seq.py").write_text("def make(x_shape, n_out, task):\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path / "src"))

    def py_files(*extra: str) -> list[str]:
        argv = ["train", "-c", "conf/flights.yaml", "--dry-run", *extra]
        cmd = command(parse(argv), python="/venv/bin/python", dist=str(tmp_path / "dist"))
        return cmd[cmd.index("--py-files") + 1].split(",")[1:]  # after the library zip

    assert py_files() == []
    assert py_files("pipeline.train.model=tiny_gru:make") == [str(BYO / "tiny_gru.py")]
    assert py_files("pipeline.train.model=mymodels.seq:make") == [
        str(tmp_path / "dist/mymodels.zip")
    ]
    with zipfile.ZipFile(tmp_path / "dist" / "mymodels.zip") as zf:
        assert sorted(zf.namelist()) == ["mymodels/__init__.py", "mymodels/seq.py"]
