"""Reading one raw source against its declared schema: CSV, JSON or Parquet, never inferred.

The records that do not parse are kept apart (their files re-read only when there are some), so
ingest can write them to the quarantine with the raw line.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass

from pyspark.sql import DataFrame, Observation, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from deepspark.config import SourceConfig, spark_value
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
from deepspark.io import FileSystem, counting, read_parquet, spark_errors_as_input_errors
from deepspark.schema import require_columns, struct_from_config

_FILE = "__file"  # the file of an unparseable record, observed and dropped


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


def read_source(
    spark: SparkSession, src: SourceConfig, path: str, name: str, files: list[str] | None = None
) -> ParsedSource:
    """Read one source against its schema (lazily: nothing is parsed until ``good`` is written).

    ``files``: only these files of the source folder ``path`` (a delivery), not all of them.
    """
    schema = struct_from_config(src.schema)
    fs = FileSystem(spark)
    if not fs.exists(path):
        raise InputError(f"{path}: input path does not exist (source {name!r})")
    if not fs.data_files(path):
        raise InputError(f"{path}: input is empty (no data files; source {name!r})")

    def empty(_files: list[str]) -> DataFrame:
        return spark.createDataFrame([], QUARANTINE_SCHEMA)

    if src.format == "parquet":
        df = read_parquet(spark, path, expected=schema, allow_empty=True, files=files)
        df, rows = counting(df.select(*schema.fieldNames()))
        return ParsedSource(assemble_arrays(df, src.arrays), lambda: (rows(), []), empty)
    options = {k: spark_value(v) for k, v in src.options.items()}
    if src.format == "csv" and options.get("header") == "true":
        _check_header(fs, path, options, schema.fieldNames(), files)
    return _read_text(spark, src, path, name, schema, options, files)


def _read_text(
    spark: SparkSession,
    src: SourceConfig,
    path: str,
    name: str,
    schema: T.StructType,
    options: dict[str, str],
    files: list[str] | None = None,
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

    # A delivery's files keep the folder as their base: hive-style partition folders
    # (year=2013/month=12/) still become the same columns as in a read of the whole folder.
    source = load(files, basePath=path) if files else load(path)
    seen = Observation()
    # One string, not an array: py4j hands observed arrays back as Java objects. The file name
    # is projected first: a non-deterministic input_file_name() may not sit inside a metric.
    bad_files = F.concat_ws("\n", F.array_sort(F.collect_set(F.col(_FILE))))
    raw = (
        (with_undecodable(source, schema) if utf8 else source)
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


def no_rows(src: SourceConfig) -> str:
    """Why a source read no row, as the error says it."""
    if src.format == "csv" and spark_value(src.options.get("header", False)) == "true":
        return "no rows (the file holds only a header line)"
    return "input is empty (0 rows)"


def _check_header(
    fs: FileSystem, path: str, options: dict, expected: list[str], files: list[str] | None = None
) -> None:
    # Spark maps CSV columns by position; a renamed or reordered column must fail here, loudly,
    # not shift every value into the wrong field. Every file's first line is read through
    # Hadoop (no Spark job) and split with the source's separator and quote.
    sep = options.get("sep", options.get("delimiter", ","))
    quote = options.get("quote", '"') or None
    encoding = options.get("encoding", options.get("charset", "UTF-8"))
    files = files or fs.data_files(path)
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
