"""Ingest: raw CSV/JSON/Parquet -> bronze Parquet, unparseable rows -> quarantine with the raw line.

Sources are read with their declared schema only (never inferred). Files that ship inside a Python
package (``package://...``) are first copied into the raw zone, zips extracted, so every run reads
from the pipeline's own storage.
"""

from __future__ import annotations

import shutil
import tempfile
import zipfile
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession

from deepspark import tracking
from deepspark.config import Config, SourceConfig, spark_value, to_plain
from deepspark.errors import InputError
from deepspark.etl.ingest import (
    CORRUPT,
    assemble_arrays,
    parsed_rows,
    unparsed_rows,
    with_corrupt_column,
)
from deepspark.etl.quality import QUARANTINE_SCHEMA
from deepspark.io import (
    PACKAGE_SCHEME,
    FileSystem,
    Layout,
    read_parquet,
    resolve_package_uri,
    spark_errors_as_input_errors,
    staged_outputs,
)
from deepspark.schema import require_columns, struct_from_config
from deepspark.stages import StageResult
from deepspark.stages._common import add_totals, count_rows, reconcile

STAGE = "ingest"


def run(cfg: Config, spark: SparkSession) -> StageResult:
    """Ingest every source of the pipeline; all bronze outputs move into place together."""
    layout = Layout(cfg.paths, cfg.pipeline.name)
    params = {name: to_plain(src) for name, src in cfg.pipeline.sources.items()}
    metrics: dict[str, float] = {}
    outputs: dict[str, str] = {}
    with tracking.stage_run(cfg, STAGE, params), staged_outputs(spark) as out:
        for name, src in cfg.pipeline.sources.items():
            path = land(spark, src, layout.path("raw", name))
            good, bad = read_source(spark, src, path, name)
            bronze, quarantine = layout.path("bronze", name), layout.quarantine(STAGE, name)
            out.write(good, bronze)
            out.write(bad, quarantine)
            n_out = count_rows(spark, out.staged(bronze))
            n_bad = count_rows(spark, out.staged(quarantine))
            n_in = n_out + n_bad  # each raw record is parsed exactly once, into one of the two
            if n_in == 0:
                raise InputError(f"{path}: input is empty (0 rows)")
            _quality_gate(spark, src, path, n_in, n_bad, out.staged(quarantine))
            reconcile(f"ingest {name}", n_in, n_out, n_bad)
            metrics.update(
                {
                    f"{name}.rows_in": n_in,
                    f"{name}.rows_out": n_out,
                    f"{name}.rows_quarantined": n_bad,
                }
            )
            outputs[name] = bronze
        out.commit()
        add_totals(metrics)
        tracking.log_metrics(metrics)
    return StageResult(STAGE, metrics, outputs)


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


def read_source(
    spark: SparkSession, src: SourceConfig, path: str, name: str
) -> tuple[DataFrame, DataFrame]:
    """Read one source against its schema: ``(parsed rows, quarantined raw rows)``."""
    schema = struct_from_config(src.schema)
    fs = FileSystem(spark)
    if not fs.exists(path):
        raise InputError(f"{path}: input path does not exist (source {name!r})")
    if not fs.data_files(path):
        raise InputError(f"{path}: input is empty (no data files; source {name!r})")
    if src.format == "parquet":
        df = read_parquet(spark, path, expected=schema).select(*schema.fieldNames())
        empty = spark.createDataFrame([], QUARANTINE_SCHEMA)
        return assemble_arrays(df, src.arrays), empty
    options = {k: spark_value(v) for k, v in src.options.items()}
    if src.format == "csv" and options.get("header") == "true":
        _check_header(spark, path, options, schema.fieldNames())
    with spark_errors_as_input_errors(path):
        raw = (
            spark.read.schema(with_corrupt_column(schema))
            .options(**options)
            .option("mode", "PERMISSIVE")
            .option("columnNameOfCorruptRecord", CORRUPT)
            .format(src.format)
            .load(path)
        )
    good = assemble_arrays(parsed_rows(raw), src.arrays)
    bad = unparsed_rows(
        raw,
        schema,
        source=name,
        fmt=src.format,
        sep=options.get("sep", ","),
        null_value=options.get("nullValue", ""),
    )
    return good, bad


def _check_header(spark: SparkSession, path: str, options: dict, expected: list[str]) -> None:
    # Spark maps CSV columns by position; a renamed or reordered column must fail here, loudly,
    # not shift every value into the wrong field.
    with spark_errors_as_input_errors(path):
        found = spark.read.options(**options).csv(path).columns
    require_columns(found, expected, f"{path} (CSV header)")
    if found != expected:
        raise InputError(
            f"{path} (CSV header): columns are {', '.join(found)}; expected, in this order: "
            f"{', '.join(expected)}"
        )


def _quality_gate(
    spark: SparkSession, src: SourceConfig, path: str, n_in: int, n_bad: int, quarantine: str
) -> None:
    if n_bad <= src.max_quarantine_fraction * n_in:
        return
    first = spark.read.parquet(quarantine).select("reason").first()
    raise InputError(
        f"{path}: {n_bad} of {n_in} rows do not parse against the declared schema "
        f"(at most {src.max_quarantine_fraction:.1%} allowed); first: {first['reason']}"
    )
