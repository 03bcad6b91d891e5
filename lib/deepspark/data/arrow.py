"""The pyarrow reader behind :class:`~deepspark.data.FeatureLoader` (``backend: arrow``).

It reproduces Petastorm's contract exactly (row groups enumerated file by file in path order, rank
``r`` of ``w`` taking groups ``r, r+w, ...``, their order shuffled per epoch from a seed), and reads
each group with pyarrow's native filesystem, turning a ``list<float>`` column into a 2-D array by
reshaping its flat values buffer: no per-row Python objects, no pandas.
"""

from __future__ import annotations

import itertools
import math
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pyarrow import fs as pafs

from deepspark.data.chunk import Chunk
from deepspark.errors import InputError

Group = tuple[str, int, int]  # (file, row group index, rows)

# pyarrow's jemalloc pool hands freed pages back to the kernel at once (decay 0 ms), so each
# decoded row group (~16 MB) faults its pages in and has them zeroed anew: ~190 MB of page faults
# per image epoch. Kept for a second, the pages of the group just consumed are reused by the next
# one (page faults per epoch: 48k -> 4k, samples/s +5 %; BENCHMARKS.md). RSS stays flat: freed
# memory is reused, not accumulated, and goes back to the kernel after the decay.
DECAY_MS = 1000


def retain_freed_memory() -> None:
    """Let Arrow's jemalloc keep freed pages for :data:`DECAY_MS` (process-wide; idempotent)."""
    global _retaining
    if not _retaining and pa.default_memory_pool().backend_name == "jemalloc":
        pa.jemalloc_set_decay_ms(DECAY_MS)
    _retaining = True


_retaining = False


def split_files(url: str | Sequence[str]) -> tuple[pafs.FileSystem, list[str]]:
    """A split's data files, sorted by path; ``_``/``.``-prefixed names (Spark's markers) skipped.

    ``url`` is a folder, or the exact file URLs of a table version (a Delta table's folder also
    holds files of its older versions), all on one filesystem.

    Raises ``FileNotFoundError`` when the split folder does not exist.
    """
    if not isinstance(url, str):
        if not url:
            return pafs.LocalFileSystem(), []
        filesystem = pafs.FileSystem.from_uri(url[0])[0]
        return filesystem, sorted(pafs.FileSystem.from_uri(u)[1] for u in url)
    filesystem, root = pafs.FileSystem.from_uri(url)
    infos = filesystem.get_file_info(pafs.FileSelector(root, recursive=True))
    files = sorted(
        i.path
        for i in infos
        if i.type == pafs.FileType.File
        and i.path.endswith(".parquet")
        and not any(p.startswith(("_", ".")) for p in Path(i.path).relative_to(root).parts)
    )
    return filesystem, files


def row_groups(url: str | Sequence[str]) -> tuple[pafs.FileSystem, list[Group]]:
    """Every row group of a split, in Petastorm's enumeration order (files sorted by path)."""
    filesystem, files = split_files(url)
    groups: list[Group] = []
    for path in files:
        with filesystem.open_input_file(path) as fh:
            meta = pq.ParquetFile(fh).metadata
            groups += [(path, g, meta.row_group(g).num_rows) for g in range(meta.num_row_groups)]
    return filesystem, groups


