"""Expectations and anomalies: a table's statistics checked against the config and the last run.

Floor 1, pure Python. :mod:`~deepspark.checks.stats` holds what a stage observed (stored
beside each output as ``_stats.json``, the next run's reference);
:mod:`~deepspark.checks.rules` checks what the config asserts (:func:`expectations`),
compares with that reference (:func:`anomalies`) and with the training split (:func:`skew`).
"""

from deepspark.checks.rules import (
    anomalies,
    expectations,
    ks_distance,
    missing_units,
    skew,
    total_variation,
)
from deepspark.checks.stats import STATS_FILE, ColumnStats, Finding, TableStats

__all__ = [
    "STATS_FILE",
    "ColumnStats",
    "Finding",
    "TableStats",
    "anomalies",
    "expectations",
    "ks_distance",
    "missing_units",
    "skew",
    "total_variation",
]
