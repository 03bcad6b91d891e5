"""GPU tier: the same training function on CUDA (nccl when 2+ devices, bf16 autocast, pinned).

Runs on a GPU box with only torch, numpy, pyarrow, pyyaml (and pytest) installed besides
deepspark: nothing here needs Spark or MLflow. ``pytest -m gpu tests/test_gpu.py``.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from deepspark.stages import train as train_stage
from deepspark.train import checkpoint as ckpt
from tests.synthetic import ROOT, train_config, write_features

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def test_one_gpu_process_trains_in_bf16_and_learns(tmp_path):
    splits = {"train": [600, 600], "validation": [100, 100], "test": [100, 100]}
    write_features(tmp_path / "data", "digits", "image", splits)
    cfg = train_config(tmp_path, "image", "pipeline.train.use_gpu=true", "pipeline.train.epochs=4")
    result = train_stage.run(cfg, None)
    assert result.metrics["epochs"] == 4 and result.metrics["test.accuracy"] > 0.7
    saved = ckpt.load(result.outputs["checkpoints"])
    assert saved["history"][-1]["val_loss"] < saved["history"][0]["val_loss"]


def test_gpu_benchmark_quick_run_measures_every_model_on_cuda(tmp_path):
    out = tmp_path / "gpu.json"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "gpu.py"), "--quick", "--device", "cuda",
           "--out", str(out)]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    result = json.loads(out.read_text())
    assert result["device"]["type"] == "cuda" and result["device"]["name"] in proc.stdout
    rows = result["results"]
    assert len(rows) == 12  # 3 models x bf16 off/on x staged/loader
    # CUDA events time the steps: compute can only be a part of the wall time.
    assert all(0 < r["au"] <= 1 and r["compute_s"] <= r["wall_s"] for r in rows)
