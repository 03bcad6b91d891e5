"""Atomic per-epoch checkpoints: a killed run leaves the last complete epoch, never half a file.

A payload is tensors and plain values only (dicts, lists, tuples, str, int, float, bool, None),
so :func:`load` reads it with ``weights_only=True``: unpickling a checkpoint can then never run
code, whoever wrote the file. :func:`save` refuses anything else, so a payload that could not be
read back fails at the first epoch, not at the resume hours later.
"""

from __future__ import annotations

import json
import os
import pickle
import re
from collections import OrderedDict
from pathlib import Path
from typing import Any

from deepspark.errors import InputError

LAST, BEST, STATE = "last.pt", "best.pt", "state.json"


def save(directory: str | Path, name: str, payload: dict[str, Any]) -> Path:
    """``torch.save`` to a temporary file in the same folder, fsync, then rename over ``name``.

    Raises:
        TypeError: the payload holds something other than tensors and plain values.
    """
    import torch

    _check_plain(payload, name)
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
    """A checkpoint saved by :func:`save`, or None when there is none.

    Raises:
        InputError: the file holds more than tensors and plain values (nothing of it is run).
    """
    import torch

    path = Path(directory) / name
    if not path.exists():
        return None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        m = re.search(r"GLOBAL ([\w.]+)", str(e))
        found = f"one that refers to {m.group(1)}" if m else "one that is not"
        raise InputError(
            f"{path}: expected a weights-only checkpoint (tensors and plain values), found "
            f"{found}; it was not loaded (delete it to train from scratch)"
        ) from e


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


_PLAIN = (str, int, float, bool, type(None))


def _check_plain(value: Any, where: str) -> None:
    """Raise TypeError naming the first value ``torch.load(weights_only=True)`` would refuse."""
    import torch

    # Exact types: numpy's float64 is a float subclass, yet weights_only refuses to unpickle it.
    if type(value) in _PLAIN or isinstance(value, torch.Tensor):
        return
    if type(value) in (dict, OrderedDict):
        for k, v in value.items():
            _check_plain(k, f"{where} key {k!r}")
            _check_plain(v, f"{where}[{k!r}]")
        return
    if type(value) in (list, tuple, torch.Size):
        for i, v in enumerate(value):
            _check_plain(v, f"{where}[{i}]")
        return
    raise TypeError(
        f"checkpoint {where}: expected tensors and plain values only, found {type(value).__name__}"
    )
