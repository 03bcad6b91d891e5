"""The data checks' chart: null fractions against the last run, and drift, per column."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from deepspark.plots.canvas import figure


def checks_chart(rows: pd.DataFrame, drift_limit: float, path: str | Path, title: str) -> Path:
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
