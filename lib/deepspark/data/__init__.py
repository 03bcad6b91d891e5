"""The loader seam: feature Parquet -> numpy batches, the reader behind one small interface.

Training code sees :class:`FeatureLoader` and :func:`inspect_split` only, so the reader under them
(pyarrow, or Petastorm's ``make_batch_reader``; :func:`choose_backend` decides) can change
without touching the loop. :class:`FeatureDataset` wraps the same loader as a torch
``IterableDataset`` for other training loops (imported on first use: it needs torch).
"""

from typing import Any

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


def __getattr__(name: str) -> Any:
    if name == "FeatureDataset":  # torch is imported only by those who ask for the dataset
        from deepspark.data.dataset import FeatureDataset

        return FeatureDataset
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "FeatureDataset",
    "FeatureLoader",
    "Prefetcher",
    "SplitInfo",
    "backend",
    "choose_backend",
    "inspect_split",
    "read_split",
    "to_url",
]
