"""The figure conventions every plot follows: the Agg backend, one PNG per call, closed after.

The non-interactive Agg backend is selected before pyplot is imported, so plotting works on
headless drivers; every other plotting module draws through :func:`figure`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402 - must follow the backend choice
from matplotlib.ticker import FuncFormatter  # noqa: E402

GRID_COLUMNS = 4  # plots per row of a grid of small plots
DPI = 110
THOUSANDS = FuncFormatter(lambda v, _: f"{v:,.0f}")  # an axis of row counts: 12,345


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
