"""A classifier on the test images: metrics, per-class table, confusion matrix, failures, IG."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from deepspark.config.evaluate import EvaluateConfig
from deepspark.evaluate import figures
from deepspark.evaluate.attribution import completeness_error, integrated_gradients
from deepspark.evaluate.inference import predict, to_images
from deepspark.evaluate.metrics import classification_metrics, confusion_matrix, per_class

MAX_MISCLASSIFIED = 64  # more than this in one grid is unreadable; the count is a metric


def evaluate_classifier(
    model: torch.nn.Module,
    x: np.ndarray,
    y: np.ndarray,
    *,
    x_shape: tuple[int, ...],
    classes: list,
    cfg: EvaluateConfig,
    out: Path,
    title: str,
) -> dict[str, float]:
    """Score ``model`` on test rows and write its tables and plots into ``out``.

    Writes ``per_class.csv``/``.json``, ``confusion_matrix.png``, ``misclassified.png`` (up to
    :data:`MAX_MISCLASSIFIED`, in test order) and ``integrated_gradients.png`` (``cfg.samples``
    seeded test images beside their attribution to the predicted class).

    Args:
        model: Maps flat rows to class scores.
        x: Flat test images.
        y: Class indices.
        x_shape: ``(C, H, W)`` of one image.
        classes: The class labels, by index.
        cfg: Sample counts, IG steps, seed.
        out: Folder for the files.
        title: Names the model in plot titles (e.g. ``digits v3``).

    Returns:
        ``rows, accuracy, macro_*, misclassified``, ``precision.<c>``/``recall.<c>``/``f1.<c>``
        per class, and ``ig.completeness_error``.
    """
    y = np.asarray(y, dtype=np.int64)
    scores = predict(model, x)
    if scores.ndim != 2 or scores.shape[1] != len(classes):
        raise ValueError(
            f"model output: expected (rows, {len(classes)}) class scores, found {scores.shape}"
        )
    pred = scores.argmax(1)
    labels = [str(c) for c in classes]
    matrix = confusion_matrix(y, pred, len(classes))
    table = per_class(matrix, labels)
    metrics = _class_metrics(table, wrong=int((pred != y).sum()))

    out.mkdir(parents=True, exist_ok=True)
    _write_tables(table, metrics, out)
    figures.confusion_matrix_plot(
        matrix, labels, out / "confusion_matrix.png",
        f"{title}: confusion matrix, {len(y):,} test rows (accuracy {metrics['accuracy']:.2%})",
    )  # fmt: skip
    _misclassified(x, y, scores, labels, x_shape=x_shape, out=out, title=title)
    metrics["ig.completeness_error"] = _attribution(
        model, x, y, pred, labels, x_shape=x_shape, cfg=cfg, out=out, title=title
    )
    return metrics


def _class_metrics(table: pd.DataFrame, *, wrong: int) -> dict[str, float]:
    """The summary metrics, ``misclassified``, then precision, recall and F1 of each class."""
    metrics = classification_metrics(table)
    metrics["misclassified"] = float(wrong)
    for row in table.itertuples():
        for name in ("precision", "recall", "f1"):
            metrics[f"{name}.{row[1]}"] = float(getattr(row, name))
    return metrics


def _write_tables(table: pd.DataFrame, metrics: dict[str, float], out: Path) -> None:
    """``per_class.csv``, and ``per_class.json`` with the headline metrics beside the classes."""
    table.to_csv(out / "per_class.csv", index=False)
    summary = {k: metrics[k] for k in ("rows", "accuracy", "macro_f1", "misclassified")}
    (out / "per_class.json").write_text(
        json.dumps({**summary, "classes": table.to_dict("records")}, indent=2)
    )


def _misclassified(
    x: np.ndarray,
    y: np.ndarray,
    scores: np.ndarray,
    labels: list[str],
    *,
    x_shape: tuple[int, ...],
    out: Path,
    title: str,
) -> None:
    """``misclassified.png``: the first :data:`MAX_MISCLASSIFIED` wrong rows, in test order."""
    pred = scores.argmax(1)
    wrong = np.flatnonzero(pred != y)
    probs = _softmax(scores)
    shown = wrong[:MAX_MISCLASSIFIED]
    captions = [f"true {labels[y[i]]} / pred {labels[pred[i]]} ({probs[i, pred[i]]:.2f})"
                for i in shown]  # fmt: skip
    figures.image_grid(
        to_images(x[shown], x_shape), captions, out / "misclassified.png",
        f"{title}: misclassified test images ({len(shown)} of {len(wrong)} shown)",
    )  # fmt: skip


def _attribution(
    model: torch.nn.Module,
    x: np.ndarray,
    y: np.ndarray,
    pred: np.ndarray,
    labels: list[str],
    *,
    x_shape: tuple[int, ...],
    cfg: EvaluateConfig,
    out: Path,
    title: str,
) -> float:
    """``integrated_gradients.png`` on seeded test images; returns the IG completeness error."""
    rng = np.random.default_rng(cfg.seed)
    picked = np.sort(rng.choice(len(x), size=min(cfg.samples, len(x)), replace=False))
    attr, delta = integrated_gradients(model, x[picked], steps=cfg.ig_steps, target=pred[picked])
    # One heatmap per image: the channels' attributions summed, as they act on the same pixel.
    heat = attr.reshape(len(picked), *x_shape).sum(1)
    captions = [f"true {labels[y[i]]} / pred {labels[pred[i]]}" for i in picked]
    figures.image_grid(
        to_images(x[picked], x_shape), captions, out / "integrated_gradients.png",
        f"{title}: integrated gradients for the predicted class ({cfg.ig_steps} steps, "
        "zero baseline)",
        attributions=heat,
    )  # fmt: skip
    return completeness_error(attr, delta)


def _softmax(scores: np.ndarray) -> np.ndarray:
    z = np.exp(scores - scores.max(1, keepdims=True))
    return z / z.sum(1, keepdims=True)
