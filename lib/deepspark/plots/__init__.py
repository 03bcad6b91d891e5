"""PNG plots of small, already-aggregated data (pandas frames collected from Spark).

Nothing here touches Spark: the statistics behind every plot are computed natively on the full
table by :mod:`deepspark.etl.profile`; these functions only draw them. The non-interactive Agg
backend is selected before pyplot is imported, so plotting works on headless drivers.

The modules: canvas.py (the Agg backend, :func:`figure`: every plot's conventions), profile.py,
kmeans.py and checks.py (each stage's plots); every name is importable from
``deepspark.plots``, as before they were split.
"""

from __future__ import annotations

from deepspark.plots.canvas import DPI, GRID_COLUMNS, figure, save_figure
from deepspark.plots.checks import checks_chart
from deepspark.plots.kmeans import bar_chart, centroid_heatmap, silhouette_curve
from deepspark.plots.profile import (
    MAX_LABELLED_BARS,
    MIN_PAIRS,
    correlation_heatmap,
    histogram_grid,
    line_plot,
)

__all__ = [
    "DPI",
    "GRID_COLUMNS",
    "MAX_LABELLED_BARS",
    "MIN_PAIRS",
    "bar_chart",
    "correlation_heatmap",
    "figure",
    "histogram_grid",
    "line_plot",
    "centroid_heatmap",
    "save_figure",
    "silhouette_curve",
    "checks_chart",
]
