"""Ingest: raw CSV/JSON/Parquet -> bronze Parquet, unparseable rows -> quarantine with the raw line.

Sources are read with their declared schema only (never inferred). Files that ship inside a Python
package (``package://...``) are first copied into the raw zone, zips extracted, so every run reads
from the pipeline's own storage.
"""

from __future__ import annotations

import csv
import shutil
import tempfile
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pyspark.sql import DataFrame, Observation, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from deepspark.config import Config, SourceConfig, spark_value, to_plain
from deepspark.errors import InputError
from deepspark.etl.ingest import (
    CORRUPT,
    LATIN1,
    QUARANTINE_SCHEMA,
    UNDECODABLE,
    assemble_arrays,
    from_latin1,
    parsed_rows,
    unparsed_rows,
    with_corrupt_column,
    with_undecodable,
)
from deepspark.io import (
    PACKAGE_SCHEME,
    FileSystem,
    counting,
    read_parquet,
    resolve_package_uri,
    spark_errors_as_input_errors,
)
from deepspark.layout import Layout
from deepspark.schema import require_columns, struct_from_config
from deepspark.stages import StageResult
from deepspark.stages.accounting import reconcile, table_metrics
from deepspark.stages.writes import table_writes
from deepspark.tracking import Tracking

STAGE = "ingest"
_FILE = "__file"  # the file of an unparseable record, observed and dropped


def run(cfg: Config, spark: SparkSession, tracker: Tracking | None = None) -> StageResult:
    """Ingest every source of the pipeline; all bronze outputs move into place together."""
    layout = Layout(cfg.paths, cfg.pipeline.name)
    params = {name: to_plain(src) for name, src in cfg.pipeline.sources.items()}
    with table_writes(cfg, spark, tracker, STAGE, params) as w:
        for name, src in cfg.pipeline.sources.items():
            started = time.perf_counter()
            path = land(spark, src, layout.path("raw", name))
            parsed = read_source(spark, src, path, name)
            bronze, quarantine = layout.path("bronze", name), layout.quarantine(STAGE, name)
            # The one full parse; the table's statistics are observed on the same write.
            n_out = w.out.write_counted(w.checks.watch(parsed.good, name, bronze), bronze)
            n_in, bad_files = parsed.seen()
            # Only files with an unparseable line are read again, for the quarantine: the
            # lines it keeps are a by-product of the same parse, but holding them on the driver
            # (an observed collect_list) would cost memory without bound on a broken source.
            if bad_files:
                n_bad = w.out.write_counted(parsed.unparsed(bad_files), quarantine)
            else:
                n_bad = w.out.write_empty(quarantine, QUARANTINE_SCHEMA)
            if n_in == 0:
                raise InputError(f"{path}: {_no_rows(src)}")
            _quality_gate(src, path, n_in, n_bad, w.out.read(quarantine))
            reconcile(f"ingest {name}", n_in, n_out, n_bad)
            w.metrics.update(table_metrics(name, n_in, n_out, n_bad, started))
            w.outputs[name] = bronze
        return w.finish()


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


@dataclass(frozen=True)
class ParsedSource:
    """One source, read once: the rows that parsed, and how to get the ones that did not.

    ``seen()`` is valid once ``good`` has been written: the records read and the files that held
    an unparseable one, observed during that write. ``unparsed(files)`` re-reads just those
    files (never called with none) and keeps their unparseable records as quarantine rows.
    """

    good: DataFrame
    seen: Callable[[], tuple[int, list[str]]]
    unparsed: Callable[[list[str]], DataFrame]


def read_source(spark: SparkSession, src: SourceConfig, path: str, name: str) -> ParsedSource:
    """Read one source against its schema (lazily: nothing is parsed until ``good`` is written)."""
    schema = struct_from_config(src.schema)
    fs = FileSystem(spark)
    if not fs.exists(path):
        raise InputError(f"{path}: input path does not exist (source {name!r})")
    if not fs.data_files(path):
        raise InputError(f"{path}: input is empty (no data files; source {name!r})")

    def empty(_files: list[str]) -> DataFrame:
        return spark.createDataFrame([], QUARANTINE_SCHEMA)

    if src.format == "parquet":
        df = read_parquet(spark, path, expected=schema, allow_empty=True)
        df, rows = counting(df.select(*schema.fieldNames()))
        return ParsedSource(assemble_arrays(df, src.arrays), lambda: (rows(), []), empty)
    options = {k: spark_value(v) for k, v in src.options.items()}
    if src.format == "csv" and options.get("header") == "true":
        _check_header(fs, path, options, schema.fieldNames())
    return _read_text(spark, src, path, name, schema, options)


