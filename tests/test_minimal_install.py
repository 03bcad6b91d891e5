"""The GPU path installs light: training and the GPU benchmark with torch, numpy, pyarrow, pyyaml.

``python -m deepspark.train`` and ``torchrun -m deepspark.train`` run in a venv that has nothing
else (deepspark installed ``--no-deps``); MLflow missing turns tracking off with one warning and
checkpoints are written as usual. A Spark job asking for MLflow where it is missing fails in one
line instead.
"""

from __future__ import annotations

import json
import logging
import subprocess
from pathlib import Path

import pytest

from deepspark import cli, tracking
from deepspark.errors import SetupError
from deepspark.train import checkpoint as ckpt
from tests.minimal import ABSENT, clean_env, minimal_python
from tests.synthetic import ROOT, train_config, write_features

SPLITS = {"train": [300, 300], "validation": [100, 100], "test": [100, 100]}
MISSING = "MLflow is not installed: tracking is off"


@pytest.fixture(scope="module")
def python() -> Path:
    return minimal_python()


def run(python: Path, args: list[str], cwd: Path, timeout: float = 180) -> str:
    proc = subprocess.run(
        [str(python), *args], cwd=cwd, env=clean_env(), capture_output=True, text=True,
        timeout=timeout, check=False,
    )  # fmt: skip
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    return out


def finished_state(root: Path) -> dict:
    (folder,) = root.glob("*/*/state.json")  # {checkpoints}/{pipeline}/{model}-{hash}
    return ckpt.read_state(folder.parent)


def test_the_minimal_venv_has_none_of_the_spark_side(python, tmp_path):
    probe = (
        "import importlib.util, json, deepspark; "
        f"print(json.dumps([[m for m in {list(ABSENT)!r} if importlib.util.find_spec(m)], "
        "deepspark.__file__]))"
    )
    present, location = json.loads(run(python, ["-c", probe], tmp_path))
    assert present == []
    assert Path(location).is_relative_to(python.parents[1])  # the installed copy, not lib/


def test_the_installed_package_runs_its_command_without_this_checkout(python, tmp_path):
    # The wheel carries conf/ (profiles, embedded pipelines), the log4j2 file and the entry script
    # that `deepspark submit STAGE` hands to spark-submit.
    deepspark = python.parent / "deepspark"
    out = run(deepspark, ["clusters"], tmp_path)
    assert out.splitlines()[2].startswith("local           this machine, local[2]")
    assert "site-packages/deepspark/conf/clusters" in out.splitlines()[-1]
    probe = (
        "import deepspark, pathlib; p = pathlib.Path(deepspark.__file__).parent; "
        "print(sorted(str(f.relative_to(p)) for f in [*p.glob('conf/*.yaml'), "
        "*p.glob('log4j2.properties'), *p.glob('cli/submit/resource/job.py')]))"
    )
    assert run(python, ["-c", probe], tmp_path).strip() == str(
        sorted([*(f"conf/{f.name}" for f in (ROOT / "conf").glob("*.yaml")),
                "log4j2.properties", "cli/submit/resource/job.py"])
    )  # fmt: skip


def test_python_m_deepspark_train_runs_without_mlflow_and_checkpoints(python, tmp_path):
    write_features(tmp_path / "data", "digits", "image", SPLITS)
    cfg = train_config(tmp_path, "image", "pipeline.train.epochs=2")
    # The config as shipped asks for MLflow (mlflow.enabled is not overridden here).
    args = ["-m", "deepspark.train", "-c", str(ROOT / "conf" / "digits.yaml"),
            f"paths.data={cfg.paths.data}", f"paths.checkpoints={cfg.paths.checkpoints}",
            "pipeline.train.batch_size=16", "pipeline.train.epochs=2",
            "pipeline.train.processes=1", "pipeline.train.cnn.channels=[8, 8]"]  # fmt: skip
    out = run(python, args, tmp_path)
    assert out.count(MISSING) == 1, out[-3000:]
    assert "SVC baseline is skipped" in out and "test.accuracy" in out
    state = finished_state(Path(cfg.paths.checkpoints))
    assert state["finished"] and state["epoch"] == 2 and state["run_id"] is None
    assert not list(tmp_path.rglob("mlflow.db"))  # no MLflow store was created


def test_torchrun_two_ranks_train_a_forecaster_with_tracking_off(python, tmp_path):
    write_features(tmp_path / "data", "flights", "sequence", SPLITS)
    cfg = train_config(tmp_path, "sequence")
    args = ["-m", "torch.distributed.run", "--nproc_per_node=2", "-m", "deepspark.train",
            "-c", str(ROOT / "conf" / "flights.yaml"), "mlflow.enabled=false",
            f"paths.data={cfg.paths.data}", f"paths.checkpoints={cfg.paths.checkpoints}",
            "pipeline.train.batch_size=16", "pipeline.train.epochs=2",
            "pipeline.train.processes=2", "pipeline.train.rnn.hidden=[8]"]  # fmt: skip
    out = run(python, args, tmp_path)
    assert MISSING not in out  # tracking was turned off by the config, nothing to warn about
    assert "baseline.linear.mae" in out
    state = finished_state(Path(cfg.paths.checkpoints))
    assert state["finished"] and state["epoch"] == 2


def test_the_gpu_benchmark_needs_nothing_more(python, tmp_path):
    out = tmp_path / "gpu.json"
    args = [str(ROOT / "benchmarks" / "gpu.py"), "--emulate", "--quick", "--cases",
            "lstm-24x15", "--out", str(out)]  # fmt: skip
    run(python, args, tmp_path)
    result = json.loads(out.read_text())
    assert result["mode"] == "emulate" and len(result["results"]) == 6


def test_missing_mlflow_turns_tracking_off_once_where_optional(monkeypatch, tmp_path, caplog):
    monkeypatch.setattr(tracking.tracker, "installed", lambda: False)
    tracker = tracking.Tracking()  # one job's: it says so once
    cfg = train_config(tmp_path, "image", "mlflow.enabled=true")
    with caplog.at_level(logging.WARNING, logger="deepspark.tracking"):
        first = tracker.usable(cfg, optional=True)
        again = tracker.usable(cfg, optional=True)
    assert not first.mlflow.enabled and not again.mlflow.enabled
    assert first.pipeline == cfg.pipeline and first.files == cfg.files
    assert [r.getMessage().startswith(MISSING) for r in caplog.records] == [True]
    with pytest.raises(SetupError, match="mlflow package is not installed"):
        tracker.usable(cfg, optional=False)


def test_installed_mlflow_leaves_the_config_alone(tmp_path):
    cfg = train_config(tmp_path, "image", "mlflow.enabled=true")
    assert tracking.installed() and tracking.Tracking().usable(cfg, optional=True) is cfg


def test_a_spark_job_asking_for_missing_mlflow_fails_in_one_line(monkeypatch, capsys):
    monkeypatch.setattr(tracking.tracker, "installed", lambda: False)
    ran = []
    code = cli.main(lambda cfg, spark, tracker: ran.append(cfg), job="test", argv=["-c",
                    str(ROOT / "conf" / "digits.yaml"), "mlflow.enabled=true"])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and not ran
    assert err[-1].startswith("error: mlflow.enabled=true but the mlflow package is not installed")
