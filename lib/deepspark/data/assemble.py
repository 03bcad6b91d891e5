"""Batch assembly: decoded row groups in, batches of a fixed size out, one copy per value.

Each row group arrives decoded in file order with the permutation its reader drew
(:class:`~deepspark.data.chunk.Chunk`). A batch is gathered straight from up to ``mix`` open
groups into a reused buffer (``ndarray.take`` into its slice): no per-row Python, no whole-group
permuted copy, no concatenation. Profiles before and after: BENCHMARKS.md, issue 17.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Iterator

import numpy as np

from deepspark.data.chunk import Batch, Chunk, row_count
from deepspark.errors import InputError


def assemble(chunks: Iterator[Chunk], size: int, mix: int, steps: int | None) -> Iterator[Batch]:
    """Batches of ``size`` rows drawn evenly from up to ``mix`` open row groups at a time.

    ``steps`` set: stop after that many full batches; a source that ends first is an error.
    Unset: one pass, the last batch possibly short. Without a permutation and with one group
    open, a batch that one group covers is a view of it (no copy at all).
    """
    if steps == 0:
        return
    source = iter(chunks)
    open_: list[_Slot] = []
    done, ended, buffers = 0, False, _Buffers()
    while steps is None or done < steps:
        out: Batch | None = None
        filled = 0
        while filled < size:
            while len(open_) < mix and not ended:
                nxt = next(source, None)
                if nxt is None:
                    ended = True
                elif row_count(nxt.columns):
                    open_.append(_Slot(nxt))
            if not open_:
                break
            if out is None and len(open_) == 1 and (view := open_[0].view_of(size)) is not None:
                out, filled = view, size
            else:
                out = out if out is not None else buffers.take(open_[0].columns, size)
                share = -(-(size - filled) // len(open_))  # ceil: spread over the open groups
                for slot in open_:
                    filled += slot.copy_into(out, filled, min(share, size - filled))
            if any(slot.cursor == slot.n for slot in open_):
                open_ = [slot for slot in open_ if slot.cursor < slot.n]
        if filled == 0 or (filled < size and steps is not None):
            break
        yield out if filled == size else {k: v[:filled] for k, v in out.items()}
        done += 1
        if filled < size:
            return
    if steps is not None and done < steps:
        raise InputError(f"the shard ran dry after {done} of {steps} batches")


class _Slot:
    """One open row group and how many of its rows the batches have taken."""

    __slots__ = ("columns", "cursor", "n", "order")

    def __init__(self, chunk: Chunk) -> None:
        self.columns, self.order = list(chunk.columns.items()), chunk.order
        self.cursor, self.n = 0, row_count(chunk.columns)

    def view_of(self, size: int) -> Batch | None:
        """The next ``size`` rows without a copy, when they are contiguous in the group."""
        if self.order is not None or self.n - self.cursor < size:
            return None
        a, self.cursor = self.cursor, self.cursor + size
        return {k: v[a : self.cursor] for k, v in self.columns}

    def copy_into(self, out: Batch, at: int, want: int) -> int:
        """Copy up to ``want`` of the next rows into ``out[at:]``; returns how many."""
        a = self.cursor
        k = min(want, self.n - a)
        self.cursor = a + k
        if self.order is None:
            for name, v in self.columns:
                out[name][at : at + k] = v[a : a + k]
        else:  # mode="clip": with the default "raise", numpy gathers into a temporary first
            rows = self.order[a : a + k]
            for name, v in self.columns:
                v.take(rows, 0, out[name][at : at + k], "clip")
        return k


class _Buffers:
    """Batch buffers, each reused once nothing refers to the batch last handed out from it.

    A batch is 0.3-0.8 MB: allocated anew each time, its memory comes back from the kernel as
    fresh pages to fault in and zero. So the pool keeps each buffer's memory, and hands it out
    as a new ``uint8`` array over it, the *lease*, that every column of the batch is a view of;
    of the lease it keeps only a weak reference. numpy points a view of a view at the first
    array up the chain that owns its memory or whose base is not an array: here the lease (its
    base is a ``memoryview``), so every view of a column, and every tensor ``torch.from_numpy``
    makes of one, keeps the lease alive. Once the weak reference is dead nobody can reach the
    memory any more, and only then is it overwritten. Weak references are a language guarantee;
    reference counts are not (3.14 counts differently), so no count is read. A consumer that
    keeps every batch simply gets fresh buffers: at most ``keep`` are tracked. Batches with a
    column of Python objects (strings, read for evaluation only) are allocated anew each time.
    """

    _ALIGN = 64  # each column starts on a cache line (and any dtype's alignment)

    def __init__(self, keep: int = 16) -> None:
        self._pool: list[_Buffer] = []
        self._keep = keep
        self._layout: tuple | None = None
        self._columns: list[tuple[str, tuple[int, ...], np.dtype, int]] = []  # offset last
        self._bytes = 0

    def take(self, like: list[tuple[str, np.ndarray]], size: int) -> Batch:
        """A batch dict of ``size`` rows shaped like the ``(name, array)`` columns ``like``."""
        layout = tuple((k, (size, *v.shape[1:]), v.dtype) for k, v in like)
        if any(dtype.hasobject for _, _, dtype in layout):  # strings: references, not bytes
            return {k: np.empty(shape, dtype) for k, shape, dtype in layout}
        if layout != self._layout:  # a new shape: the old buffers cannot serve it
            self._pool, self._layout = [], layout
            self._columns, self._bytes = [], 0
            for name, shape, dtype in layout:
                self._columns.append((name, shape, dtype, self._bytes))
                n = math.prod(shape) * dtype.itemsize
                self._bytes += -(-n // self._ALIGN) * self._ALIGN
        buffer = next((b for b in self._pool if b.free()), None)
        if buffer is None:
            buffer = _Buffer(self._bytes)
            if len(self._pool) < self._keep:
                self._pool.append(buffer)
        lease = buffer.lease()
        return {k: np.ndarray(shape, dtype, lease, at) for k, shape, dtype, at in self._columns}


class _Buffer:
    """One batch's memory and a weak reference to the array it was last handed out as."""

    __slots__ = ("_leased", "_memory")

    def __init__(self, nbytes: int) -> None:
        # Behind a memoryview: a lease over the array itself would have the array as its base,
        # and numpy would point the columns' views past the lease, straight at the array.
        self._memory = memoryview(np.empty(nbytes, np.uint8))
        self._leased: weakref.ref[np.ndarray] | None = None

    def free(self) -> bool:
        """Whether no reference to the last lease (or any view or tensor of it) remains."""
        return self._leased is None or self._leased() is None

    def lease(self) -> np.ndarray:
        """The memory as a new ``uint8`` array, the one object every batch view will keep."""
        lease = np.frombuffer(self._memory, np.uint8)
        self._leased = weakref.ref(lease)
        return lease
