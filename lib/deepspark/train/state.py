"""Where a training run stands: the checkpoint's plain half and what reached MLflow.

:class:`TrainState` is written by the Trainer on rank 0 into every ``last.pt`` (beside the
tensors) and read back to resume, or, after an MLflow outage, to log only what the run missed.
Only this module knows the checkpoint's keys; ``last.pt`` keeps the layout it always had, so
checkpoints written before this type existed still resume.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Tensors:
    """The state dicts ``last.pt`` holds beside the plain state."""

    model: dict[str, Any]
    optimizer: dict[str, Any] | None = None
    scheduler: dict[str, Any] | None = None
    averaged: dict[str, Any] | None = None  # the weight average, when the run keeps one

    def to_payload(self) -> dict[str, Any]:
        """The entries this adds to a checkpoint file (the unset ones left out)."""
        return {k: v for k, v in vars(self).items() if v is not None}

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> Tensors:
        """The state dicts of a loaded checkpoint."""
        return cls(**{k: payload[k] for k in cls.__dataclass_fields__ if k in payload})


@dataclass
class Logged:
    """What has reached a job's MLflow run, saved in every checkpoint as its "mlflow" entry.

    The run's parameters, how many leading epochs' metrics, the test metrics, the curves, the
    logged model's URI, the registry gate's outcome; and what failed, with the first error.
    """

    params: bool = False
    epochs: int = 0
    test: bool = False
    plots: bool = False
    model: str = ""
    registry: dict[str, Any] = field(default_factory=dict)
    failed: list[str] = field(default_factory=list)
    error: str = ""

    @classmethod
    def from_payload(cls, data: Mapping[str, Any] | None, epochs: int) -> Logged:
        """Parse a checkpoint's "mlflow" entry; one written before it existed had it all."""
        if data is None:
            return cls(params=True, epochs=epochs)
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**copy.deepcopy(known))


@dataclass
class BestWeights:
    """``best.pt``: the weights validated best so far, and their epoch (0-based)."""

    model: dict[str, Any]
    epoch: int

    def to_payload(self) -> dict[str, Any]:  # noqa: D102
        return {"model": self.model, "epoch": self.epoch}

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> BestWeights:  # noqa: D102
        return cls(model=payload["model"], epoch=int(payload["epoch"]))


@dataclass
class TrainState:
    """The plain part of a checkpoint: progress, early stopping, history and MLflow's share."""

    epoch: int = 0  # epochs completed
    best: float | None = None  # the best validation value of the monitored metric
    bad_epochs: int = 0
    stopped: bool = False  # early stopping fired
    finished: bool = False  # tested and reported (what MLflow missed is in ``logged.failed``)
    history: list[dict[str, float]] = field(default_factory=list)
    run_id: str | None = None
    seed: int = 0
    logged: Logged = field(default_factory=Logged)
    config: dict[str, Any] = field(default_factory=dict)  # the plain config that trained it

    @property
    def unreported(self) -> bool:
        """Whether results still have to reach MLflow (a rerun then logs only them)."""
        return bool(self.logged.failed)

    def to_payload(self, tensors: Tensors | None) -> dict[str, Any]:
        """``last.pt``'s content: the state dicts in ``tensors`` and this state."""
        return {
            **(tensors.to_payload() if tensors is not None else {}),
            "epoch": self.epoch, "best": self.best, "bad_epochs": self.bad_epochs,
            "stopped": self.stopped, "history": self.history, "config": self.config,
            "seed": self.seed, "run_id": self.run_id, "finished": self.finished,
            "mlflow": asdict(self.logged),
        }  # fmt: skip

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> TrainState:
        """Parse a loaded ``last.pt`` (its tensors stay in the payload)."""
        history = list(payload.get("history", []))
        return cls(
            epoch=int(payload.get("epoch", 0)),
            best=payload.get("best"),
            bad_epochs=int(payload.get("bad_epochs", 0)),
            stopped=bool(payload.get("stopped", False)),
            finished=bool(payload.get("finished", False)),
            history=history,
            run_id=payload.get("run_id"),
            seed=int(payload.get("seed", 0)),
            logged=Logged.from_payload(payload.get("mlflow"), len(history)),
            config=dict(payload.get("config", {})),
        )

    def summary(self, epochs: int, **values: Any) -> dict[str, Any]:
        """``state.json``: the few facts a person (or a test) reads without loading torch."""
        out = {
            "epoch": self.epoch, "epochs": epochs, "stopped": self.stopped,
            "finished": self.finished, "run_id": self.run_id,
        }  # fmt: skip
        if self.finished:
            out["mlflow_failed"] = list(self.logged.failed)
        return {**out, **values}
