"""Delta Lake tables: the jars a stack's sessions load, and a table's versions and files.

Everything here is SQL or the DataFrame API, never Delta's JVM-only Python classes (``DeltaTable``
goes through py4j): what works in a classic session works the same over Spark Connect.

The jars are not configured by hand. The stack's lock pins the ``delta-spark`` Python package,
and its version, with the installed PySpark's, names the one Maven artifact built for that Spark
(Delta's own ``configure_spark_with_delta_pip`` applies the same rule); the lock's ``# jars:``
line states it and ``tests/test_stack.py`` holds the two together.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from urllib.parse import unquote

from pyarrow import fs as pafs
from pyspark.sql import SparkSession

from deepspark.errors import SetupError
from deepspark.io.fs import file_url

LOG = "_delta_log"
_COMMIT = re.compile(r"^\d{20}\.json$")
_LOG_ENTRY = re.compile(r"^(\d{20})\.(?:json|checkpoint(?:\.[^/]*)?\.parquet)$")
# What Delta's artifact brings that Spark already ships (Hadoop's client, Parquet, Jackson,
# logging, codecs): resolved, they are 77 MB more to download on a fresh machine, and a second
# copy of each on the classpath. Spark's own copies are the ones its build was tested with.
EXCLUDES = (
    "org.apache.hadoop:hadoop-client-api",
    "org.apache.hadoop:hadoop-client-runtime",
    "org.apache.parquet:parquet-hadoop",
    "org.apache.parquet:parquet-column",
    "org.apache.parquet:parquet-common",
    "org.apache.parquet:parquet-encoding",
    "org.apache.parquet:parquet-format-structures",
    "org.apache.parquet:parquet-jackson",
    "com.fasterxml.jackson.core:jackson-databind",
    "com.fasterxml.jackson.core:jackson-core",
    "com.fasterxml.jackson.core:jackson-annotations",
    "org.apache.logging.log4j:log4j-core",
    "org.apache.logging.log4j:log4j-api",
    "org.apache.logging.log4j:log4j-slf4j2-impl",
    "org.slf4j:slf4j-api",
    "org.xerial.snappy:snappy-java",
    "com.github.luben:zstd-jni",
    "commons-logging:commons-logging",
    "io.airlift:aircompressor",
    "org.roaringbitmap:RoaringBitmap",
)


def package(spark_version: str | None = None, delta: str | None = None) -> str:
    """The Maven coordinates of the Delta build for a Spark and a ``delta-spark`` release.

    Both default to the installed ones.

    Raises:
        SetupError: ``delta-spark`` is not installed, or its release has no build for this Spark.
    """
    import pyspark

    spark_version = spark_version or pyspark.__version__
    try:
        delta = delta or version("delta-spark")
    except PackageNotFoundError as e:
        raise SetupError(
            "paths.format is delta, but the delta-spark package is not installed "
            "(install a lock from locks/, or set paths.format: parquet)"
        ) from e
    major_minor = ".".join(spark_version.split(".")[:2])
    if int(delta.split(".")[0]) < 4:  # Delta 3.x: one artifact per Scala version, Spark 3.5 only
        if major_minor != "3.5":
            raise SetupError(f"delta-spark {delta} is built for Spark 3.5; found {spark_version}")
        return f"io.delta:delta-spark_2.12:{delta}"
    return f"io.delta:delta-spark_{major_minor}_2.13:{delta}"


def session_settings(configured: dict[str, str]) -> dict[str, str]:
    """The settings a session needs for Delta tables, merged into the ``configured`` ones.

    A package the configuration already names (a cluster's ``hadoop-aws``) is kept beside Delta's.
    """
    packages = [p for p in configured.get("spark.jars.packages", "").split(",") if p]
    excludes = [e for e in configured.get("spark.jars.excludes", "").split(",") if e]
    mine = package()
    return {
        **configured,
        "spark.jars.packages": ",".join([mine, *(p for p in packages if p != mine)]),
        "spark.jars.excludes": ",".join([*excludes, *(e for e in EXCLUDES if e not in excludes)]),
        "spark.sql.extensions": _joined(
            configured.get("spark.sql.extensions"), "io.delta.sql.DeltaSparkSessionExtension"
        ),
        "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
        # Delta rebuilds a table's state from its log in a job of this many tasks, 50 by
        # default: on a 2-core machine that job cost each stage ~10 s for a one-file table. The
        # log of a table written once per run is small; the shuffle's setting fits it.
        "spark.databricks.delta.snapshotPartitions": configured.get(
            "spark.databricks.delta.snapshotPartitions",
            configured.get("spark.sql.shuffle.partitions", "8"),
        ),
        # A deletion vector marks rows deleted without rewriting the file; a reader handed a
        # version's file list (pyarrow, Petastorm, the training ranks) would see them again.
        "spark.databricks.delta.properties.defaults.enableDeletionVectors": "false",
    }


def _joined(current: str | None, extension: str) -> str:
    names = [n for n in (current or "").split(",") if n]
    return ",".join(names if extension in names else [*names, extension])


def quoted(path: str) -> str:
    """``path`` as a Delta table identifier in SQL: ``delta.`/data/silver/x```."""
    return "delta.`" + path.replace("`", "``") + "`"


def latest_version(path: str) -> int | None:
    """The table's newest version, from its log's file names; None when ``path`` holds none.

    A listing, not a query: ``DESCRIBE HISTORY`` rebuilds the table's state first (0.5 s a
    table on 2 cores). Every commit is a file ``<version>.json`` (zero-padded), and a checkpoint
    ``<version>.checkpoint[...].parquet`` stays when old commits are cleaned up.
    """
    filesystem, log = _log(path)
    infos = filesystem.get_file_info(pafs.FileSelector(log, allow_not_found=True))
    versions = [int(m[1]) for i in infos if (m := _LOG_ENTRY.match(i.base_name))]
    return max(versions) if versions else None


def commit_info(path: str, version: int) -> dict:
    """The ``commitInfo`` of one commit (operation, parameters, userMetadata), from its file."""
    return next((a["commitInfo"] for a in _actions(path, version) if "commitInfo" in a), {})


def written_files(path: str, version: int) -> list[str] | None:
    """The data files that the write committed as ``version`` added; None for another operation.

    For an overwrite they are the whole version (it removed every earlier file), for an append
    the batch it added; read from the one commit file, where :func:`version_files` replays the
    log in a Spark job.
    """
    actions = _actions(path, version)
    info = next((a["commitInfo"] for a in actions if "commitInfo" in a), {})
    if info.get("operation") != "WRITE":
        return None
    root = file_url(path).rstrip("/")
    return sorted(f"{root}/{unquote(a['add']['path'])}" for a in actions if "add" in a)


@dataclass(frozen=True)
class Commit:
    """One version of a table, as its commit file tells it (no Spark, no Delta library)."""

    version: int
    timestamp_ms: int
    operation: str  # WRITE, MERGE, RESTORE, ...
    mode: str  # a write's Overwrite or Append; "" for others
    rows: int | None  # rows the commit wrote (numOutputRows), when it says
    metadata: dict  # deepspark's userMetadata: stage, MLflow run, inputs or batch


def history(path: str) -> list[Commit]:
    """Every version whose commit file is still in the log, oldest first.

    ``DESCRIBE HISTORY``'s rows, read from the files: listing many tables costs no Spark job.
    """
    filesystem, log = _log(path)
    infos = filesystem.get_file_info(pafs.FileSelector(log, allow_not_found=True))
    out = []
    for number in sorted(int(i.base_name[:20]) for i in infos if _COMMIT.match(i.base_name)):
        info = commit_info(path, number)
        metrics = info.get("operationMetrics") or {}
        try:
            meta = json.loads(info.get("userMetadata") or "{}")
        except ValueError:
            meta = {"text": info.get("userMetadata")}
        out.append(
            Commit(
                number,
                int(info.get("timestamp", 0)),
                str(info.get("operation", "")),
                str((info.get("operationParameters") or {}).get("mode", "")).strip('"'),
                int(metrics["numOutputRows"]) if "numOutputRows" in metrics else None,
                meta if isinstance(meta, dict) else {"text": str(meta)},
            )
        )
    return out


def _actions(path: str, version: int) -> list[dict]:
    filesystem, log = _log(path)
    with filesystem.open_input_stream(f"{log}/{version:020d}.json") as fh:
        return [json.loads(line) for line in fh.read().decode().splitlines() if line]


def last_commit(spark: SparkSession, path: str) -> tuple[str, int | None]:
    """The newest commit's ``userMetadata`` ("" when none) and rows written (None: unknown)."""
    row = (
        spark.sql(f"DESCRIBE HISTORY {quoted(path)} LIMIT 1")
        .select("userMetadata", "operationMetrics")
        .first()
    )
    rows = (row["operationMetrics"] or {}).get("numOutputRows")
    return row["userMetadata"] or "", None if rows is None else int(rows)


def _log(path: str) -> tuple[pafs.FileSystem, str]:
    filesystem, root = pafs.FileSystem.from_uri(file_url(path))
    return filesystem, f"{root.rstrip('/')}/{LOG}"


def version_files(spark: SparkSession, path: str, version: int | None = None) -> list[str]:
    """The data files that make up ``version`` (the latest when None), sorted.

    With deletion vectors off this list *is* the table: a reader of these files, with no Delta
    library at all, sees exactly the rows Delta does.
    """
    reader = spark.read.format("delta")
    if version is not None:
        reader = reader.option("versionAsOf", version)
    return sorted(file_url(f) for f in reader.load(path).inputFiles())


def restore(spark: SparkSession, path: str, version: int) -> None:
    """Put the table's content back to ``version`` (one new commit; history keeps both)."""
    spark.sql(f"RESTORE TABLE {quoted(path)} TO VERSION AS OF {int(version)}")
