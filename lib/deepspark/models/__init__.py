"""Floor 1: plain ``nn.Module``s built from small config dataclasses.

:func:`build_model` is the one way in: it wraps the chosen architecture in :class:`FeatureNet`,
which takes the flat ``x`` rows of the feature Parquet, so the trained module, the logged MLflow
model and batch scoring all read the same input. Torch is imported on first use, so loading a
config never pays for it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # configs arrive as arguments: this floor imports no config module
    from deepspark.config.train import TrainConfig
    from deepspark.models.net import FeatureNet

__all__ = ["build_model"]


def build_model(
    cfg: TrainConfig,
    x_shape: tuple[int, ...],
    n_out: int,
    *,
    y_scale: tuple[float, float] | None = None,
    persistence: int | None = None,
    linear: tuple[Sequence[float], float] | None = None,
) -> FeatureNet:
    """The configured model for rows of ``x_shape``, with ``n_out`` outputs.

    ``y_scale`` (mean, std) makes a regressor answer in the target's units while it learns on
    standardized targets; ``persistence`` (the target's index among a step's features) makes it
    learn the residual over the last observed target, ``linear`` (weights per value of a flat
    row, and a bias) the residual over that fixed linear forecast.
    """
    from deepspark.models.net import FeatureNet, make_core

    # FeatureNet's rule: a regressor is what has target statistics to answer in.
    task = "regression" if y_scale is not None else "classification"
    core = make_core(cfg, tuple(x_shape), n_out, task)
    return FeatureNet(
        core,
        tuple(x_shape),
        n_out=n_out,
        y_scale=y_scale,
        persistence=persistence,
        linear=linear,
    )
