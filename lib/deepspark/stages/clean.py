"""Clean: bronze -> silver by the rules declared in the pipeline.

The rules are in the pipeline's ``clean:`` section; every dropped row goes to the
quarantine with its rule and reason, and ``rows_in == rows_clean + rows_quarantined`` is checked
before anything moves into place.
"""

from __future__ import annotations

import time

from pyspark import StorageLevel
from pyspark.sql import SparkSession

from deepspark.config import Config, to_plain
from deepspark.config.pipeline import CleanConfig
from deepspark.errors import InputError
from deepspark.etl.clean import mark_table, split_marked
from deepspark.io import counting, read_table, table_bytes
from deepspark.layout import Layout
from deepspark.privacy import pseudonym_key
from deepspark.schema import require_columns
from deepspark.stages import StageResult
from deepspark.stages.accounting import log_input, reconcile, table_metrics
from deepspark.stages.writes import built_from, inputs_metadata, skipped, table_writes
from deepspark.tracking import Tracking

STAGE = "clean"
# Bronze tables up to this size are recomputed for each output rather than cached.
SMALL_TABLE_BYTES = 2**20  # compressed Parquet: ~25k flight rows; 1M flights are 15 MB


def run(cfg: Config, spark: SparkSession, tracker: Tracking | None = None) -> StageResult:
    """Clean every table that has rules; all silver outputs move into place together."""
    layout = Layout(cfg.paths, cfg.pipeline.name)
    specs = cfg.pipeline.clean
    key = pseudonym_key(cfg, [f"{t}.{c}" for t, s in specs.items() for c in s.pseudonymize])
    with table_writes(cfg, spark, tracker, STAGE, to_plain(specs)) as w:
        for table, spec in specs.items():
            started = time.perf_counter()
            bronze = layout.path("bronze", table)
            silver = layout.path("silver", table)
            inputs = built_from([bronze])
            if skipped(cfg, STAGE, silver, inputs, spec):
                continue
            df = read_table(spark, bronze, allow_empty=True)
            require_columns(df.columns, dict.fromkeys(_mentioned(spec)), f"{bronze} (clean rules)")
            quarantine = layout.quarantine(STAGE, table)
            final = mark_table(df, spec, key=key)
            # A large table is persisted after the rules and the dedupe window, so both outputs
            # come from one pass; a small one is cheaper to recompute for each output than to
            # cache. DISK_ONLY streams each partition to local disk as it is computed; memory
            # levels unroll a whole partition on the heap first, which ran a 2g driver out of
            # memory on the 10M-row benchmark.
            large = table_bytes(spark, bronze) > SMALL_TABLE_BYTES
            if large:
                final = final.persist(StorageLevel.DISK_ONLY)
            try:
                # Above the cache, so the count is of every marked row, taken by the first write.
                observed, rows_in = counting(final)
                clean, bad = split_marked(observed, spec, source=table)
                meta = inputs_metadata(STAGE, inputs, spec)
                watched = w.checks.watch(clean, table, silver, bronze)
                n_out = w.out.write_counted(watched, silver, metadata=meta)
                n_bad = w.out.write_counted(bad, quarantine, metadata=meta)
            finally:
                if large:
                    final.unpersist()
            n_in = rows_in()  # every row of the marked table, seen once
            if n_in == 0:
                raise InputError(f"{bronze}: input is empty (0 rows)")
            reconcile(f"clean {table}", n_in, n_out, n_bad)
            log_input(spark, f"{cfg.pipeline.name}/bronze/{table}", bronze, df, n_in)
            w.metrics.update(table_metrics(table, n_in, n_out, n_bad, started))
            w.outputs[table] = silver
        return w.finish()


def _mentioned(spec: CleanConfig) -> list[str]:
    return [
        *spec.dedupe,
        *spec.required,
        *spec.fill,
        *spec.ranges,
        *spec.pseudonymize,
        *(c for r in spec.timestamps.values() for c in ([r.column] if r.column else r.fields)),
    ]
