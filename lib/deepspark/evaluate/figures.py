"""The evaluation stage's figures: confusion matrix, image grids, forecasts, residuals, heatmaps.

Same conventions as :mod:`deepspark.plots` (Agg backend, one PNG per call, returns the path).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from deepspark.plots import GRID_COLUMNS, figure


def confusion_matrix_plot(
    matrix: np.ndarray, labels: list[str], path: str | Path, title: str
) -> Path:
    """Counts of true (rows) x predicted (columns) classes, each cell annotated.

    Args:
        matrix: ``k x k`` counts, rows = true class.
        labels: Class names, one per row.
        path: Where to write the PNG.
        title: Figure title (say which model and how many rows).

    Returns:
        The written path.
    """
    k = len(labels)
    size = max(4.5, 0.5 * k + 2.5)
    with figure(path, figsize=(size + 1.0, size)) as (fig, ax):
        image = ax.imshow(matrix, cmap="Blues")
        ax.set_xticks(range(k), labels, fontsize=8)
        ax.set_yticks(range(k), labels, fontsize=8)
        top = max(int(matrix.max()), 1)
        for i in range(k):
            for j in range(k):
                v = int(matrix[i, j])
                colour = "white" if v > 0.6 * top else "black"
                ax.text(j, i, f"{v}", ha="center", va="center", fontsize=7, color=colour)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="rows")
        ax.set_title(title, fontsize=11)
    return Path(path)


def image_grid(
    images: np.ndarray,
    captions: list[str],
    path: str | Path,
    title: str,
    attributions: np.ndarray | None = None,
) -> Path:
    """Images in a grid, each captioned; with ``attributions``, each beside its heatmap.

    Args:
        images: ``(n, H, W)`` grey or ``(n, H, W, 3)`` colour, values in [0, 1].
        captions: One short caption per image (e.g. ``true 3 / pred 8``).
        path: Where to write the PNG.
        title: Figure title.
        attributions: ``(n, H, W)`` signed scores drawn over the image (red: towards the
            output, blue: away from it), on a symmetric scale per image.

    Returns:
        The written path.
    """
    n = len(images)
    per = 1 if attributions is None else 2
    ncols = max(1, min(GRID_COLUMNS * 2 // per, n)) * per
    nrows = max(1, math.ceil(n * per / ncols))
    with figure(path, nrows, ncols, figsize=(1.6 * ncols, 1.8 * nrows + 0.7), squeeze=False) as (
        fig,
        axes,
    ):
        for ax in axes.flat:
            ax.set_axis_off()
        if n == 0:
            axes[0, 0].text(0.5, 0.5, "none", ha="center", va="center", fontsize=12)
        for i in range(n):
            ax = axes.flat[i * per]
            ax.imshow(images[i], cmap="gray", vmin=0, vmax=1)
            ax.set_title(captions[i], fontsize=7)
            if attributions is not None:
                heat = axes.flat[i * per + 1]
                limit = float(np.abs(attributions[i]).max()) or 1.0
                grey = images[i] if images[i].ndim == 2 else images[i].mean(-1)
                heat.imshow(grey, cmap="gray", vmin=0, vmax=1)
                heat.imshow(attributions[i], cmap="RdBu_r", vmin=-limit, vmax=limit, alpha=0.7)
                heat.set_title("attribution", fontsize=7)
        fig.suptitle(title, fontsize=11)
    return Path(path)


def forecast_plot(series: pd.DataFrame, path: str | Path, title: str, y_label: str) -> Path:
    """Forecasts against the actual values over time: one line per column but ``time``.

    Args:
        series: ``time`` plus one numeric column per line (``actual`` first), sorted by time.
        path: Where to write the PNG.
        title: Figure title (say which series and model).
        y_label: Y axis label (the target and its unit).

    Returns:
        The written path.
    """
    with figure(path, figsize=(13, 4.5)) as (fig, ax):
        for i, name in enumerate(c for c in series.columns if c != "time"):
            style = {"color": "black", "linewidth": 1.2} if i == 0 else {"linewidth": 0.9}
            ax.plot(series["time"], series[name], label=name, alpha=0.85, **style)
        ax.set_xlabel("time")
        ax.set_ylabel(y_label)
        ax.legend(fontsize=8, loc="upper right")
        ax.set_title(title, fontsize=11)
        ax.grid(alpha=0.3)
        fig.autofmt_xdate()
    return Path(path)


def residual_plot(pred: np.ndarray, residual: np.ndarray, path: str | Path, title: str) -> Path:
    """Residual (actual - forecast) against the forecast, and the residuals' histogram.

    Args:
        pred: Forecasts.
        residual: ``actual - forecast`` per row.
        path: Where to write the PNG.
        title: Figure title.

    Returns:
        The written path.
    """
    with figure(path, 1, 2, figsize=(11, 4.5)) as (fig, (left, right)):
        left.scatter(pred, residual, s=5, alpha=0.35, color="#4878a8", linewidths=0)
        left.axhline(0.0, color="#c44e52", linewidth=1)
        left.set_xlabel("forecast")
        left.set_ylabel("residual (actual - forecast)")
        left.grid(alpha=0.3)
        right.hist(residual, bins=50, color="#4878a8", edgecolor="white", linewidth=0.4)
        right.axvline(0.0, color="#c44e52", linewidth=1)
        right.set_xlabel("residual (actual - forecast)")
        right.set_ylabel("rows")
        fig.suptitle(title, fontsize=11)
    return Path(path)


def matrix_heatmap(
    matrix: np.ndarray,
    row_labels: list[str],
    col_labels: list[str],
    path: str | Path,
    title: str,
    shade_label: str,
) -> Path:
    """A non-negative matrix (e.g. mean |attribution| per time step x input) as a heatmap.

    Args:
        matrix: ``rows x columns`` values.
        row_labels: One label per row.
        col_labels: One label per column.
        path: Where to write the PNG.
        title: Figure title.
        shade_label: Colour bar label (what the values are).

    Returns:
        The written path.
    """
    nrows, ncols = matrix.shape
    with figure(path, figsize=(max(6.0, 0.5 * ncols + 3.0), max(4.0, 0.28 * nrows + 2.0))) as (
        fig,
        ax,
    ):
        image = ax.imshow(matrix, cmap="magma", aspect="auto")
        ax.set_xticks(range(ncols), col_labels, rotation=45, ha="right", fontsize=8)
        ax.set_yticks(range(nrows), row_labels, fontsize=7)
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label=shade_label)
        ax.set_title(title, fontsize=11)
    return Path(path)


def importance_chart(
    values: Mapping[str, tuple[float, float]], path: str | Path, title: str, x_label: str
) -> Path:
    """Horizontal bars, largest on top, each with its spread as an error bar and its value.

    Args:
        values: ``{name: (mean, standard deviation)}``, e.g. the MAE increase per input.
        path: Where to write the PNG.
        title: Figure title.
        x_label: X axis label (what the bars measure, and its unit).

    Returns:
        The written path.
    """
    ranked = sorted(values.items(), key=lambda kv: kv[1][0])
    names = [k for k, _ in ranked]
    means = [v[0] for _, v in ranked]
    spread = [v[1] for _, v in ranked]
    with figure(path, figsize=(8, max(3.0, 0.35 * len(names) + 1.5))) as (fig, ax):
        bars = ax.barh(names, means, xerr=spread, color="#4878a8", edgecolor="white")
        ax.bar_label(bars, labels=[f"{v:.3g}" for v in means], fontsize=7, padding=3)
        ax.axvline(0.0, color="black", linewidth=0.8)
        ax.set_xlabel(x_label)
        ax.tick_params(labelsize=8)
        ax.set_title(title, fontsize=11)
        ax.margins(x=0.15)
    return Path(path)
