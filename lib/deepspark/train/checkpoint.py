"""Atomic per-epoch checkpoints: a killed run leaves the last complete epoch, never half a file."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

LAST, BEST, STATE = "last.pt", "best.pt", "state.json"


def save(directory: str | Path, name: str, payload: dict[str, Any]) -> Path:
    """``torch.save`` to a temporary file in the same folder, fsync, then rename over ``name``."""
    import torch

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / name
    tmp = directory / f".{name}.tmp-{os.getpid()}"
    try:
        with open(tmp, "wb") as fh:
            torch.save(payload, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)
    return final


def load(directory: str | Path, name: str = LAST) -> dict[str, Any] | None:
    """A checkpoint saved by :func:`save`, or None when there is none."""
    import torch

    path = Path(directory) / name
    if not path.exists():
        return None
    return torch.load(path, map_location="cpu", weights_only=False)


def write_state(directory: str | Path, state: dict[str, Any]) -> None:
    """A small JSON summary beside the checkpoints (epoch, finished, MLflow run), also atomic."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / f".{STATE}.tmp-{os.getpid()}"
    tmp.write_text(json.dumps(state, indent=2), encoding="utf-8")
    os.replace(tmp, directory / STATE)


def read_state(directory: str | Path) -> dict[str, Any] | None:
    """The summary written by :func:`write_state`, or None."""
    path = Path(directory) / STATE
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None
