"""Ingest: raw CSV/JSON/Parquet -> bronze Parquet, unparseable rows -> quarantine with the raw line.

Sources are read with their declared schema only (never inferred). Files that ship inside a Python
package (``package://...``) are first copied into the raw zone, zips extracted, so every run reads
from the pipeline's own storage.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession

from deepspark.config import Config, SourceConfig, to_plain
from deepspark.errors import InputError
from deepspark.etl.ingest import (
    QUARANTINE_SCHEMA,
)
from deepspark.io import (
    PACKAGE_SCHEME,
    FileSystem,
    deliveries,
    delta,
    resolve_package_uri,
)
from deepspark.layout import Layout
from deepspark.stages import StageResult
from deepspark.stages.accounting import reconcile, table_metrics
from deepspark.stages.sources import no_rows, read_source
from deepspark.stages.writes import TableWrites, commit_metadata, table_writes
from deepspark.tracking import Tracking

log = logging.getLogger(__name__)

STAGE = "ingest"


def run(cfg: Config, spark: SparkSession, tracker: Tracking | None = None) -> StageResult:
    """Ingest every source of the pipeline; all bronze outputs move into place together.

    With Delta tables a run takes only the files each source's file log has not seen, and
    appends them as one numbered batch (io/deliveries.py says when a source is rebuilt instead).
    """
    layout = Layout(cfg.paths, cfg.pipeline.name)
    params = {name: to_plain(src) for name, src in cfg.pipeline.sources.items()}
    incremental = cfg.paths.format == "delta" and cfg.pipeline.incremental
    if cfg.pipeline.incremental and cfg.paths.format != "delta":
        log.info("ingest: paths.format is parquet, so every run is full (incremental needs delta)")
    with table_writes(cfg, spark, tracker, STAGE, params) as w:
        for name, src in cfg.pipeline.sources.items():
            started = time.perf_counter()
            path = land(spark, src, layout.path("raw", name))
            bronze, quarantine = layout.path("bronze", name), layout.quarantine(STAGE, name)
            if cfg.paths.format == "delta":
                todo = deliveries.pending(spark, path, layout.file_log(name), full=not incremental)
                log.info("ingest %s: %s", name, todo.reason)
                if not todo.files and not todo.full:
                    w.metrics.update(table_metrics(name, 0, 0, 0, started))
                    continue
                n_in, n_out, n_bad = _delivery(spark, w, src, name, path, todo, layout)
            else:
                n_in, n_out, n_bad = _ingest(spark, w, src, name, path, bronze, quarantine)
            reconcile(f"ingest {name}", n_in, n_out, n_bad)
            w.metrics.update(table_metrics(name, n_in, n_out, n_bad, started))
            w.outputs[name] = bronze
        return w.finish()


def _ingest(
    spark: SparkSession,
    w: TableWrites,
    src: SourceConfig,
    name: str,
    path: str,
    bronze: str,
    quarantine: str,
    files: list[str] | None = None,
    metadata: str = "",
    *,
    append: bool = False,
) -> tuple[int, int, int]:
    """Parse ``path`` (or just ``files`` under it) into bronze and quarantine; (in, out, bad).

    ``metadata``: the Delta commits' userMetadata; ``append``: add the rows, not replace.
    """
    parsed = read_source(spark, src, path, name, files)
    # The one full parse; the table's statistics are observed on the same write.
    good = w.checks.watch(parsed.good, name, bronze)
    n_out = w.out.write_counted(good, bronze, append=append, metadata=metadata)
    n_in, bad_files = parsed.seen()
    # Only files with an unparseable line are read again, for the quarantine: the lines it
    # keeps are a by-product of the same parse, but holding them on the driver (an observed
    # collect_list) would cost memory without bound on a broken source.
    if bad_files:
        bad = parsed.unparsed(bad_files)
        n_bad = w.out.write_counted(bad, quarantine, append=append, metadata=metadata)
    elif not append or delta.latest_version(quarantine) is None:
        n_bad = w.out.write_empty(quarantine, QUARANTINE_SCHEMA, metadata=metadata)
    else:
        n_bad = 0  # nothing to add: no commit
    if n_in == 0:
        raise InputError(f"{path}: {no_rows(src)}")
    _quality_gate(src, path, n_in, n_bad, lambda: w.out.read(quarantine))
    return n_in, n_out, n_bad


def _delivery(
    spark: SparkSession,
    w: TableWrites,
    src: SourceConfig,
    name: str,
    path: str,
    todo: deliveries.Delivery,
    layout: Layout,
) -> tuple[int, int, int]:
    """One source's delivery into Delta: a rebuild, or the new files appended as one batch.

    The file log is written last, so a failure before it leaves the files to the next run.
    """
    bronze, quarantine = layout.path("bronze", name), layout.quarantine(STAGE, name)
    files = [f.file for f in todo.files]
    # The batch names its files in the commits (deepspark tables shows them); a rebuild, all.
    batch = commit_metadata(
        STAGE, source=name, batch=todo.batch, files=[] if todo.full else files, full=todo.full
    )
    if todo.full:
        counts = _ingest(spark, w, src, name, path, bronze, quarantine, metadata=batch)
    else:
        # A batch a killed run committed but never logged is taken out first, then redone whole.
        for table in (bronze, quarantine):
            deliveries.undo_unlogged(spark, table, name, todo.batch)
        counts = _ingest(spark, w, src, name, path, bronze, quarantine, files, batch, append=True)
    log_df = spark.createDataFrame(
        deliveries.log_rows(todo.files, todo.batch), deliveries.LOG_SCHEMA
    )
    w.out.write(log_df, layout.file_log(name), append=not todo.full)
    return counts


def land(spark: SparkSession, src: SourceConfig, raw_dir: str) -> str:
    """Copy a packaged source into the raw zone (extracting zips); other URIs are read in place."""
    if not src.uri.startswith(PACKAGE_SCHEME):
        return src.uri
    packaged = Path(resolve_package_uri(src.uri))
    fs = FileSystem(spark)
    with tempfile.TemporaryDirectory(prefix="deepspark-land-") as tmp:
        if packaged.suffix == ".zip":
            with zipfile.ZipFile(packaged) as zf:
                zf.extractall(tmp)
        else:
            shutil.copy2(packaged, tmp)
        staging = f"{raw_dir}.__landing"
        fs.delete(staging)
        fs.put(tmp, staging)
        fs.delete(raw_dir)
        fs.rename(staging, raw_dir)
    return raw_dir


def _quality_gate(
    src: SourceConfig, path: str, n_in: int, n_bad: int, quarantine: Callable[[], DataFrame]
) -> None:
    if n_bad <= src.max_quarantine_fraction * n_in:
        return
    first = quarantine().select("reason").first()  # read only when the gate fails
    raise InputError(
        f"{path}: {n_bad} of {n_in} rows do not parse against the declared schema "
        f"(at most {src.max_quarantine_fraction:.1%} allowed); first: {first['reason']}"
    )
