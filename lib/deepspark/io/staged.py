"""Staged writes: every output of a stage beside its final path, moved into place together.

A Delta table needs no staging: its write is one commit, and readers see the previous version
until it lands. What staging gave Parquet (a failed check leaves the previous output in place)
a Delta output gets by a restore of the version it replaced.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from pyspark.sql import DataFrame, Observation, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from deepspark.io import delta
from deepspark.io.fs import FileSystem, file_url


class StagedOutputs:
    """Collects a stage's outputs in staging paths and moves them all into place on commit."""

    def __init__(self, spark: SparkSession, table_format: str = "parquet") -> None:
        self.spark = spark
        self.fs = FileSystem(spark)
        self.delta = table_format == "delta"
        self._pending: list[tuple[str, str]] = []
        # Delta outputs already committed: final path -> the version to restore on discard
        # (None: the table is new, so discarding deletes it).
        self._committed: dict[str, int | None] = {}

    def write(
        self,
        df: DataFrame,
        path: str,
        *,
        row_group_bytes: int | None = None,
        partition_by: tuple[str, ...] = (),
        append: bool = False,
        metadata: str = "",
        replace_where: str = "",
    ) -> str:
        """Write ``df`` as Parquet to a staging path for ``path``; returns the staging path.

        A Delta output is written to ``path`` itself, as one commit (returns ``path``): it
        replaces the table, or with ``append`` adds to it, or with ``replace_where`` (SQL)
        replaces just the rows that match it (``df`` must hold only such rows); ``metadata`` is
        the commit's ``userMetadata`` (what it was built from), shown in the table's history.
        """
        if self.delta:
            return self._commit_delta(
                df, path, partition_by, append, metadata, row_group_bytes, replace_where
            )
        if replace_where:
            raise ValueError(f"{path}: replacing rows in place needs paths.format: delta")
        if append:
            raise ValueError(f"{path}: appending needs paths.format: delta")
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

    def write_empty(self, path: str, schema: T.StructType, metadata: str = "") -> int:
        """Stage an empty Parquet output of ``schema`` (a schema-only file); returns 0.

        What Spark writes for an empty DataFrame, without a Spark job: an empty quarantine of a
        small table cost 0.25 s that way, more than writing the table itself.
        """
        import pyarrow as pa
        import pyarrow.parquet as pq
        from pyspark.sql.pandas.types import to_arrow_schema

        if self.delta:  # an empty Delta table is a commit with a schema and no files
            self._commit_delta(self.spark.createDataFrame([], schema), path, (), metadata=metadata)
            return 0
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

    def _commit_delta(
        self,
        df: DataFrame,
        path: str,
        partition_by: tuple[str, ...],
        append: bool = False,
        metadata: str = "",
        row_group_bytes: int | None = None,
        replace_where: str = "",
    ) -> str:
        if path in self._committed:
            raise ValueError(f"{path}: written twice by one stage")
        previous = delta.latest_version(path)
        if previous is None and self.fs.exists(path):
            # A Parquet folder becoming a Delta table: set aside whole, so that a discard can
            # put it back; the Delta table starts in an empty folder.
            self.fs.rename(path, f"{path}.__parquet")
        writer = df.write.format("delta").mode("append" if append else "overwrite")
        if replace_where:  # the rows outside it stay, so the schema must too
            writer = writer.option("replaceWhere", replace_where)
        elif not append:
            writer = writer.option("overwriteSchema", "true")
        writer = writer.option("userMetadata", metadata) if metadata else writer
        if partition_by:
            writer = writer.partitionBy(*partition_by)
        self._committed[path] = previous
        # Delta passes only fs.* writer options to its Parquet writer; the Hadoop conf it uses
        # does copy the session's settings, so the row-group size goes there for this write.
        settings = {"parquet.block.size": str(row_group_bytes)} if row_group_bytes else {}
        with delta.session_conf(self.spark, settings):
            writer.save(path)
        if append and metadata and delta.latest_version(path) == previous:
            delta.mark(self.spark, path, metadata)  # no rows, no commit: record the build anyway
        return path

    def merge(self, df: DataFrame, path: str, keys: tuple[str, ...], metadata: str) -> int:
        """Upsert ``df`` into Delta table ``path`` on ``keys`` (null equals null); rows inserted.

        One commit: a row whose key the table holds replaces it, any other is added. SQL (a temp
        view and ``MERGE INTO``), not Delta's py4j-only ``DeltaTable``, so it also runs over
        Spark Connect. ``metadata`` is the commit's userMetadata, as for :meth:`write`.
        """
        if path in self._committed:
            raise ValueError(f"{path}: written twice by one stage")
        previous = delta.latest_version(path)
        if previous is None:
            raise ValueError(f"{path}: MERGE needs an existing Delta table")
        self._committed[path] = previous
        view = f"deepspark_merge_{uuid.uuid4().hex[:8]}"
        df.createOrReplaceTempView(view)
        on = " AND ".join(f"t.{_name(k)} <=> s.{_name(k)}" for k in keys)
        try:
            with delta.session_conf(self.spark, {delta.USER_METADATA: metadata}):
                self.spark.sql(
                    f"MERGE INTO {delta.quoted(path)} t USING {view} s ON {on} "
                    "WHEN MATCHED THEN UPDATE SET * WHEN NOT MATCHED THEN INSERT *"
                )
        finally:
            self.spark.catalog.dropTempView(view)
        version = delta.latest_version(path)
        if version == previous:  # an empty source commits nothing
            delta.mark(self.spark, path, metadata)
            return 0
        assert version is not None
        metrics = delta.commit_info(path, version).get("operationMetrics") or {}
        return int(metrics.get("numTargetRowsInserted", 0))

    def files(self, path: str) -> str | list[str]:
        """What a reader of output ``path`` scans before commit, for pyarrow.

        A staging folder's URL, or the exact files of the Delta version just written (its folder
        also holds older versions' files).
        """
        if path in self._committed:
            version = delta.latest_version(path)
            assert version is not None  # written by this stage
            written = delta.written_files(path, version)
            return written if written is not None else delta.version_files(self.spark, path)
        return file_url(self.staged(path))

    def read(self, path: str) -> DataFrame:
        """Output ``path`` as written, before commit."""
        if path in self._committed:
            return self.spark.read.format("delta").load(path)
        return self.spark.read.parquet(self.staged(path))

    def staged(self, path: str) -> str:
        """The staging path already written for final ``path`` (to read back before commit)."""
        if path in self._committed:
            return path
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
        for path, previous in self._committed.items():
            if previous is None:
                self.fs.delete(f"{path}.__parquet")
        self._committed.clear()

    def discard(self) -> None:
        """Delete every staging path: the previous outputs stay untouched.

        Every Delta output goes back to the version it replaced (a new table is deleted, a
        Parquet folder it replaced put back).
        """
        for staging, _ in self._pending:
            self.fs.delete(staging)
        self._pending.clear()
        for path, previous in self._committed.items():
            if previous is not None:
                delta.restore(self.spark, path, previous)
                continue
            self.fs.delete(path)
            if self.fs.exists(f"{path}.__parquet"):
                self.fs.rename(f"{path}.__parquet", path)
        self._committed.clear()


def _name(column: str) -> str:
    return "`" + column.replace("`", "``") + "`"


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
def staged_outputs(spark: SparkSession, table_format: str = "parquet") -> Iterator[StagedOutputs]:
    """Collect a stage's outputs, discarding whatever was not committed.

    Use as ``with staged_outputs(spark) as out: ... out.commit()``.

    Anything not committed when the block ends (an exception, a failed check) is discarded.
    """
    out = StagedOutputs(spark, table_format)
    try:
        yield out
    finally:
        out.discard()
