"""Sharded, seeded, shuffled batches of feature columns, read by pyarrow or Petastorm.

Petastorm shards by row group (rank ``r`` of ``w`` reads row groups ``r, r+w, ...``), so shards
are uneven whenever row groups are. DDP needs every rank to take the same number of steps, or
the ranks that run out first leave the others waiting in an all-reduce forever. A training
epoch is therefore a fixed number of steps, ``rows // (world * batch)``: each rank cycles its
shard (``num_epochs=None``) until it has produced that many batches.
"""

from __future__ import annotations

import hashlib
import logging
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from pyarrow import fs as pafs

from deepspark.data.assemble import assemble
from deepspark.data.backend import BACKENDS, choose_backend
from deepspark.data.chunk import Batch, row_count
from deepspark.errors import InputError

log = logging.getLogger(__name__)
# Petastorm 0.12 calls pyarrow APIs that pyarrow 14 marks deprecated, once per reader: the pins
# keep them working, so the warnings are noise in every training log.
warnings.filterwarnings("ignore", category=FutureWarning, module=r"petastorm(\..*)?$")
warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"petastorm(\..*)?$")
# ...and it logs at INFO, per reader, that our plain Parquet has no Petastorm metadata (expected).
logging.getLogger("petastorm").setLevel(logging.WARNING)


def to_url(path: str) -> str:
    """A dataset path as the URL Petastorm wants (local paths become absolute ``file://``)."""
    if "://" in path:
        return path
    return Path(path).resolve().as_uri()


@dataclass(frozen=True)
class SplitInfo:
    """What Parquet metadata says about one feature split."""

    url: str
    rows: int
    files: int
    row_groups: int
    columns: dict[str, str]  # name -> Arrow type
    digest: str = ""  # of the data files' names and sizes (the MLflow dataset digest)
    # A Delta split: its version and that version's file URLs (the folder holds older ones too).
    version: int | None = None
    file_urls: tuple[str, ...] | None = None

    @property
    def data(self) -> str | tuple[str, ...]:
        """What a reader scans: the version's files, or the whole folder."""
        return self.url if self.file_urls is None else self.file_urls


def inspect_split(
    path: str, *, files: Sequence[str] | None = None, version: int | None = None
) -> SplitInfo:
    """Rows, files, row groups and column types of a split, from footers only (no data read).

    ``files``: exactly these data files (the URLs of a Delta ``version``), not the folder's.
    """
    from deepspark.data.arrow import split_files

    url, listed = to_url(path), None if files is None else sorted(files)
    try:
        filesystem, found = split_files(url if listed is None else listed)
        if listed is not None:  # listed, so each must exist: a vacuumed version fails here
            for f in found:
                if filesystem.get_file_info(f).type != pafs.FileType.File:
                    raise FileNotFoundError(f)
    except FileNotFoundError as e:
        if listed is not None:
            raise InputError(
                f"{path}: version {version} of the feature split lists {e}, which is gone "
                "(vacuumed?); rebuild the features or train on a newer version"
            ) from e
        raise InputError(f"{path}: feature split not found; run the features stage first") from e
    if not found:
        raise InputError(f"{path}: no Parquet files in the feature split")
    rows = groups = 0
    columns: dict[str, str] = {}
    sizes = []
    for f in found:
        with filesystem.open_input_file(f) as fh:
            meta = pq.ParquetFile(fh).metadata
            sizes.append(f"{Path(f).name}:{fh.size()}")
        rows += meta.num_rows
        groups += meta.num_row_groups
        if not columns:
            columns = {field.name: str(field.type) for field in meta.schema.to_arrow_schema()}
    digest = hashlib.sha256("\n".join(sizes).encode()).hexdigest()[:16]
    urls = None if listed is None else tuple(listed)
    return SplitInfo(url, rows, len(found), groups, columns, digest, version, urls)


def read_split(
    url: str | Sequence[str],
    columns: Sequence[str],
    *,
    workers: int = 1,
    backend: str = "arrow",
    limit: int | None = None,
) -> Batch:
    """Every row of a split (or its first ``limit``), in file order, as one array per column."""
    loader = FeatureLoader(url, columns, batch_size=4096, workers=workers, backend=backend)
    parts: dict[str, list[np.ndarray]] = {c: [] for c in columns}
    n = 0
    for batch in loader.epoch(0):
        for k, v in batch.items():
            parts[k].append(v)
        n += row_count(batch)
        if limit is not None and n >= limit:
            break
    return {k: np.concatenate(v)[:limit] for k, v in parts.items()}


class FeatureLoader:
    """Batches of ``columns`` from one split: this rank's shard, shuffled and seeded per epoch.

    ``steps`` set: an epoch is exactly that many full batches, cycling the shard as needed (for
    training). ``steps`` unset: one pass over the shard, the last batch possibly short (for
    evaluation). Shuffling, all seeded from ``(seed, epoch, rank)``: the order of the row groups,
    the rows within each group (a permutation drawn by the thread that decoded it), and the
    batches, each drawn evenly from ``mix`` row groups at a time. Assembling a batch is one
    gather per open group into a reused buffer (:mod:`deepspark.data.assemble`), the only copy
    of the values after decoding.
    """

    def __init__(
        self,
        url: str | Sequence[str],  # a split's folder, or exactly its files (SplitInfo.data)
        columns: Sequence[str],
        *,
        batch_size: int,
        rank: int = 0,
        world: int = 1,
        shuffle: bool = False,
        seed: int = 0,
        steps: int | None = None,
        mix: int = 4,
        workers: int = 1,
        backend: str = "arrow",
    ) -> None:
        self.url, self.columns = url, list(columns)
        self.batch_size, self.rank, self.world = batch_size, rank, world
        self.shuffle, self.seed, self.steps = shuffle, seed, steps
        self.mix, self.workers = max(1, mix), workers
        # ``auto`` is normally resolved by the job before launch; here for direct use.
        self.backend = choose_backend(backend, workers)

    def _reader_options(self) -> dict:
        if self.backend != "arrow":  # Petastorm's reader has its own read-ahead
            return {}
        rows = None if self.steps is None else self.steps * self.batch_size
        return {"ahead": 1, "rows": rows}

    def epoch(self, epoch: int = 0) -> Iterator[Batch]:
        """The batches of one epoch (a generator; closing it stops the reader)."""
        if self.backend == "petastorm":  # imported only here: it needs Petastorm's pyarrow pin
            from deepspark.data import petastorm_reader as reader
        else:
            from deepspark.data import arrow as reader
        source = reader.chunks(
            self.url, self.columns, rank=self.rank, world=self.world, shuffle=self.shuffle,
            seed=_mix(self.seed, epoch, self.rank), cycle=self.steps is not None,
            workers=self.workers, **self._reader_options(),
        )  # fmt: skip
        mix = self.mix if self.shuffle else 1  # unshuffled: groups in order, batches in order
        try:
            yield from assemble(source, self.batch_size, mix, self.steps)
        finally:
            source.close()


def _mix(seed: int, epoch: int, rank: int) -> int:
    # One independent 32-bit seed per (seed, epoch, rank): Petastorm takes an int seed.
    return int(np.random.SeedSequence([seed, epoch, rank]).generate_state(1)[0])


__all__ = ["BACKENDS", "FeatureLoader", "SplitInfo", "inspect_split", "to_url"]
