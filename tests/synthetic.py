"""Tiny feature splits written with pyarrow alone, in the layout the features stage writes.

Training tests control the files (row counts, row groups, broken columns) exactly, and need no
Spark to build them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from deepspark.config import Config, load_config

ROOT = Path(__file__).resolve().parents[1]


def image_rows(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """4x4 images whose label says whether the top half is brighter than the bottom."""
    x = rng.random((n, 16), dtype=np.float32)
    y = (x[:, :8].mean(1) > x[:, 8:].mean(1)).astype(np.int32)
    return x, y


def sequence_rows(
    n: int, rng: np.random.Generator, steps: int = 4
) -> tuple[np.ndarray, np.ndarray]:
    """Windows of ``steps`` x 2 inputs; the target is a noisy linear function of the last step."""
    x = rng.normal(size=(n, 2 * steps)).astype(np.float32)
    y = (10 + 5 * x[:, -2] - 3 * x[:, -1] + rng.normal(scale=0.1, size=n)).astype(np.float32)
    return x, y


def write_features(
    data: Path,
    pipeline: str,
    kind: str,
    files: dict[str, Sequence[int]],
    *,
    seed: int = 0,
    table_hook=None,
    steps: int = 4,
) -> Path:
    """``{data}/features/{pipeline}/{split}/part-i.parquet`` (one row group each) + manifest.

    ``files`` gives the row count of each file per split; ``table_hook(split, table)`` may
    return a changed table (to break a column on purpose); ``steps`` is a sequence's window.
    """
    rng = np.random.default_rng(seed)
    root = data / "features" / pipeline
    splits = {}
    for split, sizes in files.items():
        (root / split).mkdir(parents=True, exist_ok=True)
        for i, n in enumerate(sizes):
            x, y = image_rows(n, rng) if kind == "image" else sequence_rows(n, rng, steps)
            columns = {
                "x": pa.array(list(x), type=pa.list_(pa.float32())),
                "y": pa.array(y),
            }
            if kind == "sequence":
                columns["baseline_persistence"] = pa.array(x[:, -2] * 0 + 10, type=pa.float32())
                columns["baseline_seasonal"] = pa.array(np.full(n, 9.0), type=pa.float32())
            table = pa.table(columns)
            if table_hook is not None:
                table = table_hook(split, table)
            pq.write_table(table, root / split / f"part-{i:05d}.parquet", row_group_size=max(n, 1))
        splits[split] = {"rows": int(sum(sizes)), "files": len(sizes), "row_groups": len(sizes)}
    manifest = {"pipeline": pipeline, "kind": kind, "config_hash": "synthetic", "splits": splits}
    if kind == "image":
        manifest.update(x_shape=[1, 4, 4], max_value=1.0, classes=[0, 1])
    else:
        manifest.update(
            # The target is a function of the last step, not one of the inputs (no residual).
            x_shape=[steps, 2],
            target="t",
            inputs=["a", "b"],
            scaling={"t": {"mean": 10.0, "std": 5.0}},
        )
    (root / "_manifest.json").write_text(json.dumps(manifest))
    return root


def conf_file(kind: str) -> Path:
    """The shipped pipeline config of that kind of features."""
    return ROOT / "conf" / ("digits.yaml" if kind == "image" else "flights.yaml")


def train_overrides(tmp: Path, kind: str, *extra: str) -> list[str]:
    """What :func:`train_config` sets over :func:`conf_file`, as ``key=value`` overrides."""
    model = (
        ["pipeline.train.cnn.channels=[8, 8]", "pipeline.train.cnn.hidden=16"]
        if kind == "image"
        else ["pipeline.train.rnn.hidden=[8]"]
    )
    return [
        f"paths.data={tmp / 'data'}",
        f"paths.checkpoints={tmp / 'checkpoints'}",
        "mlflow.enabled=false",
        "pipeline.train.batch_size=16",
        "pipeline.train.epochs=3",
        "pipeline.train.processes=1",
        *model,
        *extra,
    ]


def train_config(tmp: Path, kind: str, *extra: str) -> Config:
    """The real pipeline config of that kind, pointed at ``tmp``, small and fast."""
    return load_config(conf_file(kind), train_overrides(tmp, kind, *extra))


def tracked_overrides(tmp: Path, kind: str, *extra: str) -> list[str]:
    """:func:`train_overrides` with MLflow on, in a store of its own under ``tmp``.

    The registry gate is the real one: a few epochs on these rows do not beat the linear
    baseline (the target is linear in the inputs), so a forecaster's version is ``challenger``
    and a test that evaluates or scores one names its version (tests/test_gate.py: the rule).
    """
    return train_overrides(
        tmp,
        kind,
        "mlflow.enabled=true",
        f"mlflow.tracking_uri=sqlite:///{tmp / 'mlflow.db'}",
        f"mlflow.artifact_root={tmp / 'artifacts'}",
        "pipeline.train.lr=0.01",
        *extra,
    )


def tracked_config(tmp: Path, kind: str, *extra: str) -> Config:
    """:func:`train_config` with MLflow on, in a store of its own under ``tmp``."""
    return load_config(conf_file(kind), tracked_overrides(tmp, kind, *extra))


def overrides(cfg: Config) -> list[str]:
    """The same config as command-line overrides (for subprocess launches)."""
    return [f"paths.data={cfg.paths.data}", f"paths.checkpoints={cfg.paths.checkpoints}"]
