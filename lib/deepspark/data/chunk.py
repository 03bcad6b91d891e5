"""What a reader hands the batch assembler: one decoded row group and the order to take it in."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

Batch = dict[str, np.ndarray]  # column name -> one array, rows along axis 0


class Chunk(NamedTuple):
    """One row group's columns, decoded in file order, and the permutation its reader drew.

    The permutation is applied by the assembler while it gathers batches (one copy per value),
    not by the reader (which would be a second copy of the whole group). ``None``: file order.
    """

    columns: Batch
    order: np.ndarray | None = None


def row_count(batch: Batch) -> int:
    """How many rows a batch (or a chunk's columns) holds."""
    return len(next(iter(batch.values())))
