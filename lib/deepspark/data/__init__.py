"""The loader seam: feature Parquet -> numpy batches, the reader behind one small interface.

Training code sees :class:`FeatureLoader` and :func:`inspect_split` only, so the reader under them
(pyarrow, or Petastorm's ``make_batch_reader``; :func:`choose_backend` decides) can change
without touching the loop.
"""

from deepspark.data import backend
from deepspark.data.backend import choose_backend
from deepspark.data.loader import (
    FeatureLoader,
    SplitInfo,
    inspect_split,
    read_split,
    to_url,
)
from deepspark.data.prefetch import Prefetcher

__all__ = [
    "FeatureLoader",
    "Prefetcher",
    "SplitInfo",
    "backend",
    "choose_backend",
    "inspect_split",
    "read_split",
    "to_url",
]
