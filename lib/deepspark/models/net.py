"""The architectures, and :class:`FeatureNet`, which adapts flat feature rows to them."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from deepspark.models.custom import build_core, is_custom

if TYPE_CHECKING:  # configs arrive as arguments: this floor imports no config module
    from deepspark.config.architectures import CNNConfig, MLPConfig, RNNConfig
    from deepspark.config.train import TrainConfig


class CNN(nn.Module):
    """conv 32 -> pool -> conv 64 -> pool -> conv 64 -> flatten -> dense 64 -> dense classes."""

    def __init__(self, cfg: CNNConfig, in_shape: tuple[int, int, int], n_out: int) -> None:
        super().__init__()
        channels, height, width = in_shape
        layers: list[nn.Module] = []
        for i, out in enumerate(cfg.channels):
            layers.append(nn.Conv2d(channels, out, cfg.kernel, padding=cfg.kernel // 2))
            if cfg.batch_norm:
                layers.append(nn.BatchNorm2d(out))
            layers.append(nn.ReLU())
            # Pool between blocks while the map can still halve without vanishing.
            if i < len(cfg.channels) - 1 and min(height, width) >= 4:
                layers.append(nn.MaxPool2d(2))
                height, width = height // 2, width // 2
            channels = out
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(channels * height * width, cfg.hidden),
            nn.ReLU(),
            nn.Dropout(cfg.dropout),
            nn.Linear(cfg.hidden, n_out),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return self.head(self.features(x))


class RNN(nn.Module):
    """Stacked LSTM/GRU/RNN layers returning sequences, the last step -> dense ``n_out``."""

    _CELLS = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}

    def __init__(self, cfg: RNNConfig, in_shape: tuple[int, int], n_out: int) -> None:
        super().__init__()
        _, features = in_shape
        cell = self._CELLS[cfg.cell]
        sizes = [features, *cfg.hidden]
        self.layers = nn.ModuleList(
            cell(a, b, batch_first=True) for a, b in zip(sizes[:-1], sizes[1:], strict=True)
        )
        self.dropout = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(sizes[-1], n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        for layer in self.layers:
            x, _ = layer(x)
            x = self.dropout(x)
        return self.head(x[:, -1])


class MLP(nn.Module):
    """Dense ReLU layers over the flattened input; with none it is ``y = Wx + b``."""

    def __init__(self, cfg: MLPConfig, in_shape: tuple[int, ...], n_out: int) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        width = math.prod(in_shape)
        for h in cfg.hidden:
            layers += [nn.Linear(width, h), nn.ReLU(), nn.Dropout(cfg.dropout)]
            width = h
        layers.append(nn.Linear(width, n_out))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return self.net(x)


def make_core(
    cfg: TrainConfig, x_shape: tuple[int, ...], n_out: int, task: str = "classification"
) -> nn.Module:
    """The architecture ``cfg.model`` names, for inputs of ``x_shape`` (no batch axis).

    A ``package.module:factory`` is called with ``task`` and ``cfg.model_args``
    (:mod:`deepspark.models.custom`).
    """
    if is_custom(cfg.model):
        return build_core(cfg.model, x_shape, n_out, task, cfg.model_args)
    if cfg.model == "cnn":
        if len(x_shape) != 3:
            raise ValueError(
                f"cnn: expected image features [channels, height, width], got {x_shape}"
            )
        return CNN(cfg.cnn, x_shape, n_out)  # type: ignore[arg-type]
    if cfg.model == "rnn":
        if len(x_shape) != 2:
            raise ValueError(f"rnn: expected sequence features [steps, inputs], got {x_shape}")
        return RNN(cfg.rnn, x_shape, n_out)  # type: ignore[arg-type]
    return MLP(cfg.mlp, x_shape, n_out)


class FeatureNet(nn.Module):
    """Flat ``x`` rows -> ``x_shape`` -> the core model -> class logits or target-unit forecasts.

    A regressor (``n_out == 1``) learns standardized targets; ``y_mean``/``y_std`` buffers turn its
    output back into the target's units, so they travel with every checkpoint and logged model.

    With ``persistence`` (the target's index among each step's features, which the features stage
    scales with the target's own statistics) a regressor learns the residual over the last
    observed target: the core's output is added to it. Next-step forecasts are mostly "what it
    was, plus a change"; learning the change measured 1.3-2.7 % -> 1.9-6.4 % below the linear
    baseline's MAE on flights (MODELS.md).

    With ``linear`` (a flat weight per value of an ``x`` row and a bias, fitted beforehand on the
    training split in standardized target units) it learns the residual over that fixed linear
    forecast instead: the network starts where the linear baseline ends and only has to learn
    what a linear model cannot. Both are buffers: they travel with the weights and never train.
    """

    def __init__(
        self,
        core: nn.Module,
        x_shape: tuple[int, ...],
        *,
        n_out: int,
        y_scale: tuple[float, float] | None = None,
        persistence: int | None = None,
        linear: tuple[Sequence[float], float] | None = None,
    ) -> None:
        super().__init__()
        self.core = core
        self.x_shape = x_shape
        self.regression = y_scale is not None
        mean, std = y_scale or (0.0, 1.0)
        self.register_buffer("y_mean", torch.tensor(float(mean)))
        self.register_buffer("y_std", torch.tensor(float(std)))
        self.n_out = n_out
        self.persistence = persistence if self.regression else None
        self.linear = linear is not None and self.regression
        if self.linear:
            weight, bias = linear  # type: ignore[misc]
            w = torch.as_tensor(np.asarray(weight, dtype=np.float32).reshape(-1))
            if w.numel() != math.prod(x_shape):
                raise ValueError(f"linear: {w.numel()} weights for rows of {math.prod(x_shape)}")
            self.register_buffer("linear_weight", w)
            self.register_buffer("linear_bias", torch.tensor(float(bias)))
            # The core's last layer starts at zero, so the untrained model is the linear forecast
            # exactly, not that plus a random head's noise; training moves it from there.
            linears = [m for m in core.modules() if isinstance(m, nn.Linear)]
            if not linears:  # a custom core may have none
                raise ValueError(
                    f"residual=linear: expected the core to end in an nn.Linear (it starts at "
                    f"zero), found none in {type(core).__name__}; set train.residual to none"
                )
            nn.init.zeros_(linears[-1].weight)
            if linears[-1].bias is not None:
                nn.init.zeros_(linears[-1].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        shaped = x.reshape(x.shape[0], *self.x_shape)
        out = self.core(shaped)
        if not self.regression:
            return out
        out = out.squeeze(-1)
        # getattr: modules pickled before the residual existed have no such attribute
        p = getattr(self, "persistence", None)
        if p is not None:
            out = out + shaped[:, -1, p]
        if getattr(self, "linear", False):
            # A product and a sum, not a matmul: autocast leaves them in fp32 on GPU.
            out = out + (x.float() * self.linear_weight).sum(-1) + self.linear_bias
        return out * self.y_std + self.y_mean
