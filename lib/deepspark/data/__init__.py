"""The loader seam: feature Parquet -> numpy batches, Petastorm behind one small interface.

Training code sees :class:`FeatureLoader` and :func:`inspect_split` only, so the reader under them
can change (a newer Petastorm, or plain pyarrow) without touching the loop.
"""

from deepspark.data.loader import (
    FeatureLoader,
    Prefetcher,
    SplitInfo,
    inspect_split,
    read_split,
    to_url,
)

__all__ = ["FeatureLoader", "Prefetcher", "SplitInfo", "inspect_split", "read_split", "to_url"]
