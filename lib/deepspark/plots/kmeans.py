"""The cluster stage's plots: silhouette by k, rows per cluster, the centroids as a heatmap."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.ticker import MaxNLocator

from deepspark.plots.canvas import THOUSANDS, figure


def silhouette_curve(
    scores: Mapping[int, float], chosen: int, path: str | Path, title: str
) -> Path:
    """Silhouette against k, the chosen k circled.

    Args:
        scores: ``{k: silhouette}`` of every k tried.
        chosen: The k that was picked (one of ``scores``).
        path: Where to write the PNG.
        title: Figure title (say which table and how many rows were scored).

    Returns:
        The written path.
    """
    ks = sorted(scores)
    with figure(path, figsize=(7, 4.5)) as (fig, ax):
        ax.plot(ks, [scores[k] for k in ks], marker="o", color="#4878a8", linewidth=1.5)
        ax.scatter(
            [chosen],
            [scores[chosen]],
            s=160,
            facecolors="none",
            edgecolors="#c44e52",
            linewidths=2,
            zorder=3,
            label=f"chosen: k = {chosen} ({scores[chosen]:.3f})",
        )
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("k (clusters)")
        ax.set_ylabel("silhouette")
        ax.legend(fontsize=9)
        ax.set_title(title, fontsize=11)
        ax.grid(alpha=0.3)
    return Path(path)


def bar_chart(
    values: Mapping[str, float], path: str | Path, title: str, x_label: str, y_label: str
) -> Path:
    """One labelled bar per key, in the mapping's order, with each bar's value on top.

    Args:
        values: ``{label: value}``, e.g. rows per cluster.
        path: Where to write the PNG.
        title: Figure title.
        x_label: X axis label.
        y_label: Y axis label.

    Returns:
        The written path.
    """
    labels = [str(k) for k in values]
    heights = [float(v) for v in values.values()]
    with figure(path, figsize=(max(5.0, 0.7 * len(labels) + 2.5), 4.5)) as (fig, ax):
        bars = ax.bar(labels, heights, color="#4878a8", edgecolor="white")
        ax.bar_label(bars, labels=[f"{v:,.0f}" for v in heights], fontsize=8, padding=2)
        ax.yaxis.set_major_formatter(THOUSANDS)
        ax.set_xlabel(x_label)
        ax.set_ylabel(y_label)
        ax.set_title(title, fontsize=11)
        ax.margins(y=0.12)  # room for the labels above the tallest bar
    return Path(path)


def centroid_heatmap(
    values: pd.DataFrame, shade: pd.DataFrame, path: str | Path, title: str, shade_label: str
) -> Path:
    """A row per profile (e.g. cluster), a column per feature: ``values`` written in each cell.

    The cells are coloured by ``shade`` on a diverging scale centred on 0, so features in
    different units compare (e.g. how many standard deviations a cluster's mean sits from the
    overall mean); NaN shades are grey.

    Args:
        values: The numbers to print, index = row labels, columns = features.
        shade: Same shape and labels as ``values``: what sets each cell's colour.
        path: Where to write the PNG.
        title: Figure title.
        shade_label: Colour bar label (what ``shade`` is).

    Returns:
        The written path.
    """
    matrix = shade.to_numpy(dtype="float64")
    finite = np.abs(matrix[np.isfinite(matrix)])
    limit = max(1.0, float(finite.max())) if finite.size else 1.0
    nrows, ncols = values.shape
    with figure(path, figsize=(max(5.0, 0.95 * ncols + 2.5), max(3.0, 0.5 * nrows + 2.0))) as (
        fig,
        ax,
    ):
        image = ax.imshow(
            np.ma.masked_invalid(matrix), cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto"
        )
        ax.set_facecolor("#dddddd")
        ax.set_xticks(range(ncols), [str(c) for c in values.columns], rotation=45, ha="right")
        ax.set_yticks(range(nrows), [str(i) for i in values.index])
        ax.tick_params(labelsize=8)
        for i in range(nrows):
            for j in range(ncols):
                v, s = values.iat[i, j], matrix[i, j]
                colour = "white" if np.isfinite(s) and abs(s) > 0.6 * limit else "black"
                label = "n/a" if pd.isna(v) else f"{v:.3g}"
                ax.text(j, i, label, ha="center", va="center", fontsize=7, color=colour)
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label=shade_label)
        ax.set_title(title, fontsize=11)
    return Path(path)
