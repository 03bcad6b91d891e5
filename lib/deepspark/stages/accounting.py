"""Row accounting shared by the stages: inputs counted and logged, outputs reconciled."""

from __future__ import annotations

import logging
import time

from pyspark.sql import DataFrame, SparkSession

from deepspark import tracking
from deepspark.errors import ReconciliationError

log = logging.getLogger("deepspark")


def reconcile(table: str, rows_in: int, rows_out: int, rows_quarantined: int) -> None:
    """Fail unless every input row was written clean or quarantined, exactly once."""
    if rows_in != rows_out + rows_quarantined:
        diff = rows_in - rows_out - rows_quarantined
        raise ReconciliationError(
            f"{table}: rows_in={rows_in} != rows_clean={rows_out} + "
            f"rows_quarantined={rows_quarantined} (difference {diff})"
        )
    log.debug("%s: %d in -> %d clean + %d quarantined", table, rows_in, rows_out, rows_quarantined)


def log_input(
    spark: SparkSession, name: str, path: str, df: DataFrame, rows: int | None = None
) -> None:
    """Record one stage input as an MLflow dataset: path, digest, rows (counted if not given)."""
    if not tracking.active():
        return
    if rows is None:
        rows = df.count()
    from deepspark.io import table_digest
    from deepspark.schema import ddl

    digest = table_digest(spark, path)
    tracking.log_dataset(
        name, path, rows=rows, digest=digest, schema=ddl(df.schema), context="input"
    )


def table_metrics(
    table: str, rows_in: int, rows_out: int, rows_quarantined: int, started: float
) -> dict[str, float]:
    """One table's row account and its seconds since ``started`` (``time.perf_counter()``)."""
    return {
        f"{table}.rows_in": rows_in,
        f"{table}.rows_out": rows_out,
        f"{table}.rows_quarantined": rows_quarantined,
        f"{table}.seconds": round(time.perf_counter() - started, 3),
    }


def add_totals(metrics: dict[str, float]) -> None:
    """Add stage totals of the per-table ``<table>.rows_in/rows_out/rows_quarantined`` metrics."""
    for k in ("rows_in", "rows_out", "rows_quarantined"):
        metrics[k] = sum(v for m, v in metrics.items() if m.endswith(f".{k}"))