def chunks(
    url: str | Sequence[str],
    columns: Sequence[str],
    *,
    rank: int,
    world: int,
    shuffle: bool,
    seed: int,
    cycle: bool,
    workers: int,
    ahead: int = 0,
    rows: int | None = None,
) -> Iterator[Chunk]:
    """This rank's row groups, decoded by ``workers`` threads, order preserved.

    Up to ``workers + ahead`` groups are decoded or decoding beyond the one last handed out. The
    loader asks for one (``ahead=1``): reading ``mix`` ahead, so that all the groups a batch
    draws from could be replaced at once, measured no faster (0.88-0.95 of the floor against
    0.93-1.00 with 1, BENCHMARKS.md) and kept 4 more decoded groups (~64 MB) alive.

    With ``shuffle`` the groups come in a seeded order and each carries a row permutation drawn
    by the thread that decoded it (seeded by its position, so the result does not depend on which
    thread finished first); the assembler applies it while it gathers batches.

    ``rows`` set: no group is read once the groups read so far hold that many rows. A training
    epoch takes ``steps * batch`` rows; reading ahead past them decoded up to ``workers + ahead``
    groups for nothing at the end of every epoch (4 of 32 in the benchmark, 12 % of the decode).
    """
    retain_freed_memory()
    filesystem, groups = row_groups(url)
    if len(groups) < world:
        raise InputError(f"{url}: {len(groups)} row group(s) for {world} shards")
    mine = groups[rank::world]
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="deepspark-read")
    pending: deque[Future] = deque()
    wanted = float("inf") if rows is None else rows
    try:
        for cycle_no in itertools.count():
            rng = np.random.default_rng([seed, cycle_no])
            order = rng.permutation(len(mine)) if shuffle else range(len(mine))
            for position, i in enumerate(order):
                if wanted <= 0:
                    break
                row_seed = [seed, cycle_no, position] if shuffle else None
                pending.append(pool.submit(_read_group, filesystem, mine[i], columns, row_seed))
                wanted -= mine[i][2]
                if len(pending) > workers + ahead:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
            if not cycle or wanted <= 0:
                return
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _read_group(
    filesystem: pafs.FileSystem, group: Group, columns: Sequence[str], row_seed: list[int] | None
) -> Chunk:
    """One row group as numpy arrays; with ``row_seed``, the row permutation drawn from it."""
    path, index, _ = group
    with filesystem.open_input_file(path) as fh:
        table = pq.ParquetFile(fh).read_row_group(index, columns=list(columns))
    out = {c: _to_numpy(table.column(c), c, path) for c in columns}
    if row_seed is None:
        return Chunk(out)
    return Chunk(out, np.random.default_rng(row_seed).permutation(table.num_rows))


def _to_numpy(column: pa.ChunkedArray, name: str, path: str) -> np.ndarray:
    # combine_chunks copies even a single chunk (pyarrow 14): the usual case needs no copy.
    array = column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()
    if not (pa.types.is_list(array.type) or pa.types.is_large_list(array.type)):
        return array.to_numpy(zero_copy_only=False)
    n = len(array)
    if n == 0:
        return np.empty((0, 0), dtype=array.type.value_type.to_pandas_dtype())
    lengths = pc.min_max(pc.list_value_length(array))
    lo, hi = lengths["min"].as_py(), lengths["max"].as_py()
    if lo != hi or array.null_count:
        raise InputError(f"{path}: column {name!r} rows have different lengths ({lo}..{hi})")
    return array.flatten().to_numpy(zero_copy_only=False).reshape(n, hi)


def footer_stats(url: str | Sequence[str]) -> dict[str, tuple[int | None, str | None, str | None]]:
    """Per top-level column of a Parquet table at ``url``: (nulls, min, max), from the footers.

    Parquet keeps these per row group anyway, exactly, so reading them costs no pass over the
    data. A statistic a writer left out is None; min and max are text (None when all null).
    """
    filesystem, files = split_files(url)
    acc: dict[str, list] = {}
    for file in files:
        with filesystem.open_input_file(file) as fh:
            meta = pq.ParquetFile(fh).metadata
        for g in range(meta.num_row_groups):
            group = meta.row_group(g)
            for i in range(group.num_columns):
                chunk = group.column(i)
                name = chunk.path_in_schema
                if "." in name:  # a leaf of a nested column: those get no statistics
                    continue
                nulls, lo, hi = acc.setdefault(name, [0, None, None])
                st = chunk.statistics
                if st is None or not st.has_null_count:
                    acc[name][0] = None
                    continue
                acc[name][0] = None if nulls is None else nulls + st.null_count
                if st.has_min_max:
                    acc[name][1] = st.min if lo is None else _spark_order(min, lo, st.min)
                    acc[name][2] = st.max if hi is None else _spark_order(max, hi, st.max)
    return {k: (v[0], _text(v[1]), _text(v[2])) for k, v in acc.items()}


def _spark_order(pick, a: object, b: object) -> object:  # noqa: ANN001
    # Spark orders NaN above every number; Python's min and max depend on argument order.
    nan_a, nan_b = (isinstance(v, float) and math.isnan(v) for v in (a, b))
    if nan_a or nan_b:
        if pick is max or (nan_a and nan_b):
            return a if nan_a else b
        return b if nan_a else a
    return pick(a, b)


def _text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, float) and not math.isfinite(value):  # as Spark casts them to text
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


def footer_rows(url: str | Sequence[str]) -> int:
    """Rows of a Parquet table at ``url``, from its footers."""
    filesystem, files = split_files(url)
    total = 0
    for file in files:
        with filesystem.open_input_file(file) as fh:
            total += pq.ParquetFile(fh).metadata.num_rows
    return total
