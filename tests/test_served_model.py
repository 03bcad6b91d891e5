"""The logged model as served: its requirements, its answer, Spark scoring, a fresh environment."""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import mlflow
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from deepspark import serving
from deepspark.etl import score as sc
from deepspark.stages import score as score_stage
from deepspark.stages import train as train_stage
from tests.minimal import pip_install
from tests.synthetic import tracked_config, write_features

SPLITS = {"train": [300, 300], "validation": [100, 100], "test": [100, 100]}
INFERENCE = {"mlflow", "torch", "numpy", "pandas"}


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """A small registered image classifier (2 classes), and its test rows."""
    tmp = tmp_path_factory.mktemp("served")
    root = write_features(tmp / "data", "digits", "image", SPLITS)
    # Scored by number: the real gate decides whether two epochs make a champion.
    cfg = tracked_config(tmp, "image", "pipeline.train.epochs=2", "pipeline.score.model=1")
    result = train_stage.run(cfg, None)
    test = pq.read_table(root / "test").to_pandas()
    mlflow.set_tracking_uri(cfg.mlflow.tracking_uri)
    return {
        "tmp": tmp,
        "cfg": cfg,
        "result": result,
        "uri": "models:/digits/1",
        "x": np.stack(test["x"]).astype(np.float32),
        "y": test["y"].to_numpy(),
    }


def requirement_pins(uri: str) -> dict[str, str]:
    lines = Path(mlflow.pyfunc.get_model_dependencies(uri)).read_text().split()
    return dict(line.split("==", 1) for line in lines)


def by_row(y, label, probability):
    return sorted(zip(y, label, map(tuple, probability), strict=True))


def test_requirements_hold_only_what_inference_needs(digits):
    pins = requirement_pins(digits["uri"])
    assert set(pins) == INFERENCE
    assert not any("+" in v for v in pins.values()), pins
    installed = importlib.metadata.version("torch")
    assert pins["torch"] == installed.split("+", 1)[0]
    assert pins["mlflow"] == importlib.metadata.version("mlflow")


def test_a_classifier_answers_a_label_and_probabilities(digits):
    model = mlflow.pyfunc.load_model(digits["uri"])
    out = model.predict(digits["x"])
    assert isinstance(out, pd.DataFrame) and list(out.columns) == ["label", "probability"]
    assert out["label"].dtype == np.int64
    prob = np.stack(out["probability"])
    assert prob.shape == (200, 2) and (prob >= 0).all()
    np.testing.assert_allclose(prob.sum(1), 1.0, rtol=1e-12)
    np.testing.assert_array_equal(out["label"].to_numpy(), prob.argmax(1))
    # The label is the answer the training run's test accuracy was computed from.
    accuracy = float((out["label"].to_numpy() == digits["y"]).mean())
    assert accuracy == pytest.approx(digits["result"].metrics["test.accuracy"])
    info = mlflow.models.get_model_info(digits["uri"])
    assert info.signature.outputs.input_names() == ["label", "probability"]
    assert info.metadata == {"deepspark": {"task": "classification", "classes": 2}}


def test_the_scoring_server_answers_what_the_pyfunc_answers(digits):
    """What ``mlflow models serve``'s /invocations runs, in process: the same answer, as JSON."""
    from mlflow.pyfunc import scoring_server

    model = mlflow.pyfunc.load_model(digits["uri"])
    request = json.dumps({"inputs": digits["x"][:5].tolist()})
    schema = model.metadata.get_input_schema()
    reply = scoring_server.invocations(request, "application/json", model, schema)
    assert reply.status == 200, reply.response
    served = json.loads(reply.response)["predictions"]
    local = model.predict(digits["x"][:5])
    assert [r["label"] for r in served] == local["label"].tolist()
    np.testing.assert_allclose([r["probability"] for r in served], np.stack(local["probability"]))


def test_a_regressor_answers_in_the_targets_units():
    x = np.array([[1.0, -1.0], [0.0, 2.0]])
    out = serving.answer(x[:, 0] * 5.0 + 10.0, None)
    assert out.dtype == np.float32 and out.tolist() == [15.0, 10.0]
    with pytest.raises(
        ValueError, match=r"classifier output: expected \(rows, 3\), found \(2, 2\)"
    ):
        serving.answer(x, 3)


