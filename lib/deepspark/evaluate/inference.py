"""Running a feature model over in-memory rows, and turning flat rows back into images."""

from __future__ import annotations

import numpy as np
import torch


def predict(model: torch.nn.Module, x: np.ndarray, batch_rows: int = 4096) -> np.ndarray:
    """The model's outputs for flat feature rows ``x``, in eval mode, batch by batch.

    Args:
        model: Takes ``(n, values)`` float32 rows (e.g. :class:`deepspark.models.net.FeatureNet`).
        x: Feature rows.
        batch_rows: Rows per forward pass.

    Returns:
        Class scores ``(n, k)`` or forecasts ``(n,)``, as float64.
    """
    model = eval_mode(model)
    parts = []
    with torch.no_grad():
        for start in range(0, len(x), batch_rows):
            chunk = np.ascontiguousarray(x[start : start + batch_rows], dtype=np.float32)
            parts.append(model(torch.from_numpy(chunk)).numpy())
    return np.concatenate(parts).astype(np.float64) if parts else np.empty((0,))


def eval_mode(model: torch.nn.Module) -> torch.nn.Module:
    """``model`` switched to eval mode (dropout off, batch-norm running statistics).

    MLflow logs models as ``torch.export`` programs by default; their modules refuse ``eval()``
    but need none: the mode is frozen into the graph when exported, and training exports in
    eval mode.
    """
    try:
        return model.eval()
    except NotImplementedError:
        return model


def to_images(x: np.ndarray, x_shape: tuple[int, ...]) -> np.ndarray:
    """Flat rows of ``(C, H, W)`` images -> ``(n, H, W)`` grey or ``(n, H, W, 3)`` colour.

    Other channel counts are averaged into grey: a picture per channel would not fit a grid.
    """
    if len(x_shape) != 3:
        raise ValueError(f"x_shape: expected (channels, height, width), found {x_shape}")
    images = np.asarray(x, dtype=np.float64).reshape(len(x), *x_shape)
    if x_shape[0] == 3:
        return np.clip(np.moveaxis(images, 1, -1), 0.0, 1.0)
    return np.clip(images.mean(1), 0.0, 1.0)