def _read_text(
    spark: SparkSession,
    src: SourceConfig,
    path: str,
    name: str,
    schema: T.StructType,
    options: dict[str, str],
) -> ParsedSource:
    """A CSV or JSON source, parsed permissively: the records that do not parse are kept apart."""
    # A UTF-8 CSV's bytes that are not UTF-8 are kept: the rows holding them are quarantined,
    # and their files re-read in ISO-8859-1 (one character per byte) to recover the bytes.
    encoding = str(options.get("encoding", options.get("charset", "UTF-8")))
    utf8 = src.format == "csv" and encoding.upper().replace("_", "-") in ("UTF-8", "UTF8")
    bad_row = F.col(CORRUPT).isNotNull() | (F.col(UNDECODABLE) if utf8 else F.lit(False))

    def load(paths: str | list[str], **extra: str) -> DataFrame:
        with spark_errors_as_input_errors(path):
            return (
                spark.read.schema(with_corrupt_column(schema))
                .options(**{**options, **extra})
                .option("mode", "PERMISSIVE")
                .option("columnNameOfCorruptRecord", CORRUPT)
                .format(src.format)
                .load(paths)
            )

    seen = Observation()
    # One string, not an array: py4j hands observed arrays back as Java objects. The file name
    # is projected first: a non-deterministic input_file_name() may not sit inside a metric.
    bad_files = F.concat_ws("\n", F.array_sort(F.collect_set(F.col(_FILE))))
    raw = (
        (with_undecodable(load(path), schema) if utf8 else load(path))
        .withColumn(_FILE, F.when(bad_row, F.input_file_name()))
        .observe(seen, F.count(F.lit(1)).alias("rows"), bad_files.alias("bad_files"))
        .drop(_FILE)
    )

    def observed() -> tuple[int, list[str]]:
        got = seen.get
        return int(got["rows"]), [f for f in (got["bad_files"] or "").split("\n") if f]

    def unparsed(files: list[str]) -> DataFrame:
        reread = from_latin1(load(files, encoding=LATIN1), schema) if utf8 else load(files)
        rows = unparsed_rows(
            reread,
            schema,
            source=name,
            fmt=src.format,
            sep=options.get("sep", ","),
            null_value=options.get("nullValue", ""),
        )
        return rows if utf8 else rows.withColumn("raw_base64", F.lit(None).cast("string"))

    good = parsed_rows(raw)
    return ParsedSource(assemble_arrays(good, src.arrays), observed, unparsed)


def _no_rows(src: SourceConfig) -> str:
    if src.format == "csv" and spark_value(src.options.get("header", False)) == "true":
        return "no rows (the file holds only a header line)"
    return "input is empty (0 rows)"


def _check_header(fs: FileSystem, path: str, options: dict, expected: list[str]) -> None:
    # Spark maps CSV columns by position; a renamed or reordered column must fail here, loudly,
    # not shift every value into the wrong field. Every file's first line is read through
    # Hadoop (no Spark job) and split with the source's separator and quote.
    sep = options.get("sep", options.get("delimiter", ","))
    quote = options.get("quote", '"') or None
    encoding = options.get("encoding", options.get("charset", "UTF-8"))
    files = fs.data_files(path)
    for file in files:
        where = f"{path if len(files) == 1 else file} (CSV header)"
        line = fs.first_line(file, encoding)
        if line is None:  # no bytes: say so, not "missing every column; available: (none)"
            raise InputError(
                f"{path if len(files) == 1 else file}: the file is empty; expected a CSV header "
                f"line with {', '.join(expected)}"
            )
        if len(sep) == 1:
            found = next(csv.reader([line], delimiter=sep, quotechar=quote))
        else:
            found = line.split(sep)
        require_columns(found, expected, where)
        if found != expected:
            raise InputError(
                f"{where}: columns are {', '.join(found)}; expected, in this order: "
                f"{', '.join(expected)}"
            )


def _quality_gate(
    src: SourceConfig, path: str, n_in: int, n_bad: int, quarantine: DataFrame
) -> None:
    if n_bad <= src.max_quarantine_fraction * n_in:
        return
    first = quarantine.select("reason").first()
    raise InputError(
        f"{path}: {n_bad} of {n_in} rows do not parse against the declared schema "
        f"(at most {src.max_quarantine_fraction:.1%} allowed); first: {first['reason']}"
    )
