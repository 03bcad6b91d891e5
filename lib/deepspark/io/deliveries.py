"""Deliveries: which files of a source folder are new since the last run, kept in a file log.

A source is a folder that receives deliveries (new files, or new hive-style partitions such as
``year=2013/month=12/``). Each run of ingest compares the folder with the source's file log, a
small Delta table beside bronze with one row per file ingested: its path, size, modification time,
SHA-256 and the batch that ingested it.

Why a file log and not Structured Streaming's file source (``trigger(availableNow=True)`` with a
checkpoint, as Auto Loader does): the streaming source remembers a file by its path alone, so a
file re-delivered with new content under the same name is never read again, where the pipeline
must replace that file's rows; and its checkpoint is a folder of JVM-specific metadata, where the
file log is a table anyone can query (``deepspark tables``, SQL, pandas).

A file whose size and modification time match its row is taken as unchanged without reading it;
any other file is hashed. Hashing reads the file once: cheap beside parsing it, and done only for
new or touched files.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass

from pyarrow import fs as pafs
from pyspark.sql import SparkSession
from pyspark.sql import types as T

from deepspark.io import delta
from deepspark.io.fs import file_url

log = logging.getLogger(__name__)

LOG_SCHEMA = T.StructType(
    [
        T.StructField("file", T.StringType(), False),
        T.StructField("size", T.LongType(), False),
        T.StructField("mtime_ns", T.LongType(), False),
        T.StructField("sha256", T.StringType(), False),
        T.StructField("batch", T.LongType(), False),
    ]
)


@dataclass(frozen=True)
class SourceFile:
    """One file of a source folder, as the file log records it."""

    file: str  # its URL
    size: int
    mtime_ns: int
    sha256: str


@dataclass(frozen=True)
class Delivery:
    """What a run of ingest has to do for one source.

    ``files`` are to be ingested as batch ``batch``. ``full`` means the source is rebuilt from
    every file it holds now: a first run, a file ingested before that changed or disappeared,
    or a full run asked for.
    """

    batch: int
    files: tuple[SourceFile, ...]
    full: bool
    reason: str  # one line for the log: why full, or how many files are new


def listing(uri: str) -> list[tuple[str, int, int]]:
    """(URL, size, mtime in ns) of every data file under ``uri`` (or of ``uri``, a file), sorted.

    Names starting with ``_`` or ``.`` are skipped at any depth, as Spark's file sources do.
    """
    filesystem, root = pafs.FileSystem.from_uri(file_url(uri))
    info = filesystem.get_file_info(root)
    if info.type == pafs.FileType.File:
        infos = [info]
    else:
        infos = filesystem.get_file_info(pafs.FileSelector(root, recursive=True))
    prefix = file_url(uri).split(root, 1)[0] if "://" in file_url(uri) else ""
    out = []
    for i in infos:
        rel = i.path[len(root) :].lstrip("/")
        if i.type != pafs.FileType.File or any(p.startswith(("_", ".")) for p in rel.split("/")):
            continue
        out.append((prefix + i.path, int(i.size), int(i.mtime_ns or 0)))
    return sorted(out)


def sha256(url: str) -> str:
    """The SHA-256 of a file's bytes, read in 8 MiB blocks."""
    filesystem, path = pafs.FileSystem.from_uri(url)
    digest = hashlib.sha256()
    with filesystem.open_input_stream(path) as fh:
        while block := fh.read(8 << 20):
            digest.update(block)
    return digest.hexdigest()


def logged(spark: SparkSession, log_path: str) -> dict[str, tuple[SourceFile, int]]:
    """The file log: file URL -> (what was ingested, its batch); empty when there is none."""
    if delta.latest_version(log_path) is None:
        return {}
    rows = spark.read.format("delta").load(log_path).collect()
    return {
        r["file"]: (SourceFile(r["file"], r["size"], r["mtime_ns"], r["sha256"]), r["batch"])
        for r in rows
    }


def pending(spark: SparkSession, uri: str, log_path: str, *, full: bool) -> Delivery:
    """What is new in the source folder at ``uri`` since the file log at ``log_path``."""
    seen = logged(spark, log_path)
    batch = max((b for _, b in seen.values()), default=0) + 1
    now = []
    for url, size, mtime in listing(uri):
        old = seen.get(url)
        if old and (old[0].size, old[0].mtime_ns) == (size, mtime):
            now.append(old[0])
        else:
            now.append(SourceFile(url, size, mtime, sha256(url)))
    if full or not seen:
        why = "a full run" if full else "a first run"
        return Delivery(batch, tuple(now), True, f"{why}: all {len(now)} files")
    current = {f.file: f for f in now}
    changed = sorted(
        u for u, (f, _) in seen.items() if u in current and current[u].sha256 != f.sha256
    )
    gone = sorted(u for u in seen if u not in current)
    if changed or gone:
        what = f"{changed[0]} changed" if changed else f"{gone[0]} disappeared"
        more = len(changed) + len(gone) - 1
        what += f" (and {more} more)" if more else ""
        return Delivery(batch, tuple(now), True, f"{what}: the source is rebuilt from its files")
    new = tuple(f for f in now if f.file not in seen)
    return Delivery(batch, new, False, f"{len(new)} new files" if new else "no new files")


def undo_unlogged(spark: SparkSession, path: str, source: str, batch: int) -> bool:
    """Take out of ``path`` a batch of ``source`` that was appended but never logged.

    Ingest appends a batch to bronze and the quarantine, then logs its files: a run killed in
    between leaves the batch in a table while the log still calls its files new. Its commit is
    then the table's latest (each run appends one batch per source) and names the batch in its
    userMetadata; the table is restored to the version before it, and the rerun appends the
    batch again, whole. Returns whether it did.
    """
    version = delta.latest_version(path)
    if not version:  # no table, or one commit only: an append is never a table's first
        return False
    meta = delta.user_metadata(delta.commit_info(path, version))
    if meta.get("source") != source or int(meta.get("batch", 0)) < batch:
        return False
    log.warning(
        "%s: batch %d of %s was appended (version %d) but its files never logged (a run "
        "stopped half-way); restoring version %d to redo it",
        path, batch, source, version, version - 1,
    )  # fmt: skip
    delta.restore(spark, path, version - 1)
    return True


def log_rows(files: Iterable[SourceFile], batch: int) -> list[tuple]:
    """The file log's rows for ``files``, ingested as ``batch``."""
    return [(f.file, f.size, f.mtime_ns, f.sha256, batch) for f in files]
