"""The profile stage's plots: histograms, a correlation heatmap, lines of a mean against x."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.ticker import MaxNLocator

from deepspark.plots.canvas import GRID_COLUMNS, THOUSANDS, figure

MAX_LABELLED_BARS = 12  # up to this many integer bars, each gets its own tick
MIN_PAIRS = 3  # two points always lie on a line: r = +-1 says nothing


def histogram_grid(hists: Mapping[str, pd.DataFrame], path: str | Path, title: str) -> Path:
    """One bar chart per column, laid out in a grid.

    Args:
        hists: ``{column: frame with lo, hi, count}``, one row per bin.
        path: Where to write the PNG.
        title: Figure title (say which table and how many rows).

    Returns:
        The written path.
    """
    n = len(hists)
    ncols = min(GRID_COLUMNS, max(n, 1))
    nrows = max(math.ceil(n / ncols), 1)
    with figure(path, nrows, ncols, figsize=(4.2 * ncols, 3.2 * nrows + 0.6), squeeze=False) as (
        fig,
        axes,
    ):
        for ax, (name, h) in zip(axes.flat, hists.items(), strict=False):
            ax.bar(
                h["lo"],
                h["count"],
                width=h["hi"] - h["lo"],
                align="edge",
                color="#4878a8",
                edgecolor="white",
                linewidth=0.4,
            )
            ax.set_title(name, fontsize=10)
            if _integer_bins(h):  # bars span whole numbers: tick whole numbers only
                if len(h) <= MAX_LABELLED_BARS and ((h["hi"] - h["lo"]) == 1).all():
                    centres = (h["lo"] + h["hi"]) / 2
                    ax.set_xticks(centres, [f"{c:.0f}" for c in centres])
                else:
                    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.yaxis.set_major_formatter(THOUSANDS)
            ax.tick_params(labelsize=8)
        for ax in axes.flat[n:]:
            ax.set_visible(False)
        for ax in axes[:, 0]:
            ax.set_ylabel("rows")
        fig.suptitle(title, fontsize=12)
    return Path(path)


def correlation_heatmap(sample: pd.DataFrame, path: str | Path, title: str) -> Path:
    """Annotated Pearson correlation matrix of the columns of ``sample``.

    ``r`` is pairwise-complete (each pair uses the rows where both values are present); a pair
    with fewer than :data:`MIN_PAIRS` such rows, or a constant column, is shown as n/a.

    Args:
        sample: Numeric columns only, e.g. a bounded sample collected from Spark.
        path: Where to write the PNG.
        title: Figure title; say which rows ``sample`` holds and how many.

    Returns:
        The written path.
    """
    columns = [str(c) for c in sample.columns]
    matrix = sample.astype("float64").corr(method="pearson", min_periods=MIN_PAIRS).to_numpy()
    k = len(columns)
    size = max(4.5, 0.55 * k + 2.5)
    with figure(path, figsize=(size + 1.2, size)) as (fig, ax):
        image = ax.imshow(np.ma.masked_invalid(matrix), cmap="RdBu_r", vmin=-1, vmax=1)
        ax.set_facecolor("#dddddd")
        ax.set_xticks(range(k), columns, rotation=45, ha="right", fontsize=8)
        ax.set_yticks(range(k), columns, fontsize=8)
        for i in range(k):
            for j in range(k):
                v = matrix[i, j]
                label, colour = ("n/a", "#555555") if np.isnan(v) else (f"{v:.2f}", None)
                colour = colour or ("white" if abs(v) > 0.6 else "black")
                ax.text(j, i, label, ha="center", va="center", fontsize=7, color=colour)
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="Pearson r")
        ax.set_title(title, fontsize=11)
    return Path(path)


def line_plot(
    series: pd.DataFrame,
    path: str | Path,
    title: str,
    x_label: str,
    y_label: str,
    legend_title: str | None = None,
) -> Path:
    """One line per ``by`` group of ``y_mean`` against ``x``.

    Args:
        series: Frame with ``by, x, y_mean`` sorted by ``x`` (``by`` all null for one line).
        path: Where to write the PNG.
        title: Figure title.
        x_label: X axis label.
        y_label: Y axis label.
        legend_title: Title of the legend (what ``by`` is), shown when there are groups.

    Returns:
        The written path.
    """
    with figure(path, figsize=(9, 5)) as (fig, ax):
        for key, g in series.groupby("by", dropna=False, sort=True):
            label = "(null)" if pd.isna(key) else str(key)
            ax.plot(g["x"], g["y_mean"], marker="o", markersize=3, linewidth=1.5, label=label)
        if series["by"].notna().any():
            ax.legend(title=legend_title, fontsize=8)
        if pd.api.types.is_integer_dtype(series["x"]):  # hours, days: no 7.5 ticks
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel(x_label)
        ax.set_ylabel(y_label)
        ax.set_title(title, fontsize=11)
        ax.grid(alpha=0.3)
    return Path(path)


def _integer_bins(h: pd.DataFrame) -> bool:
    width = (h["hi"] - h["lo"]).to_numpy()
    offset = (h["lo"] + 0.5).to_numpy()
    whole = np.allclose(width, np.round(width)) and np.allclose(offset % 1, 0)
    return len(h) > 0 and bool(whole)
