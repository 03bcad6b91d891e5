"""Test-split metrics on plain numpy arrays: classification and point forecasts.

Conventions, stated once: a class that is never predicted has precision 0 and a class absent from
the labels recall 0 (scikit-learn's ``zero_division=0``), so macro averages never silently skip a
class; MAPE is in percent and only counts rows whose target is at least ``min_abs`` away from
zero, because a delay of 0 minutes has no percentage error and one of 0.1 minutes an absurd one.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd


def confusion_matrix(y: np.ndarray, pred: np.ndarray, classes: int) -> np.ndarray:
    """Counts of (true class, predicted class): rows are the truth, columns the predictions.

    Args:
        y: True class indices in ``[0, classes)``.
        pred: Predicted class indices, same length.
        classes: Number of classes.

    Returns:
        An int64 ``classes x classes`` matrix.
    """
    y, pred = np.asarray(y, dtype=np.int64), np.asarray(pred, dtype=np.int64)
    if y.shape != pred.shape:
        raise ValueError(f"y and pred: expected the same shape, found {y.shape} and {pred.shape}")
    bad = (y < 0) | (y >= classes) | (pred < 0) | (pred >= classes)
    if bad.any():
        raise ValueError(f"class indices: expected values in [0, {classes}), found {bad.sum()} not")
    return np.bincount(y * classes + pred, minlength=classes * classes).reshape(classes, classes)


def per_class(matrix: np.ndarray, labels: Sequence[str] | None = None) -> pd.DataFrame:
    """Precision, recall, F1 and support per class from a confusion matrix.

    Args:
        matrix: Output of :func:`confusion_matrix`.
        labels: Class names, one per row (default: ``0..k-1``).

    Returns:
        One row per class: ``class, precision, recall, f1, support, predicted``.
    """
    matrix = np.asarray(matrix, dtype=np.float64)
    tp = np.diag(matrix)
    support, predicted = matrix.sum(1), matrix.sum(0)
    precision = _ratio(tp, predicted)
    recall = _ratio(tp, support)
    f1 = _ratio(2 * precision * recall, precision + recall)
    names = list(labels) if labels is not None else [str(i) for i in range(len(tp))]
    return pd.DataFrame(
        {
            "class": names,
            "precision": precision,
            "recall": recall,
            "f1": f1,
            "support": support.astype(np.int64),
            "predicted": predicted.astype(np.int64),
        }
    )


def classification_metrics(table: pd.DataFrame) -> dict[str, float]:
    """Accuracy and macro-averaged precision, recall and F1 from a :func:`per_class` table."""
    rows = float(table["support"].sum())
    correct = float((table["recall"] * table["support"]).sum())
    return {
        "rows": rows,
        "accuracy": correct / rows if rows else 0.0,
        "macro_precision": float(table["precision"].mean()),
        "macro_recall": float(table["recall"].mean()),
        "macro_f1": float(table["f1"].mean()),
    }


def mape(pred: np.ndarray, y: np.ndarray, *, min_abs: float = 1.0) -> tuple[float, int]:
    """Mean absolute percentage error over the rows with ``|y| >= min_abs``.

    Args:
        pred: Forecasts.
        y: Targets (may be zero or negative).
        min_abs: Rows with a target closer to zero than this are left out.

    Returns:
        (MAPE in percent, NaN when no row qualifies; the number of rows it was computed on).
    """
    pred, y = np.asarray(pred, dtype=np.float64), np.asarray(y, dtype=np.float64)
    keep = np.abs(y) >= min_abs
    n = int(keep.sum())
    if n == 0:
        return float("nan"), 0
    return float(np.mean(np.abs(pred[keep] - y[keep]) / np.abs(y[keep])) * 100.0), n


def forecast_metrics(pred: np.ndarray, y: np.ndarray, *, mape_min_abs: float) -> dict[str, float]:
    """MAE, RMSE and MAPE (percent, on ``|y| >= mape_min_abs``) of one forecast."""
    err = np.asarray(pred, dtype=np.float64) - np.asarray(y, dtype=np.float64)
    pct, _ = mape(pred, y, min_abs=mape_min_abs)
    return {
        "mae": float(np.mean(np.abs(err))),
        "rmse": float(np.sqrt(np.mean(err**2))),
        "mape": pct,
    }


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    # 0/0 -> 0: an empty class scores 0 rather than vanishing from the macro average.
    return np.divide(num, den, out=np.zeros_like(num, dtype=np.float64), where=den > 0)
