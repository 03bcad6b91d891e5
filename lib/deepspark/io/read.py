"""Checked reads: a table against its contract, unreadable files as one line each.

A layer's table is read as what it is: a folder with a ``_delta_log`` is a Delta table (its latest
version), any other folder plain Parquet. So a reader needs no config, and a data folder written
before ``paths.format: delta`` reads the same.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from contextlib import contextmanager

from pyspark.errors import AnalysisException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import types as T

from deepspark.errors import InputError
from deepspark.io import delta
from deepspark.io.fs import FileSystem
from deepspark.schema import check_schema, require_columns

_FILE_IN_MESSAGE = re.compile(r"(?:file:|hdfs://|s3a?://|gs://|abfss?://)[^\s,}\]'\"]+")


def is_delta(spark: SparkSession, path: str) -> bool:
    """Whether ``path`` holds a Delta table (a ``_delta_log`` folder beside the data)."""
    return FileSystem(spark).exists(f"{path}/{delta.LOG}")


def read_table(
    spark: SparkSession,
    path: str,
    *,
    expected: T.StructType | None = None,
    required: tuple[str, ...] = (),
    allow_empty: bool = False,
) -> DataFrame:
    """A layer's table, Delta or Parquet, checked as :func:`read_parquet` checks a folder."""
    if not is_delta(spark, path):
        return read_parquet(
            spark, path, expected=expected, required=required, allow_empty=allow_empty
        )
    with spark_errors_as_input_errors(path):
        df = spark.read.format("delta").load(path)
    return _checked(df, path, expected, required, allow_empty)


def table_files(spark: SparkSession, path: str) -> list[str]:
    """The data files a read of the table at ``path`` scans now, as URLs, sorted."""
    if is_delta(spark, path):
        return delta.version_files(spark, path)
    return FileSystem(spark).data_files(path)


def table_bytes(spark: SparkSession, path: str) -> int:
    """Bytes a read of the table scans now (a Delta version's files, not its folder's)."""
    if is_delta(spark, path):
        detail = spark.sql(f"DESCRIBE DETAIL {delta.quoted(path)}").select("sizeInBytes").first()
        return int(detail["sizeInBytes"])
    return FileSystem(spark).total_bytes(path)


def table_digest(spark: SparkSession, path: str) -> str:
    """A short digest that changes whenever the table's content does (the MLflow dataset digest).

    A Delta version's file names are unique (each holds a UUID) and never rewritten in place,
    so the names alone identify its content; a Parquet folder's are digested with their sizes.
    """
    if is_delta(spark, path):
        names = "\n".join(f.rsplit("/", 1)[-1] for f in delta.version_files(spark, path))
        return hashlib.sha256(names.encode()).hexdigest()[:16]
    return FileSystem(spark).fingerprint(path)


def read_parquet(
    spark: SparkSession,
    path: str,
    *,
    expected: T.StructType | None = None,
    required: tuple[str, ...] = (),
    allow_empty: bool = False,
    files: list[str] | None = None,
) -> DataFrame:
    """Read a Parquet table and check it against its contract before any work is done.

    ``files``: only these files of the folder ``path`` (a delivery), with it as their base.

    Every file's footer is read (``mergeSchema``), so a truncated or corrupt file, a missing
    column or a wrong type is one clear error naming the path, not a failure deep in a job.
    A single file's footer is read on the driver: merging one schema needs no job.
    """
    fs = FileSystem(spark)
    if not fs.exists(path):
        raise InputError(f"{path}: input path does not exist")
    listed = files or fs.data_files(path)
    if not listed:
        raise InputError(f"{path}: input is empty (no data files)")
    with spark_errors_as_input_errors(path):
        merge = len(listed) > 1 or not fs.is_file(listed[0])
        reader = spark.read.option("mergeSchema", str(merge).lower())
        df = reader.option("basePath", path).parquet(*files) if files else reader.parquet(path)
    return _checked(df, path, expected, required, allow_empty)


def _checked(
    df: DataFrame,
    path: str,
    expected: T.StructType | None,
    required: tuple[str, ...],
    allow_empty: bool,
) -> DataFrame:
    """``df`` once it holds the contract: the expected schema, the required columns, a row."""
    if expected is not None:
        check_schema(df.schema, expected, path)
    require_columns(df.columns, required, path)
    if not allow_empty and df.limit(1).count() == 0:
        raise InputError(f"{path}: input is empty (0 rows)")
    return df


@contextmanager
def spark_errors_as_input_errors(path: str) -> Iterator[None]:
    """Turn Spark's errors about unreadable input files into one line naming the file."""
    try:
        yield
    except InputError:
        raise
    except AnalysisException as e:
        raise InputError(f"{path}: cannot read input: {_first_line(str(e))}") from e
    except Exception as e:  # py4j / SparkException: only ones about files are translated
        message = str(e)
        if not _is_file_error(message):
            raise
        bad = _FILE_IN_MESSAGE.search(message)
        where = bad.group(0) if bad else path
        raise InputError(
            f"{where}: unreadable or corrupt Parquet file (expected a complete Parquet file): "
            f"{_file_error_reason(message)}"
        ) from e


def _is_file_error(message: str) -> bool:
    markers = (
        "Could not read footer",
        "is not a Parquet file",
        "CANNOT_READ_FILE_FOOTER",
        "FAILED_READ_FILE",
        "ParquetDecodingException",
        "Can not read value at",
        "EOFException",
        "ChecksumException",
    )
    return any(m in message for m in markers)


def _file_error_reason(message: str) -> str:
    for pattern in (
        r"(expected magic number at tail[^\n]*)",
        r"(is not a Parquet file[^\n]*)",
        r"(Could not read footer[^\n]*)",
        r"(EOFException[^\n]*)",
        r"(Checksum error)",
    ):
        m = re.search(pattern, message)
        if m:
            return _FILE_IN_MESSAGE.sub("", m.group(1)).strip(" .:")[:160]
    return _first_line(message)[:160]


def _first_line(message: str) -> str:
    return message.strip().splitlines()[0] if message.strip() else "unknown error"