def test_model_io_reads_our_signature_and_older_raw_score_models():
    from mlflow.models import ModelSignature
    from mlflow.types import Schema, TensorSpec

    from deepspark import registry

    ours = SimpleNamespace(
        signature=serving.signature(16, 3), metadata=serving.metadata(3), model_uri="m"
    )
    assert registry.model_io(ours) == (16, 3, False)
    forecaster = SimpleNamespace(
        signature=serving.signature(8, None), metadata=serving.metadata(None)
    )
    assert registry.model_io(forecaster) == (8, None, False)
    f32 = np.dtype(np.float32)
    logits = ModelSignature(Schema([TensorSpec(f32, (-1, 16))]), Schema([TensorSpec(f32, (-1, 3))]))
    assert registry.model_io(SimpleNamespace(signature=logits, metadata=None)) == (16, 3, True)
    # The registry gate re-scores such an older champion by the arg-max of its class scores.
    raw = np.array([[0.1, 2.0, -1.0], [3.0, 0.0, 0.0]])
    np.testing.assert_array_equal(serving.point(raw), [1, 0])
    np.testing.assert_array_equal(serving.point(serving.answer(raw, 3)), [1, 0])


def test_spark_scoring_writes_what_the_pyfunc_answers(digits, spark):
    assert (sc.LABEL, sc.PROBABILITY) == (serving.LABEL, serving.PROBABILITY)
    result = score_stage.run(digits["cfg"], spark)
    assert result.metrics["rows_out"] == 200.0
    scored = pq.read_table(result.outputs["predictions"]).to_pandas()
    assert set(scored.columns) == {
        "y", "prediction", "confidence", "probability", "model_name", "model_version",
    }  # fmt: skip
    # Spark keeps no row order: match the rows by their label y and probabilities.
    local = mlflow.pyfunc.load_model(digits["uri"]).predict(digits["x"])
    want = by_row(digits["y"], local["label"], local["probability"])
    got = by_row(scored["y"], scored["prediction"], scored["probability"])
    assert [g[:2] for g in got] == [w[:2] for w in want]
    np.testing.assert_allclose([g[2] for g in got], [w[2] for w in want], rtol=1e-6)
    prob = np.stack(scored["probability"])
    np.testing.assert_allclose(scored["confidence"], prob.max(1), rtol=1e-6)


@pytest.mark.slow
def test_the_model_loads_and_answers_in_a_venv_built_from_its_requirements(digits, tmp_path):
    """A fresh venv from the model's own requirements.txt: no deepspark, pyspark or petastorm."""
    model_dir = mlflow.artifacts.download_artifacts(digits["uri"], dst_path=str(tmp_path / "m"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    requirements = Path(model_dir) / "requirements.txt"
    install = subprocess.run(
        [*pip_install(python), "-q", "-r", str(requirements)],  # uv, where CI has it
        capture_output=True, text=True, timeout=1500,
    )  # fmt: skip
    assert install.returncode == 0, install.stderr[-3000:]
    np.save(tmp_path / "x.npy", digits["x"])
    script = textwrap.dedent(
        """
        import importlib.util, json, sys
        import mlflow.pyfunc, numpy as np
        absent = [m for m in ("pyspark", "petastorm", "deepspark") if importlib.util.find_spec(m)]
        model = mlflow.pyfunc.load_model(sys.argv[1])
        out = model.predict(np.load(sys.argv[2]))
        print(json.dumps({"absent_found": absent, "label": out["label"].tolist(),
                          "probability": np.stack(out["probability"]).tolist()}))
        """
    )
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    run = subprocess.run(
        [str(python), "-c", script, model_dir, str(tmp_path / "x.npy")],
        capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    there = json.loads(run.stdout.strip().splitlines()[-1])
    assert there["absent_found"] == []  # deepspark came from the model's code, nothing else
    here = mlflow.pyfunc.load_model(digits["uri"]).predict(digits["x"])
    assert there["label"] == here["label"].tolist()
    np.testing.assert_allclose(there["probability"], np.stack(here["probability"]), rtol=1e-6)
    # The serving code path (what `mlflow models serve` answers a POST with), in that venv.
    (tmp_path / "request.json").write_text(json.dumps({"inputs": digits["x"][:20].tolist()}))
    served = subprocess.run(
        [str(venv / "bin" / "mlflow"), "models", "predict", "-m", model_dir,
         "-i", str(tmp_path / "request.json"), "-o", str(tmp_path / "reply.json"),
         "-t", "json", "--env-manager", "local"],
        capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path,
    )  # fmt: skip
    assert served.returncode == 0, served.stderr[-3000:]
    reply = json.loads((tmp_path / "reply.json").read_text())["predictions"]
    assert [r["label"] for r in reply] == there["label"][:20]
    np.testing.assert_allclose([r["probability"] for r in reply], there["probability"][:20])
