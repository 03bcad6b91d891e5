"""Helpers shared by the stages: counting written outputs and reconciling row accounts."""

from __future__ import annotations

import logging
import os

from pyspark.sql import DataFrame, SparkSession

from deepspark import tracking
from deepspark.config import Config
from deepspark.errors import ReconciliationError, SetupError

log = logging.getLogger("deepspark")


def count_rows(spark: SparkSession, path: str) -> int:
    """Rows in a written Parquet table (answered from footers, no data scan)."""
    return spark.read.parquet(path).count()


def reconcile(table: str, rows_in: int, rows_out: int, rows_quarantined: int) -> None:
    """Fail unless every input row was written clean or quarantined, exactly once."""
    if rows_in != rows_out + rows_quarantined:
        diff = rows_in - rows_out - rows_quarantined
        raise ReconciliationError(
            f"{table}: rows_in={rows_in} != rows_clean={rows_out} + "
            f"rows_quarantined={rows_quarantined} (difference {diff})"
        )
    log.info("%s: %d in -> %d clean + %d quarantined", table, rows_in, rows_out, rows_quarantined)


def log_input(
    spark: SparkSession, name: str, path: str, df: DataFrame, rows: int | None = None
) -> None:
    """Record one stage input as an MLflow dataset: path, digest, rows (counted if not given)."""
    if not tracking.active():
        return
    if rows is None:
        rows = df.count()
    from deepspark.io import FileSystem
    from deepspark.schema import ddl

    digest = FileSystem(spark).fingerprint(path)
    tracking.log_dataset(
        name, path, rows=rows, digest=digest, schema=ddl(df.schema), context="input"
    )


def add_totals(metrics: dict[str, float]) -> None:
    """Add stage totals of the per-table ``<table>.rows_in/rows_out/rows_quarantined`` metrics."""
    for k in ("rows_in", "rows_out", "rows_quarantined"):
        metrics[k] = sum(v for m, v in metrics.items() if m.endswith(f".{k}"))


def pseudonym_key(cfg: Config, columns: list[str]) -> bytes | None:
    """The HMAC key from the configured environment variable, or a one-line refusal.

    Only asked for when some table pseudonymizes columns; the key never enters config, params,
    logs or artifacts.
    """
    if not columns:
        return None
    env = cfg.privacy.key_env
    value = os.environ.get(env, "")
    if len(value.encode()) < cfg.privacy.min_key_bytes:
        found = "unset" if not value else f"only {len(value.encode())} bytes"
        raise SetupError(
            f"pseudonymizing {', '.join(columns)} needs a secret key in ${env} "
            f"(at least {cfg.privacy.min_key_bytes} bytes; it is {found}); e.g. "
            f"export {env}=$(python -c 'import secrets; print(secrets.token_hex(32))')"
        )
    return value.encode()
