"""Model config dataclasses, kept free of torch so configs load without importing it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from deepspark.config.learning import Learning, learning


@dataclass(frozen=True)
class CNNConfig:
    """Conv blocks (``channels``), then a dense layer of ``hidden`` units, then one per class.

    Each block is a ``kernel`` x ``kernel`` same-padded convolution; every block but the last is
    followed by 2x2 max pooling while the feature map is at least 4 pixels on a side, so small
    inputs (8x8 digits) and large ones (28x28 and up) get the same architecture.
    """

    # Every setting shapes the network (config/learning.py), when it is the model trained.
    LEARNING: ClassVar[Learning] = learning(changes="channels kernel hidden dropout batch_norm")

    channels: tuple[int, ...] = (32, 64, 64)  # output channels of each conv block
    kernel: int = 3  # conv kernel size, odd
    hidden: int = 64  # units of the dense layer
    dropout: float = 0.0  # dropout before the output layer
    batch_norm: bool = False  # batch normalization after every convolution

    def __post_init__(self) -> None:
        if not self.channels or min(self.channels) < 1:
            raise ValueError("channels: expected at least one positive channel count")
        if self.kernel < 1 or self.kernel % 2 == 0:
            raise ValueError("kernel: expected an odd size >= 1 (same padding)")
        _check_dropout(self.dropout)


@dataclass(frozen=True)
class RNNConfig:
    """Stacked recurrent layers of ``hidden`` units (each returns sequences to the next), dense 1.

    ``cell`` picks LSTM, GRU or a plain (tanh) RNN; the forecast reads the last layer's last step.
    """

    LEARNING: ClassVar[Learning] = learning(changes="cell hidden dropout")

    cell: Literal["lstm", "gru", "rnn"] = "lstm"  # LSTM, GRU or a plain tanh RNN
    hidden: tuple[int, ...] = (64, 32)  # units of each stacked layer, first to last
    dropout: float = 0.1  # dropout between layers and before the head (forecasts overfit easily)

    def __post_init__(self) -> None:
        if not self.hidden or min(self.hidden) < 1:
            raise ValueError("hidden: expected at least one positive layer size")
        _check_dropout(self.dropout)


@dataclass(frozen=True)
class MLPConfig:
    """Dense layers over the flattened input; with no hidden layers, the linear ``y = Wx + b``."""

    LEARNING: ClassVar[Learning] = learning(changes="hidden dropout")

    hidden: tuple[int, ...] = ()  # sizes of the hidden dense layers; []: a linear model
    dropout: float = 0.0  # dropout after each hidden layer

    def __post_init__(self) -> None:
        if self.hidden and min(self.hidden) < 1:
            raise ValueError("hidden: expected positive layer sizes")
        _check_dropout(self.dropout)


def _check_dropout(p: float) -> None:
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout: expected a probability in [0, 1), found {p}")
