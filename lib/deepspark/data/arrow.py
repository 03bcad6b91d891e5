"""The pyarrow reader behind :class:`~deepspark.data.FeatureLoader` (``backend: arrow``).

It reproduces Petastorm's contract exactly (row groups enumerated file by file in path order, rank
``r`` of ``w`` taking groups ``r, r+w, ...``, their order shuffled per epoch from a seed), and reads
each group with pyarrow's native filesystem, turning a ``list<float>`` column into a 2-D array by
reshaping its flat values buffer: no per-row Python objects, no pandas.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pyarrow import fs as pafs

from deepspark.errors import InputError

Group = tuple[str, int]  # (file, row group index)


def split_files(url: str) -> tuple[pafs.FileSystem, list[str]]:
    """A split's data files, sorted by path; ``_``/``.``-prefixed names (Spark's markers) skipped.

    Raises ``FileNotFoundError`` when the split folder does not exist.
    """
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


def row_groups(url: str) -> tuple[pafs.FileSystem, list[Group]]:
    """Every row group of a split, in Petastorm's enumeration order (files sorted by path)."""
    filesystem, files = split_files(url)
    groups: list[Group] = []
    for path in files:
        with filesystem.open_input_file(path) as fh:
            groups += [(path, g) for g in range(pq.ParquetFile(fh).metadata.num_row_groups)]
    return filesystem, groups


def chunks(
    url: str,
    columns: Sequence[str],
    *,
    rank: int,
    world: int,
    shuffle: bool,
    seed: int,
    cycle: bool,
    workers: int,
) -> Iterator[dict[str, np.ndarray]]:
    """This rank's row groups as column arrays, ``workers`` groups read ahead, order preserved.

    With ``shuffle`` the groups come in a seeded order and each group's rows are permuted by the
    thread that decoded it (seeded by its position), so shuffling runs in parallel, off the
    consumer's thread, and the result does not depend on which thread finished first.
    """
    filesystem, groups = row_groups(url)
    if len(groups) < world:
        raise InputError(f"{url}: {len(groups)} row group(s) for {world} shards")
    mine = groups[rank::world]

    def read(group: Group, row_seed: list[int] | None) -> dict[str, np.ndarray]:
        path, index = group
        with filesystem.open_input_file(path) as fh:
            table = pq.ParquetFile(fh).read_row_group(index, columns=list(columns))
        out = {c: _to_numpy(table.column(c), c, path) for c in columns}
        if row_seed is not None:
            order = np.random.default_rng(row_seed).permutation(table.num_rows)
            out = {c: np.take(v, order, axis=0) for c, v in out.items()}
        return out

    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="deepspark-read")
    pending: deque[Future] = deque()
    try:
        for cycle_no in itertools.count():
            rng = np.random.default_rng([seed, cycle_no])
            order = rng.permutation(len(mine)) if shuffle else range(len(mine))
            for position, i in enumerate(order):
                row_seed = [seed, cycle_no, position] if shuffle else None
                pending.append(pool.submit(read, mine[i], row_seed))
                if len(pending) > workers:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
            if not cycle:
                return
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _to_numpy(column: pa.ChunkedArray, name: str, path: str) -> np.ndarray:
    array = column.combine_chunks()
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
