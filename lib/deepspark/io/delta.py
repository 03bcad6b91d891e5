"""Delta Lake tables: a table's versions, its commits and the files of each version.

Everything here is SQL, the DataFrame API or the log's own files, never Delta's JVM-only Python
classes (``DeltaTable`` goes through py4j): what works in a classic session works the same over
Spark Connect. The jars a session loads are :func:`deepspark.spark.delta_settings`'.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import unquote

from pyarrow import fs as pafs
from pyspark.sql import SparkSession

from deepspark.io.fs import file_url

LOG = "_delta_log"
# The session setting Delta copies into the next commit's userMetadata (SQL commands take no
# writer option).
USER_METADATA = "spark.databricks.delta.commitInfo.userMetadata"
_COMMIT = re.compile(r"^\d{20}\.json$")
_LOG_ENTRY = re.compile(r"^(\d{20})\.(?:json|checkpoint(?:\.[^/]*)?\.parquet)$")


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
    return _info(_actions(path, version))


def user_metadata(info: dict) -> dict:
    """A commit's ``userMetadata`` as deepspark writes it (JSON); text that is not is kept."""
    text = info.get("userMetadata") or "{}"
    try:
        meta = json.loads(text)
    except ValueError:
        return {"text": text}
    return meta if isinstance(meta, dict) else {"text": text}


def _info(actions: list[dict]) -> dict:
    return next((a["commitInfo"] for a in actions if "commitInfo" in a), {})


def written_files(path: str, version: int) -> list[str] | None:
    """The data files that the write committed as ``version`` added; None for another operation.

    For an overwrite they are the whole version (it removed every earlier file), for an append
    the batch it added; read from the one commit file, where :func:`version_files` replays the
    log in a Spark job.
    """
    actions = _actions(path, version)
    if _info(actions).get("operation") != "WRITE":
        return None
    return sorted(_files(path, actions, ("add",)))


def appended_since(path: str, version: int) -> list[str] | None:
    """The data files that appends added to the table after ``version``, sorted.

    None when any later commit did more than append (an overwrite, a restore, a merge, a delete)
    or its commit file is gone: what it changed is not a list of new rows, so a reader of the
    table since ``version`` must start again from the whole table.
    """
    commits = _commits_after(path, version)
    if commits is None:
        return None
    files = []
    for actions in commits:
        info = _info(actions)
        mode = str((info.get("operationParameters") or {}).get("mode", "")).strip('"')
        if info.get("operation") != "WRITE" or mode != "Append":
            return None
        if any("remove" in a for a in actions):
            return None
        files += _files(path, actions, ("add",))
    return sorted(files)


def changed_files(path: str, version: int) -> list[str] | None:
    """The data files that commits after ``version`` added or removed: every row they changed.

    A MERGE's rewritten files hold unchanged rows too, so the rows are a superset of the change.
    None when a later commit is another operation (a restore, a delete), its commit file is
    gone, or a removed file was vacuumed: then only the whole table says what changed.
    """
    commits = _commits_after(path, version)
    if commits is None:
        return None
    files: set[str] = set()
    for actions in commits:
        if _info(actions).get("operation") not in ("WRITE", "MERGE", "SET TBLPROPERTIES"):
            return None
        files.update(_files(path, actions, ("add", "remove")))
    filesystem, _ = pafs.FileSystem.from_uri(file_url(path))
    local = [pafs.FileSystem.from_uri(f)[1] for f in sorted(files)]
    if any(i.type == pafs.FileType.NotFound for i in filesystem.get_file_info(local)):
        return None
    return sorted(files)


def _commits_after(path: str, version: int) -> list[list[dict]] | None:
    """The actions of each commit after ``version``, oldest first; None if one is gone."""
    latest = latest_version(path)
    if latest is None or latest < version:
        return None
    try:
        return [_actions(path, n) for n in range(version + 1, latest + 1)]
    except FileNotFoundError:
        return None


def _files(path: str, actions: list[dict], kinds: tuple[str, ...]) -> list[str]:
    """The URLs of the files that ``actions`` of these kinds (add, remove) name."""
    root = file_url(path).rstrip("/")
    return [f"{root}/{unquote(a[k]['path'])}" for a in actions for k in kinds if k in a]


