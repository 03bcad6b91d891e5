"""Clean: bronze -> silver by the rules declared in the pipeline.

The rules are in the pipeline's ``clean:`` section; every dropped row goes to the
quarantine with its rule and reason, and ``rows_in == rows_clean + rows_quarantined`` is checked
before anything moves into place.
"""

from __future__ import annotations

import logging
import time

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession

from deepspark.config import Config, to_plain
from deepspark.config.pipeline import CleanConfig
from deepspark.errors import InputError
from deepspark.etl.clean import mark_rules, mark_table, merge_marked, rival_rows, split_marked
from deepspark.io import counting, read_table, table_bytes
from deepspark.layout import Layout, table_name
from deepspark.privacy import pseudonym_key
from deepspark.schema import require_columns
from deepspark.stages import StageResult
from deepspark.stages.accounting import log_input, reconcile, table_metrics
from deepspark.stages.writes import (
    TableWrites,
    appended_since,
    built_from,
    inputs_metadata,
    skipped,
    table_writes,
)
from deepspark.tracking import Tracking

log = logging.getLogger(__name__)

STAGE = "clean"
# Bronze tables up to this size are recomputed for each output rather than cached.
SMALL_TABLE_BYTES = 2**20  # compressed Parquet: ~25k flight rows; 1M flights are 15 MB


def run(cfg: Config, spark: SparkSession, tracker: Tracking | None = None) -> StageResult:
    """Clean every table that has rules; all silver outputs move into place together.

    An incremental run on Delta merges what bronze gained since silver was built (one MERGE on
    the dedupe key, one quarantine append); any other change to bronze rebuilds the table.
    """
    layout = Layout(cfg.paths, cfg.pipeline.name)
    specs = cfg.pipeline.clean
    key = pseudonym_key(cfg, [f"{t}.{c}" for t, s in specs.items() for c in s.pseudonymize])
    with table_writes(cfg, spark, tracker, STAGE, to_plain(specs)) as w:
        for table, spec in specs.items():
            started = time.perf_counter()
            bronze = layout.path("bronze", table)
            silver = layout.path("silver", table)
            quarantine = layout.quarantine(STAGE, table)
            inputs = built_from([bronze])
            if skipped(cfg, STAGE, silver, inputs, spec, quarantine):
                continue
            meta = inputs_metadata(STAGE, inputs, spec)
            since = appended_since(cfg, bronze, (silver, quarantine), spec)
            if since is None:
                df = read_table(spark, bronze, allow_empty=True)
                require_columns(df.columns, _mentioned(spec), f"{bronze} (clean rules)")
                large = table_bytes(spark, bronze) > SMALL_TABLE_BYTES
                n_in, n_out, n_bad = _rebuild(w, df, spec, key, table, large, meta)
                if n_in == 0:
                    raise InputError(f"{bronze}: input is empty (0 rows)")
            else:
                df, n_in, n_out, n_bad = _merge(spark, w, bronze, since, spec, key, table, meta)
            reconcile(f"clean {table}", n_in, n_out, n_bad)
            log_input(spark, f"{cfg.pipeline.name}/bronze/{table}", bronze, df, n_in)
            w.metrics.update(table_metrics(table, n_in, n_out, n_bad, started))
            w.outputs[table] = silver
        return w.finish()


def _rebuild(
    w: TableWrites,
    df: DataFrame,
    spec: CleanConfig,
    key: bytes | None,
    table: str,
    large: bool,
    meta: str,
) -> tuple[int, int, int]:
    """The whole of bronze ``df`` through the rules into silver and the quarantine."""
    layout = w.checks.layout
    silver, quarantine = layout.path("silver", table), layout.quarantine(STAGE, table)
    final = mark_table(df, spec, key=key)
    # A large table is persisted after the rules and the dedupe window, so both outputs come
    # from one pass; a small one is cheaper to recompute for each output than to cache.
    # DISK_ONLY streams each partition to local disk as it is computed; memory levels unroll a
    # whole partition on the heap first, which ran a 2g driver out of memory on the 10M-row
    # benchmark.
    if large:
        final = final.persist(StorageLevel.DISK_ONLY)
    try:
        # Above the cache, so the count is of every marked row, taken by the first write.
        observed, rows_in = counting(final)
        clean, bad = split_marked(observed, spec, source=table)
        watched = w.checks.watch(clean, table, silver, layout.path("bronze", table))
        n_out = w.out.write_counted(watched, silver, metadata=meta)
        n_bad = w.out.write_counted(bad, quarantine, metadata=meta)
    finally:
        if large:
            final.unpersist()
    return rows_in(), n_out, n_bad  # every row of the marked table, seen once


def _merge(
    spark: SparkSession,
    w: TableWrites,
    bronze: str,
    since: tuple[int, list[str]],
    spec: CleanConfig,
    key: bytes | None,
    table: str,
    meta: str,
) -> tuple[DataFrame, int, int, int]:
    """Bronze's new rows merged into silver; (the new rows, in, inserted, quarantined).

    A run stopped between the MERGE and the quarantine's append leaves the two tables built
    from different bronze versions, which the next run sees and answers with a rebuild.
    """
    layout = w.checks.layout
    silver, quarantine = layout.path("silver", table), layout.quarantine(STAGE, table)
    version, files = since
    old = spark.read.format("delta").option("versionAsOf", version).load(bronze)
    require_columns(old.columns, _mentioned(spec), f"{bronze} (clean rules)")
    # Appends add files and remove none: the new rows are exactly those files'.
    df = spark.read.schema(old.schema).parquet(*files) if files else old.limit(0)
    n_in = df.count()  # from the footers
    log.info("clean %s: merging %d new rows of %s v%d..", table, n_in, table_name(bronze), version)
    if not spec.dedupe:  # no key to merge on: every clean row is new
        clean, bad = split_marked(mark_rules(df, spec, key=key), spec, source=table)
        watched = w.checks.watch(clean, table, silver, bronze)
        n_out = w.out.write_counted(watched, silver, append=True, metadata=meta)
        n_bad = w.out.write_counted(bad, quarantine, append=True, metadata=meta)
        return df, n_in, n_out, n_bad
    new = mark_rules(df, spec, key=key)
    # The earlier rows of the delivery's keys: read twice below (with and without the
    # delivery), and few next to bronze, so cached rather than found twice.
    rivals = rival_rows(mark_rules(old, spec, key=key), new, spec).persist()
    try:
        upserts, bad = merge_marked(rivals, new, spec, source=table)
        upserts = upserts.persist()
        try:
            # The checks observe the delivery's clean rows; MERGE may read its source more than
            # once, so the observation gets a pass of its own over the cached rows.
            w.checks.watch(upserts, table, silver, bronze).write.format("noop").mode(
                "overwrite"
            ).save()
            n_out = w.out.merge(upserts, silver, spec.dedupe, meta)
        finally:
            upserts.unpersist()
        n_bad = w.out.write_counted(bad, quarantine, append=True, metadata=meta)
    finally:
        rivals.unpersist()
    return df, n_in, n_out, n_bad


def _mentioned(spec: CleanConfig) -> list[str]:
    return list(
        dict.fromkeys(
            [
                *spec.dedupe,
                *spec.required,
                *spec.fill,
                *spec.ranges,
                *spec.pseudonymize,
                *(
                    c
                    for r in spec.timestamps.values()
                    for c in ([r.column] if r.column else r.fields)
                ),
            ]
        )
    )
