"""Baselines every model is compared with, on the same split, in the same run.

- images: scikit-learn's ``SVC(gamma=0.001)``, the classic digits classifier, on the raw pixel
  scale it was tuned for (the features hold pixels / ``max_value``); skipped, with a note, where
  scikit-learn is not installed (a GPU box with torch only);
- sequences: persistence (the last observed target), the same step one season earlier (same hour
  yesterday), and the linear model ``y = Wx + b`` trained with the model's own loss.
"""

from __future__ import annotations

import importlib.util
import logging
from dataclasses import dataclass

import numpy as np

from deepspark.objectives import regression_loss

log = logging.getLogger("deepspark.train")


def svc_accuracy(
    train_x: np.ndarray,
    train_y: np.ndarray,
    test_x: np.ndarray,
    test_y: np.ndarray,
    *,
    pixel_scale: float,
) -> float | None:
    """Test accuracy of ``SVC(gamma=0.001)`` fitted on the training split.

    Returns:
        The accuracy, or None when scikit-learn is not installed (the baseline is then skipped).
    """
    if importlib.util.find_spec("sklearn") is None:
        log.warning("scikit-learn is not installed: the SVC baseline is skipped")
        return None
    from sklearn.svm import SVC

    clf = SVC(gamma=0.001).fit(train_x * pixel_scale, train_y)
    return float((clf.predict(test_x * pixel_scale) == test_y).mean())


@dataclass(frozen=True)
class LinearFit:
    """``y = weight . x + bias`` on standardized targets: the linear baseline, fitted once.

    The same fit is the linear baseline the report scores and, with ``train.residual: linear``,
    the fixed part of the model that the network learns the residual over.
    """

    weight: np.ndarray  # float32, one per value of a flat x row
    bias: float

    def predict(self, x: np.ndarray, y_scale: tuple[float, float]) -> np.ndarray:
        """Forecasts in the target's units for flat ``x`` rows."""
        mean, std = y_scale
        z = np.asarray(x, dtype=np.float32) @ self.weight + np.float32(self.bias)
        return z.astype(np.float64) * std + mean


def fit_linear(
    train_x: np.ndarray,
    train_y: np.ndarray,
    *,
    y_scale: tuple[float, float],
    loss: str,
    steps: int = 1500,
    seed: int = 0,
) -> LinearFit:
    """Fit ``y = Wx + b`` full-batch with ``loss`` on standardized targets.

    Full-batch Adam on a convex problem: a few seconds for tens of thousands of windows, and the
    same objective the neural model minimizes, so the comparison is between models, not losses.
    """
    import torch

    torch.manual_seed(seed)
    mean, std = y_scale
    x = torch.from_numpy(np.ascontiguousarray(train_x, dtype=np.float32))
    y = torch.from_numpy(((train_y - mean) / std).astype(np.float32))
    layer = torch.nn.Linear(x.shape[1], 1)
    torch.nn.init.zeros_(layer.weight)
    torch.nn.init.zeros_(layer.bias)
    opt = torch.optim.Adam(layer.parameters(), lr=0.01)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    fn = regression_loss(loss)
    for _ in range(steps):
        opt.zero_grad()
        fn(layer(x).squeeze(-1), y).backward()
        opt.step()
        sched.step()
    weight = layer.weight.detach().numpy().reshape(-1).astype(np.float32)
    return LinearFit(weight=weight, bias=float(layer.bias.detach()[0]))


def mae(pred: np.ndarray, y: np.ndarray) -> float:
    """Mean absolute error."""
    return float(np.mean(np.abs(np.asarray(pred, dtype=np.float64) - y)))
