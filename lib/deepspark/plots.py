"""PNG plots of small, already-aggregated data (pandas frames collected from Spark).

Nothing here touches Spark: the statistics behind every plot are computed natively on the full
table by :mod:`deepspark.etl.profile`; these functions only draw them. The non-interactive Agg
backend is selected before pyplot is imported, so plotting works on headless drivers.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402 - must follow the backend choice
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import FuncFormatter, MaxNLocator  # noqa: E402

GRID_COLUMNS = 4
MAX_LABELLED_BARS = 12  # up to this many integer bars, each gets its own tick
DPI = 110
MIN_PAIRS = 3  # two points always lie on a line: r = +-1 says nothing
_THOUSANDS = FuncFormatter(lambda v, _: f"{v:,.0f}")


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
            ax.yaxis.set_major_formatter(_THOUSANDS)
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


def save_figure(fig: plt.Figure, path: str | Path) -> Path:
    """Write ``fig`` as a PNG at ``path`` (folders created); the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI)
    return path


@contextmanager
def figure(path: str | Path, *args: Any, **kwargs: Any) -> Iterator[tuple[plt.Figure, Any]]:
    """``plt.subplots(*args, **kwargs)``; on a clean exit, laid out and saved to ``path``.

    The figure is closed either way: pyplot keeps every open figure alive, and a long job that
    draws hundreds of them would otherwise hold them all.
    """
    fig, axes = plt.subplots(*args, **kwargs)
    try:
        yield fig, axes
        fig.tight_layout()
        save_figure(fig, path)
    finally:
        plt.close(fig)


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
        ax.yaxis.set_major_formatter(_THOUSANDS)
        ax.set_xlabel(x_label)
        ax.set_ylabel(y_label)
        ax.set_title(title, fontsize=11)
        ax.margins(y=0.12)  # room for the labels above the tallest bar
    return Path(path)


def profile_heatmap(
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


def validation_chart(rows: pd.DataFrame, drift_limit: float, path: str | Path, title: str) -> Path:
    """Null fraction (now and last run) and KS drift per column: one horizontal bar per column.

    Args:
        rows: ``label, nulls, nulls_before, drift`` (``nulls_before`` and ``drift`` may be NaN:
            no last run).
        drift_limit: The drift threshold, drawn as a line.
        path: Where to write the PNG.
        title: Figure title.
    """
    y = np.arange(len(rows))[::-1]
    height = max(3.0, 0.22 * len(rows) + 1.5)
    with figure(path, 1, 2, figsize=(11, height), sharey=True) as (fig, (left, right)):
        left.barh(y, rows["nulls"], color="#4878a8", label="this run")
        left.scatter(rows["nulls_before"], y, marker="|", s=120, color="black", label="last run")
        left.set_xlim(0, 1)
        left.set_xlabel("null fraction")
        left.set_yticks(y, rows["label"], fontsize=7)
        left.legend(fontsize=8, loc="lower right")
        over = rows["drift"].fillna(0) > drift_limit
        right.barh(y, rows["drift"].fillna(0), color=np.where(over, "#c44e52", "#55a868"))
        right.axvline(drift_limit, color="black", linestyle="--", linewidth=1)
        right.set_xlim(0, 1)
        right.set_xlabel(f"KS distance to the last run (limit {drift_limit:g}; red: over)")
        fig.suptitle(title, fontsize=11)
    return Path(path)
