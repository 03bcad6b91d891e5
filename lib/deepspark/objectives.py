"""What a model is trained on and judged by: the regression losses and each metric's direction.

Floor 1, beside the baselines: the training loop, the linear baseline and the registry gate all
read them here, so a loss or a metric means the same thing wherever it is computed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

# Which way each monitored or gated metric improves.
HIGHER_IS_BETTER = {"accuracy": True, "loss": False, "mae": False, "rmse": False}


def better(metric: str, value: float, than: float | None, min_delta: float = 0.0) -> bool:
    """Whether ``value`` beats ``than`` by more than ``min_delta`` (a tie does not; None: yes)."""
    if than is None:
        return True
    if HIGHER_IS_BETTER[metric]:
        return value > than + min_delta
    return value < than - min_delta


def regression_loss(name: str) -> Callable[[Any, Any], Any]:
    """The torch function for a regression loss name (``l1``, ``mse``, ``huber``)."""
    import torch.nn.functional as F

    return {"l1": F.l1_loss, "mse": F.mse_loss, "huber": F.smooth_l1_loss}[name]