def mark(spark: SparkSession, path: str, metadata: str) -> None:
    """One commit that changes no row, carrying ``metadata`` as its userMetadata.

    A write with no rows (an empty append, a MERGE whose source is empty) commits nothing, yet
    a table must still record what it was last built from; a table property change is a commit.
    """
    stamp = str(time.time_ns())
    with session_conf(spark, {USER_METADATA: metadata}):
        spark.sql(f"ALTER TABLE {quoted(path)} SET TBLPROPERTIES ('deepspark.built' = '{stamp}')")


@dataclass(frozen=True)
class Commit:
    """One version of a table, as its commit file tells it (no Spark, no Delta library)."""

    version: int
    timestamp_ms: int
    operation: str  # WRITE, MERGE, RESTORE, ...
    mode: str  # a write's Overwrite or Append; "" for others
    rows: int | None  # rows the commit wrote (a MERGE: inserted or replaced), when it says
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
        out.append(
            Commit(
                number,
                int(info.get("timestamp", 0)),
                str(info.get("operation", "")),
                str((info.get("operationParameters") or {}).get("mode", "")).strip('"'),
                _rows(str(info.get("operation", "")), metrics),
                user_metadata(info),
            )
        )
    return out


def _rows(operation: str, metrics: dict) -> int | None:
    if operation == "MERGE":  # rows it added or replaced; numOutputRows counts copied ones too
        return int(metrics.get("numTargetRowsInserted", 0)) + int(
            metrics.get("numTargetRowsUpdated", 0)
        )
    return int(metrics["numOutputRows"]) if "numOutputRows" in metrics else None


def _actions(path: str, version: int) -> list[dict]:
    filesystem, log = _log(path)
    with filesystem.open_input_stream(f"{log}/{version:020d}.json") as fh:
        return [json.loads(line) for line in fh.read().decode().splitlines() if line]


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


def find_tables(roots: list[str]) -> list[str]:
    """Every Delta table (a folder with a ``_delta_log``) under ``roots``, sorted."""
    found = []
    for root in roots:
        filesystem, base = pafs.FileSystem.from_uri(file_url(root))
        selector = pafs.FileSelector(base, recursive=True, allow_not_found=True)
        for info in filesystem.get_file_info(selector):
            if info.type == pafs.FileType.Directory and info.base_name == LOG:
                table = info.path[: -len(LOG) - 1]
                found.append(root + table[len(base) :])
    return sorted(found)


def vacuum(spark: SparkSession, path: str, hours: float) -> None:
    """Delete the files no version of the last ``hours`` needs (Delta's VACUUM, in SQL).

    Delta refuses less than its 168-hour default unless its safety check is off: the retention
    is deepspark's setting (``paths.retention_days``), so the check is off for this command.
    """
    # Its listing runs spark.sql.sources.parallelPartitionDiscovery.parallelism tasks, 10000 by
    # default (delta-io/delta#220): 27-58 s per one-file table on 2 cores. As many as a
    # shuffle has: 1-2 s.
    settings = {
        "spark.databricks.delta.retentionDurationCheck.enabled": "false",
        "spark.sql.sources.parallelPartitionDiscovery.parallelism": spark.conf.get(
            "spark.sql.shuffle.partitions", "200"
        ),
    }
    with session_conf(spark, settings):
        spark.sql(f"VACUUM {quoted(path)} RETAIN {float(hours)} HOURS")


@contextmanager
def session_conf(spark: SparkSession, settings: dict[str, str]) -> Iterator[None]:
    """``settings`` in the session's conf for the block, each put back (or unset) after it."""
    before = {k: spark.conf.get(k, None) for k in settings}
    for k, v in settings.items():
        spark.conf.set(k, v)
    try:
        yield
    finally:
        for k, v in before.items():
            if v is None:
                spark.conf.unset(k)
            else:
                spark.conf.set(k, v)


def keep_log(spark: SparkSession, path: str, days: int) -> bool:
    """Keep the table's log (its versions' commits) at least ``days``; True if it was raised.

    Delta deletes commit files older than ``delta.logRetentionDuration`` (30 days by default)
    when it writes a checkpoint; a version whose commit is gone cannot be time-travelled to.
    """
    detail = spark.sql(f"DESCRIBE DETAIL {quoted(path)}").first()
    props = (detail["properties"] if detail is not None else None) or {}
    now = re.fullmatch(r"interval (\d+) days?", props.get("delta.logRetentionDuration", ""))
    if (int(now.group(1)) if now else 30) >= days:  # 30: Delta's default
        return False
    spark.sql(
        f"ALTER TABLE {quoted(path)} SET TBLPROPERTIES "
        f"('delta.logRetentionDuration' = 'interval {int(days)} days')"
    )
    return True
