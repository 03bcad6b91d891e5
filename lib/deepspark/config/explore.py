"""The sections of the stages that look at the data: profile (statistics, plots) and kmeans."""

from __future__ import annotations

import re
from dataclasses import dataclass

from deepspark.config.runtime import LAYERS


@dataclass(frozen=True)
class LinePlot:
    """A line per ``by`` group of mean(``y``) against ``x`` (Spark SQL expressions)."""

    table: str  # layer/table to plot
    x: str  # Spark SQL expression on the x axis
    y: str  # Spark SQL expression, averaged per x
    by: str | None = None  # Spark SQL expression: one line per value; null: a single line
    title: str = ""  # plot title


@dataclass(frozen=True)
class ProfileConfig:
    """Which outputs to profile (``layer/table``), and the plot budget."""

    # layer/table outputs to profile: statistics, histograms, correlations.
    tables: tuple[str, ...] = ()
    sample_rows: int = 50_000  # rows in the seeded sample for the correlation heatmap, at most
    histogram_bins: int = 30  # bins per histogram
    max_histograms: int = 12  # numeric columns that get a histogram, at most
    lines: tuple[LinePlot, ...] = ()

    def __post_init__(self) -> None:
        for t in (*self.tables, *(p.table for p in self.lines)):
            layer, sep, name = t.partition("/")
            if not sep or layer not in LAYERS or not name:
                raise ValueError(f"table {t!r}: expected 'layer/table' with a layer in {LAYERS}")


@dataclass(frozen=True)
class KMeansConfig:
    """K-means over one table's numeric ``features``, k chosen by silhouette.

    Every k in ``[k_min, k_max]`` is fitted (on a seeded sample of about ``sample_rows`` rows when
    set) and the k with the highest silhouette wins; it is then fitted on every row with all
    features present. The input table is written to ``gold/<output>`` with an int ``cluster``
    column, null on the rows a feature was missing from (those are counted, never dropped).
    """

    table: str  # layer/table to cluster
    features: tuple[str, ...]  # numeric columns the clusters are found in
    output: str  # gold table written: the input plus a cluster column
    k_min: int = 2  # smallest k tried (at least 2)
    k_max: int = 8  # largest k tried
    seed: int = 13  # seed of the k-means fits and of the search sample
    # Rows in the seeded sample the k search runs on; null: every row.
    sample_rows: int | None = None
    standardize: bool = True  # z-score every feature first, so a column's units do not weigh

    def __post_init__(self) -> None:
        layer, sep, name = self.table.partition("/")
        if not sep or layer not in LAYERS or not name:
            raise ValueError(
                f"table {self.table!r}: expected 'layer/table' with a layer in {LAYERS}"
            )
        if not self.features:
            raise ValueError("features: at least one column is required")
        twice = sorted({f for f in self.features if self.features.count(f) > 1})
        if twice:
            raise ValueError(f"features: listed more than once: {', '.join(twice)}")
        if self.k_min < 2:
            raise ValueError(
                f"k_min: expected at least 2 (a silhouette needs two clusters), found {self.k_min}"
            )
        if self.k_max < self.k_min:
            raise ValueError(f"k_max: expected at least k_min={self.k_min}, found {self.k_max}")
        if self.sample_rows is not None and self.sample_rows <= self.k_max:
            raise ValueError(
                f"sample_rows: expected more rows than k_max={self.k_max}, found {self.sample_rows}"
            )
        if not re.fullmatch(r"[a-z][a-z0-9_]*", self.output):
            raise ValueError(f"output {self.output!r}: expected a lower_snake_case table name")
        if self.table == f"gold/{self.output}":
            raise ValueError(
                f"output {self.output!r}: would overwrite the input table {self.table}"
            )
