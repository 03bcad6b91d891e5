"""GPU tier: the same training function on CUDA (nccl when 2+ devices, bf16 autocast, pinned)."""

from __future__ import annotations

import pytest
import torch

from deepspark.stages import train as train_stage
from deepspark.train import checkpoint as ckpt
from tests.synthetic import train_config, write_features

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
