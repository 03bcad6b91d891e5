"""The ``pipeline.tune`` section: an Optuna search over ``pipeline.train`` keys.

``deepspark run tune`` runs it. Each searched key is a range or a list of choices; every value a
trial may take is checked against the training config before any trial starts
(:func:`deepspark.tune.space.check_space`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from deepspark.config.frozen import FrozenMap

# A trial is one process on one Spark task: these keys say how a training job is launched or
# registered, not what it learns, so a search over them measures nothing.
UNSEARCHABLE = (
    "processes",
    "use_gpu",
    "local_mode",
    "resume",
    "log_every_s",
    "register",
    "features_version",
)


@dataclass(frozen=True)
class SearchRange:
    """One searched key: ``low``..``high`` (optionally ``log`` or in ``step``s), or ``choices``.

    Integers on both ends (and an integer ``step``) search integers; otherwise floats. A choice
    may be any YAML value (``[64, 32]`` for a list-valued key such as ``rnn.hidden``).
    """

    low: float | None = None  # the range's lower end (inclusive)
    high: float | None = None  # the range's upper end (inclusive)
    log: bool = False  # sample the range on a log scale (learning rates, decays)
    step: float | None = None  # search only low, low + step, ...; null: continuous (floats)
    choices: tuple[Any, ...] = ()  # the values to choose from, instead of a range

    def __post_init__(self) -> None:
        ranged = self.low is not None or self.high is not None
        if ranged == bool(self.choices):
            raise ValueError("expected either low and high, or choices")
        if self.choices:
            if self.log or self.step is not None:
                raise ValueError("log and step apply to a range, not to choices")
            if len({_key(c) for c in self.choices}) != len(self.choices):
                raise ValueError(f"choices: expected distinct values, found {list(self.choices)}")
            return
        if self.low is None or self.high is None:
            raise ValueError("a range needs both low and high")
        if not self.low < self.high:
            raise ValueError(f"expected low < high, found low={self.low}, high={self.high}")
        if self.log and self.low <= 0:
            raise ValueError(f"log: expected low > 0, found {self.low}")
        if self.step is not None:
            if self.log:
                raise ValueError("log and step cannot be combined (Optuna samples one or other)")
            if not 0 < self.step <= self.high - self.low:
                raise ValueError(f"step: expected in (0, high - low], found {self.step}")

    @property
    def integer(self) -> bool:
        """Whether the range searches integers (both ends, and the step, are whole numbers)."""
        ends = (self.low, self.high) if self.step is None else (self.low, self.high, self.step)
        return not self.choices and all(isinstance(v, int) for v in ends)

    def bounds(self) -> tuple[Any, ...]:
        """The values that span what a trial may take: both ends, or every choice."""
        return tuple(self.choices) or (self.low, self.high)


def _key(value: Any) -> str:
    return repr(value)


@dataclass(frozen=True)
class PrunerConfig:
    """Stopping hopeless trials early, on the validation metric reported after every epoch."""

    # median: stop a trial whose best value so far is worse than the median of earlier trials at
    # the same epoch; hyperband: successive halving over epochs; none: every trial runs out.
    kind: Literal["median", "hyperband", "none"] = "median"
    startup_trials: int = 2  # finished trials before any trial may be pruned (median)
    warmup_epochs: int = 2  # epochs every trial runs before it may be pruned

    def __post_init__(self) -> None:
        if self.startup_trials < 0 or self.warmup_epochs < 0:
            raise ValueError("startup_trials and warmup_epochs: expected >= 0")


@dataclass(frozen=True)
class TuneConfig:
    """An Optuna study over ``pipeline.train`` keys, one single-process trial per Spark task.

    The objective is the best validation value of ``pipeline.train.monitor`` (MAE for a
    forecaster, loss for a classifier), minimized (maximized for accuracy). The test split is
    never read by a trial.
    """

    # ``pipeline.train`` key (dotted: ``rnn.dropout``, ``model_args.width``) -> its range.
    space: Mapping[str, SearchRange] = field(default_factory=FrozenMap)
    trials: int = 20  # trials the study holds when done (completed, pruned or failed)
    parallelism: int = 2  # trials running at once, one Spark task each
    sampler: Literal["tpe", "random"] = "tpe"  # tpe: Optuna's default Bayesian sampler
    startup_trials: int = 5  # random trials before TPE models the results
    seed: int = 0  # seeds the sampler (with parallelism 1, the same trials in the same order)
    epochs: int | None = None  # epochs per trial; null: pipeline.train.epochs
    pruner: PrunerConfig = field(default_factory=PrunerConfig)
    # The study's name; empty: the pipeline's name and a hash of the space and the training
    # config, so the same command resumes its study and a changed search starts a new one.
    study: str = ""

    def __post_init__(self) -> None:
        if not self.space:
            raise ValueError("space: expected at least one pipeline.train key to search")
        for name in ("trials", "parallelism"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: expected >= 1, found {getattr(self, name)}")
        if self.epochs is not None and self.epochs < 1:
            raise ValueError(f"epochs: expected >= 1, found {self.epochs}")
        if self.startup_trials < 0:
            raise ValueError(f"startup_trials: expected >= 0, found {self.startup_trials}")
        for key in self.space:
            top = key.split(".")[0]
            if top in UNSEARCHABLE:
                raise ValueError(
                    f"space.{key}: {top} says how a trial is launched or registered, not what it "
                    f"learns; searchable keys are the rest of pipeline.train"
                )
