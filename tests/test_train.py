"""Training: one process, torchrun over uneven shards, kill-and-resume replaying exactly."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from deepspark.stages import train as train_stage
from deepspark.train import checkpoint as ckpt
from deepspark.train.job import prepare
from tests.synthetic import ROOT, overrides, train_config, write_features

SPLITS = {"train": [300, 300], "validation": [100, 100], "test": [100, 100]}


def launch(args: list[str], *, torchrun: int = 0) -> subprocess.Popen:
    runner = ["-m", "torch.distributed.run", f"--nproc_per_node={torchrun}"] if torchrun else []
    cmd = [sys.executable, *runner, "-m", "deepspark.train", *args]
    env = {**os.environ, "DEEPSPARK_LOG_LEVEL": "WARNING"}
    return subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def finish(proc: subprocess.Popen, timeout: float = 240) -> str:
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out[-3000:]
    return out


def test_one_process_learns_beats_the_naive_baselines_and_checkpoints(tmp_path):
    write_features(tmp_path / "data", "flights", "sequence", SPLITS)
    cfg = train_config(tmp_path, "sequence", "pipeline.train.epochs=6", "pipeline.train.lr=0.01")
    result = train_stage.run(cfg, None)
    m = result.metrics
    assert m["epochs"] == 6 and m["test.rows"] == 200 and m["test.rows_common"] == 200
    # The target is 10 + 5a - 3b of the last step: far better than repeating "10".
    assert m["test.mae_common"] < 0.5 * m["baseline.persistence.mae"]
    state = ckpt.read_state(result.outputs["checkpoints"])
    assert state["finished"] and state["epoch"] == 6
    saved = ckpt.load(result.outputs["checkpoints"])
    assert saved["config"]["pipeline"]["train"]["epochs"] == 6 and saved["seed"] == 0
    assert {"model", "optimizer", "scheduler", "epoch", "history"} <= set(saved)


def test_two_ranks_on_deliberately_uneven_shards_finish(tmp_path):
    # Rank 0 reads row groups 0 and 2 (20 rows), rank 1 groups 1 and 3 (310 rows).
    write_features(tmp_path / "data", "digits", "image", {**SPLITS, "train": [10, 300, 10, 10]})
    cfg = train_config(tmp_path, "image", "pipeline.train.processes=2")
    args = ["--conf", "conf/digits.yaml", *overrides(cfg), *_small("image", processes=2)]
    finish(launch(args, torchrun=2))
    state = ckpt.read_state(prepare(cfg).checkpoint_dir)
    assert state["finished"] and state["epoch"] == 3


def test_a_killed_run_resumes_and_ends_where_an_uninterrupted_one_does(tmp_path):
    splits = {**SPLITS, "train": [2000, 2000]}
    write_features(tmp_path / "a" / "data", "digits", "image", splits)
    write_features(tmp_path / "b" / "data", "digits", "image", splits)
    extra = ["pipeline.train.epochs=8", "pipeline.train.patience=0"]
    killed = train_config(tmp_path / "a", "image", *extra)
    whole = train_config(tmp_path / "b", "image", *extra)
    args = ["--conf", "conf/digits.yaml", *_small("image"), *extra]
    folder = Path(prepare(killed).checkpoint_dir)

    proc = launch([*args, *overrides(killed)])
    deadline = time.monotonic() + 180
    while (ckpt.read_state(folder) or {}).get("epoch", 0) < 2:
        assert proc.poll() is None, proc.communicate()[0][-3000:]
        assert time.monotonic() < deadline
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    state = ckpt.read_state(folder)
    assert not state["finished"] and 2 <= state["epoch"] < 8

    out = finish(launch([*args, *overrides(killed)]))
    finish(launch([*args, *overrides(whole)]))
    assert ckpt.read_state(folder)["epoch"] == 8
    resumed, straight = ckpt.load(folder), ckpt.load(prepare(whole).checkpoint_dir)
    assert [h["epoch"] for h in resumed["history"]] == list(range(8))
    for name, tensor in straight["model"].items():
        assert torch.equal(resumed["model"][name], tensor), (name, out[-2000:])
    assert json.dumps(resumed["history"][-1]["val_loss"]) == json.dumps(
        straight["history"][-1]["val_loss"]
    )


def _small(kind: str, processes: int = 1) -> list[str]:
    cfg_args = [
        "mlflow.enabled=false",
        "pipeline.train.batch_size=16",
        "pipeline.train.epochs=3",
        f"pipeline.train.processes={processes}",
    ]
    if kind == "image":
        return [*cfg_args, "pipeline.train.cnn.channels=[8, 8]", "pipeline.train.cnn.hidden=16"]
    return [*cfg_args, "pipeline.train.rnn.hidden=[8]"]
