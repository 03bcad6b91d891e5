"""The ``pipeline.train`` section: model, optimisation, loader and launch settings."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import ClassVar, Literal

from deepspark.config.architectures import CNNConfig, MLPConfig, RNNConfig
from deepspark.config.frozen import FrozenMap
from deepspark.config.learning import Learning, learning

Task = Literal["classification", "regression"]
# The baselines training computes for each task, which register.baselines may name.
BASELINES: Mapping[str, tuple[str, ...]] = {
    "regression": ("persistence", "seasonal", "linear"),
    "classification": ("svc",),
}
BUILTIN = ("cnn", "rnn", "mlp")
# A dotted module path, a colon, an identifier (deepspark.models.custom imports it).
FACTORY = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*")


def _no_args() -> Mapping[str, str | int | float | bool]:
    return FrozenMap()


@dataclass(frozen=True)
class LoaderConfig:
    """How feature batches are read (behind :mod:`deepspark.data`).

    ``backend``: ``arrow`` reads row groups with pyarrow, ``petastorm`` with Petastorm's
    ``make_batch_reader`` (the ``deepspark[petastorm]`` extra); both give each rank the same row
    groups (Petastorm's sharding) and shuffle them from the same seeds. ``workers`` threads decode
    row groups ahead; with ``arrow`` they are delivered in their seeded order whatever the count,
    so the same seed gives the same batches (exact resume). With ``petastorm`` that holds only for
    one worker. ``auto`` (the default) is resolved once, before launch, by
    :func:`deepspark.data.choose_backend`; the training run records the backend it resolved to.
    """

    # What changes the sequence of updates (config/learning.py): the checkpoint's hash has these.
    LEARNING: ClassVar[Learning] = learning(changes="backend mix", keeps="workers prefetch")

    # The reader: arrow (pyarrow) or petastorm; auto: chosen before launch.
    backend: Literal["auto", "arrow", "petastorm"] = "auto"
    workers: int = 2  # threads decoding row groups ahead
    mix: int = 4  # row groups each training batch is drawn from (each shuffled within)
    prefetch: int = 4  # batches decoded ahead of the training step

    def __post_init__(self) -> None:
        if min(self.workers, self.prefetch, self.mix) < 1:
            raise ValueError("workers, prefetch and mix: expected >= 1")


@dataclass(frozen=True)
class AugmentConfig:
    """Random per-image affine jitter for training batches (images only; 0 turns it off)."""

    LEARNING: ClassVar[Learning] = learning(changes="shift rotate")

    shift: float = 0.0  # max translation in pixels, each axis
    rotate: float = 0.0  # max rotation in degrees, either way

    def __post_init__(self) -> None:
        if self.shift < 0 or self.rotate < 0:
            raise ValueError("shift and rotate: expected >= 0")


@dataclass(frozen=True)
class RegistryConfig:
    """Registering the trained model, and the gate that decides which version is ``champion``.

    A new version takes the ``champion`` alias only if it beats the current champion on ``metric``
    over the same test rows (the champion is re-scored on them) and, with ``beat_baselines``,
    every baseline training computed on those rows (a forecaster's MAE strictly below each of
    persistence, seasonal and linear; a classifier's accuracy not below the SVC's), the first
    version included; otherwise it is ``challenger``, with the reason tagged on version and run.
    A check that compares nothing (no baseline computed, no common test rows, a NaN on either
    side) is a loss too: the gate decides only on real comparisons.
    """

    # Register the model and run the gate; false: evaluate and score are skipped.
    enabled: bool = True
    name: str | None = None  # registered model name; default: the pipeline's name
    # The metric the gate compares versions on; auto: accuracy or mae, by task.
    metric: Literal["auto", "accuracy", "mae", "rmse"] = "auto"
    beat_baselines: bool = True  # false: a version may be champion though a baseline beats it
    # The baselines the gate holds a version to (the task's own: persistence, seasonal and linear
    # for a forecaster, svc for a classifier); empty: all of them.
    baselines: tuple[Literal["persistence", "seasonal", "linear", "svc"], ...] = ()


@dataclass(frozen=True)
class TrainConfig:
    """One training job. ``batch_size`` is per process; the global batch is it x ``processes``."""

    # What changes the sequence of updates (config/learning.py): the checkpoint's hash has these.
    # epochs shapes the schedule; batch_size and processes make the global batch. The stopping
    # rule, where ranks run, logging and the registry do not: changing them resumes the run.
    LEARNING: ClassVar[Learning] = learning(
        changes="model model_args epochs batch_size lr weight_decay schedule warmup_epochs "
        "grad_clip loss label_smoothing seed processes precision residual ema",
        keeps="monitor patience min_delta use_gpu local_mode resume log_every_s register "
        "features_version",
        sections="augment loader",
        architectures="cnn rnn mlp",
    )

    # The architecture; a built-in one takes its settings from the section of the same name.
    # Or your own, package.module:factory, called as factory(x_shape, n_out, task, **model_args)
    # to return the nn.Module mapping (batch, *x_shape) to (batch, n_out) (docs/TRAINING.md).
    model: Literal["cnn", "rnn", "mlp"] | str = field(
        metadata={"pattern": FACTORY.pattern, "expected": "cnn, rnn, mlp or package.module:factory"}
    )
    # Keyword arguments for a package.module:factory model (scalars); built-in models take none.
    model_args: Mapping[str, bool | int | float | str] = field(default_factory=_no_args)
    cnn: CNNConfig = field(default_factory=CNNConfig)
    rnn: RNNConfig = field(default_factory=RNNConfig)
    mlp: MLPConfig = field(default_factory=MLPConfig)
    epochs: int = 20  # passes over the training split, at most (early stopping may end sooner)
    batch_size: int = 64  # samples per step and process
    lr: float = 1e-3  # peak learning rate (AdamW)
    weight_decay: float = 1e-4  # AdamW decay of weights (biases and norms are not decayed)
    # Learning rate after warmup: cosine decay to 0, or constant.
    schedule: Literal["cosine", "constant"] = "cosine"
    warmup_epochs: int = 0  # epochs of linear learning-rate warmup
    grad_clip: float = 1.0  # max global gradient norm; 0 turns clipping off
    # auto: cross_entropy for a classifier, l1 for a forecaster.
    loss: Literal["auto", "cross_entropy", "l1", "mse", "huber"] = "auto"
    # Classifiers: cross-entropy's label smoothing. A little keeps the validation loss from
    # rewarding an early, less accurate epoch over confident later ones (digits, MODELS.md).
    label_smoothing: float = 0.0
    # The validation metric behind early stopping and the kept best weights; auto: loss or mae.
    monitor: Literal["auto", "loss", "accuracy", "mae", "rmse"] = "auto"
    patience: int = 5  # epochs without a better validation metric before stopping; 0: never
    min_delta: float = 0.0  # smallest change of the monitored metric that counts as better
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    seed: int = 0  # seeds initial weights, dropout, augmentation and shuffling
    processes: int = 2  # training processes (ranks); each reads its own row groups
    use_gpu: bool = False  # one GPU per process; the Spark GPU settings must be in place
    local_mode: bool = True  # TorchDistributor: processes on the driver (True) or on executors
    precision: Literal["auto", "fp32", "bf16"] = "auto"  # auto: bf16 autocast on GPU only
    # What a forecaster learns the residual over: "linear", the linear baseline fitted on the
    # training split first (kept fixed); "persistence", its target's last observed value (the
    # target must be an input); "none": it predicts the target itself. auto: persistence where
    # the target is an input, else none (MODELS.md compares the three on three real series).
    residual: Literal["auto", "linear", "persistence", "none"] = "auto"
    # Weights validated, kept and logged: an exponential moving average of the trained ones,
    # updated every step with this decay. None: 0.995 for forecasters, off for classifiers.
    ema: float | None = None
    loader: LoaderConfig = field(default_factory=LoaderConfig)
    resume: bool = True  # continue from this config's checkpoint when a run stopped early
    # Delta features: train (and evaluate) on this version of them, not the latest; deepspark
    # tables lists the versions. Its manifest and files are kept until vacuumed.
    features_version: int | None = None
    log_every_s: float = 10.0  # seconds between progress log lines (without a terminal)
    register: RegistryConfig = field(default_factory=RegistryConfig)

    def __post_init__(self) -> None:
        if self.model not in BUILTIN and not FACTORY.fullmatch(self.model):
            raise ValueError(
                f"model: expected {', '.join(BUILTIN)} or package.module:factory, "
                f"found {self.model!r}"
            )
        if self.model in BUILTIN and self.model_args:
            raise ValueError(
                f"model_args: only for a package.module:factory model; model {self.model} takes "
                f"its settings from pipeline.train.{self.model}, found {', '.join(self.model_args)}"
            )
        if self.features_version is not None and self.features_version < 0:
            raise ValueError(f"features_version: expected >= 0, found {self.features_version}")
        for name in ("epochs", "batch_size", "processes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: expected >= 1, found {getattr(self, name)}")
        if self.ema is not None and not 0 <= self.ema < 1:
            raise ValueError(f"ema: expected a decay in [0, 1), found {self.ema}")
        if self.lr <= 0 or self.weight_decay < 0 or self.grad_clip < 0:
            raise ValueError("lr: expected > 0; weight_decay and grad_clip: >= 0")
        if not 0 <= self.label_smoothing < 1:
            raise ValueError(f"label_smoothing: expected [0, 1), found {self.label_smoothing}")
        if self.patience < 0 or not 0 <= self.warmup_epochs < self.epochs:
            raise ValueError("patience: expected >= 0; warmup_epochs: in [0, epochs)")

    def resolved(
        self,
        task: Task,
        *,
        target_is_input: bool = False,
        backend: Literal["arrow", "petastorm"] | None = None,
    ) -> TrainConfig:
        """This config with every "auto" replaced by what it means for ``task``: one place.

        Training preflight calls it once (with what the features say and the loader backend it
        chose), and every rank, the report, the gate and evaluation read the result.
        ``precision: auto`` stays: it depends on the GPU each rank finds.

        Raises:
            ValueError: a loss that does not fit the task (cross_entropy for a forecaster).
        """
        classify = task == "classification"
        if self.loss != "auto" and (self.loss == "cross_entropy") != classify:
            expected = "cross_entropy" if classify else "l1, mse or huber"
            raise ValueError(f"loss: {self.loss} does not fit a {task} model; expected {expected}")
        register = self.register
        if register.metric == "auto":
            register = replace(register, metric="accuracy" if classify else "mae")
        return replace(
            self,
            loss=self.loss if self.loss != "auto" else ("cross_entropy" if classify else "l1"),
            monitor=self.monitor if self.monitor != "auto" else ("loss" if classify else "mae"),
            ema=self.ema if self.ema is not None else (0.0 if classify else 0.995),
            residual=self._residual(classify, target_is_input),
            loader=replace(self.loader, backend=backend) if backend else self.loader,
            register=register,
        )

    def _residual(self, classify: bool, target_is_input: bool) -> str:
        if classify:
            return "none"
        if self.residual == "auto":  # persistence where the target is an input (MODELS.md: why)
            return "persistence" if target_is_input else "none"
        return self.residual
