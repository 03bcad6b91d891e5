"""The Petastorm reader behind :class:`~deepspark.data.FeatureLoader` (``backend: petastorm``).

Why the process used to abort at exit after a reader was stopped early ("terminate called without
an active exception", SIGABRT; benchmarks/petastorm_exit.py, BENCHMARKS.md): for ``file://`` URLs
Petastorm 0.12 opens every Parquet file through the legacy ``pyarrow.localfs``, whose ``open`` is
Python's own ``open``. pyarrow then reads each column chunk by calling that file object's
``read``, and holds the resulting Python ``bytes`` as a ``PyBuffer``. Decoding runs on pyarrow's
C++ CPU thread pool, and the column readers holding those buffers can be destroyed on a pool
thread after ``read_row_group`` has already returned, i.e. after ``reader.stop(); reader.join()``
(which only waits for Petastorm's own Python threads). Freeing a ``PyBuffer`` needs the GIL; once
the interpreter is finalizing, CPython answers a thread that asks for the GIL with
``pthread_exit``, whose forced unwind through the (noexcept) destructor calls ``std::terminate``.

The fix: hand Petastorm a filesystem whose ``open`` returns pyarrow's native files, so every
buffer is Arrow memory and releasing it never touches Python. Readers that a process never
closed are stopped and joined by an ``atexit`` hook, which runs before finalization starts.
"""

from __future__ import annotations

import atexit
import itertools
import threading
import warnings
from collections.abc import Iterator, Sequence
from typing import Any
from urllib.parse import urlparse

import numpy as np
import pyarrow.filesystem as legacyfs
from pyarrow import fs as pafs

from deepspark.data.chunk import Batch, Chunk, row_count
from deepspark.errors import InputError

_open_readers: set[Any] = set()  # started, not yet stopped and joined
_lock = threading.Lock()


class NativeLocalFileSystem(legacyfs.LocalFileSystem):
    """The legacy local filesystem Petastorm expects, opening files as native Arrow files."""

    def __init__(self) -> None:
        with warnings.catch_warnings():  # the legacy class is deprecated; Petastorm 0.12 needs it
            warnings.simplefilter("ignore", FutureWarning)
            super().__init__()
        self._native = pafs.LocalFileSystem()

    def open(self, path: str, mode: str = "rb") -> Any:
        """A native ``RandomAccessFile`` for reads; writes keep the legacy behaviour."""
        if mode != "rb":
            return super().open(path, mode)
        return self._native.open_input_file(str(path))


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
) -> Iterator[Chunk]:
    """This rank's row groups through ``make_batch_reader``; the reader stops when this closes.

    ``cycle`` opens one single-pass reader after another, each seeded by ``(seed, pass)``, rather
    than asking Petastorm for ``num_epochs=None``: its ventilator reshuffles the row groups every
    time it finds its queue full at the start of a pass, so how many shuffles a pass got depended
    on thread timing, and the same seed gave a different order under load (2 of 12 runs of
    ``test_shuffle_is_seeded_per_epoch`` failed beside three busy loops). Within one pass it
    shuffles once. Which row groups a rank gets does not depend on the seed (Petastorm shards by
    index).
    """
    from petastorm import make_batch_reader

    url = url if isinstance(url, str) else list(url)  # Petastorm takes a folder or files
    first = url if isinstance(url, str) else url[0]
    local = urlparse(first).scheme == "file"  # other schemes keep Petastorm's own resolver
    rng = np.random.default_rng(seed)
    for pass_no in itertools.count():
        reader = make_batch_reader(
            url,
            schema_fields=list(columns),
            reader_pool_type="thread",
            workers_count=workers,
            seed=_pass_seed(seed, pass_no),
            shuffle_row_groups=shuffle,
            num_epochs=1,
            cur_shard=rank if world > 1 else None,
            shard_count=world if world > 1 else None,
            filesystem=NativeLocalFileSystem() if local else None,
        )
        with _lock:
            _open_readers.add(reader)
        read = 0
        try:
            for chunk in reader:
                read += 1
                cols = _columns(chunk, columns)
                # Petastorm decodes in its own threads; rows are permuted as batches are gathered
                yield Chunk(cols, rng.permutation(row_count(cols)) if shuffle else None)
        finally:
            _stop(reader)
        if not cycle or not read:  # a pass that read nothing would cycle forever
            return


def _pass_seed(seed: int, pass_no: int) -> int:
    # The first pass keeps the caller's seed (the order one-pass readers always had).
    if pass_no == 0:
        return seed
    return int(np.random.SeedSequence([seed, pass_no]).generate_state(1)[0])


def _columns(chunk: object, columns: Sequence[str]) -> Batch:
    out = {}
    for c in columns:
        v = np.asarray(getattr(chunk, c))
        if v.dtype == object:  # list cells Petastorm could not stack (ragged): fail by name
            try:
                v = np.stack(v)
            except ValueError as e:
                raise InputError(f"column {c!r}: rows have different lengths") from e
        out[c] = v
    return out


def _stop(reader: Any) -> None:
    reader.stop()
    reader.join()
    with _lock:
        _open_readers.discard(reader)


@atexit.register
def _stop_open_readers() -> None:
    # A generator left open until exit would be closed during finalization, when Petastorm's
    # daemon threads can no longer run: stop them while the interpreter is still whole.
    with _lock:
        readers = list(_open_readers)
    for reader in readers:
        _stop(reader)
