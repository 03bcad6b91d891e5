"""The feature loader as a torch ``IterableDataset``, for training loops that are not ours.

Lightning, Ray Train or a plain loop take it through ``DataLoader(ds, batch_size=None)``: the
dataset yields whole batches (dicts of tensors), already shuffled and assembled by
:class:`~deepspark.data.FeatureLoader`, so the DataLoader neither batches nor collates.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from deepspark.data.loader import FeatureLoader, inspect_split, to_url
from deepspark.errors import InputError


class FeatureDataset(IterableDataset):
    """Batches of a feature split as dicts of tensors, sharded by rank *and* DataLoader worker.

    Shard ``rank * workers + worker`` of ``world * workers`` reads row groups ``shard, shard +
    shards, ...`` (Petastorm's sharding), so ranks and workers never share a row. The order is
    seeded per (``seed``, epoch, shard): call :meth:`set_epoch` before each epoch, as with
    ``DistributedSampler`` (with ``persistent_workers=True`` the workers keep the epoch they
    started with).

    ``equal_steps`` off (default): one pass, every row exactly once per epoch, each shard's last
    batch possibly short. On: every shard yields exactly ``rows // (shards * batch_size)`` full
    batches, cycling its row groups as needed, which DDP needs (a rank that runs out first
    leaves the others waiting in an all-reduce); rows of uneven shards repeat or wait a turn.

    ``rank``/``world`` default to ``torch.distributed``'s when it is initialized, else 0 and 1;
    they are read when iteration starts, so the dataset can be built before the process group.
    """

    def __init__(
        self,
        path: str,
        columns: Sequence[str] = ("x", "y"),
        *,
        batch_size: int,
        shuffle: bool = False,
        seed: int = 0,
        equal_steps: bool = False,
        rank: int | None = None,
        world: int | None = None,
        mix: int = 4,
        threads: int = 1,
    ) -> None:
        super().__init__()
        if batch_size < 1:
            raise ValueError(f"batch_size: expected >= 1, found {batch_size}")
        self.url, self.columns = to_url(path), list(columns)
        self.batch_size, self.shuffle, self.seed = batch_size, shuffle, seed
        self.equal_steps, self.rank, self.world = equal_steps, rank, world
        self.mix, self.threads = mix, threads
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """The epoch the next iteration reads (its shuffle order)."""
        self.epoch = epoch

    def shard(self) -> tuple[int, int]:
        """``(shard, shards)`` of the calling process and DataLoader worker."""
        rank, world = self.rank, self.world
        if rank is None or world is None:
            dist = torch.distributed
            ready = dist.is_available() and dist.is_initialized()
            rank = (dist.get_rank() if ready else 0) if rank is None else rank
            world = (dist.get_world_size() if ready else 1) if world is None else world
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        return rank * workers + worker, world * workers

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        shard, shards = self.shard()
        split = inspect_split(self.url)
        if split.row_groups < shards:
            raise InputError(
                f"{self.url}: {split.row_groups} row group(s) for {shards} shards "
                "(ranks x DataLoader workers); use fewer workers or write more row groups"
            )
        steps = split.rows // (shards * self.batch_size) if self.equal_steps else None
        loader = FeatureLoader(
            self.url, self.columns, batch_size=self.batch_size, rank=shard, world=shards,
            shuffle=self.shuffle, seed=self.seed, steps=steps, mix=self.mix, workers=self.threads,
            backend="arrow",
        )  # fmt: skip
        for batch in loader.epoch(self.epoch):
            yield {k: _tensor(v) for k, v in batch.items()}


def _tensor(v: np.ndarray) -> torch.Tensor:
    # An unshuffled batch can be a view of Arrow's read-only buffers; torch's tensors are
    # writable by contract, so those are copied (shuffled batches are the loader's own buffers).
    return torch.from_numpy(v if v.flags.writeable else v.copy())
