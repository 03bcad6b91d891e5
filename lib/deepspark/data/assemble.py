"""Batch assembly: decoded row groups in, batches of a fixed size out, one copy per value.

Each row group arrives decoded in file order with the permutation its reader drew
(:class:`~deepspark.data.chunk.Chunk`). A batch is gathered straight from up to ``mix`` open
groups into a reused buffer (``ndarray.take`` into its slice): no per-row Python, no whole-group
permuted copy, no concatenation. Profiles before and after: BENCHMARKS.md, issue 17.
"""

from __future__ import annotations

import sys
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
    """Batch buffers, reused once nothing but this pool refers to them.

    A batch is 0.3-0.8 MB: allocated anew each time, its memory comes back from the kernel as
    fresh pages to fault in and zero. Whoever still uses a batch holds a reference to its arrays
    (the batch dict, a view, a tensor from ``torch.from_numpy``), so a buffer whose reference
    count shows only this pool cannot be seen by anyone and is safe to overwrite. A consumer that
    keeps every batch simply gets fresh ones: at most ``keep`` buffers are tracked.
    """

    # getrefcount's own argument, the loop variable, and the pool's tuple: nobody else.
    _UNUSED = 3

    def __init__(self, keep: int = 16) -> None:
        self._pool: list[tuple[np.ndarray, ...]] = []
        self._keep = keep
        self._layout: tuple | None = None

    def take(self, like: list[tuple[str, np.ndarray]], size: int) -> Batch:
        """A batch dict of ``size`` rows shaped like the ``(name, array)`` columns ``like``."""
        layout = tuple((k, (size, *v.shape[1:]), v.dtype) for k, v in like)
        if layout != self._layout:  # a new shape: the old buffers cannot serve it
            self._pool, self._layout = [], layout
        for arrays in self._pool:
            if all(sys.getrefcount(a) <= self._UNUSED for a in arrays):
                return {k: a for (k, _, _), a in zip(layout, arrays, strict=True)}
        arrays = tuple(np.empty(shape, dtype=dtype) for _, shape, dtype in layout)
        if len(self._pool) < self._keep:
            self._pool.append(arrays)
        return {k: a for (k, _, _), a in zip(layout, arrays, strict=True)}
