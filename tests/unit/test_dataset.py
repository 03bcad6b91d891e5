"""FeatureDataset: the loader as a torch IterableDataset under a plain DataLoader.

Every row exactly once per epoch whatever the ranks and workers, a seeded order, equal steps
per shard when asked, and one line when there are too few row groups to shard.
"""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader

from deepspark.data import FeatureDataset, inspect_split
from deepspark.errors import InputError
from tests.synthetic import write_features

# 8 row groups of uneven sizes (one file each): 4 shards of 2 groups, never two of equal size.
SIZES = [5, 40, 17, 3, 60, 9, 26, 12]


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    root = tmp_path_factory.mktemp("dataset")
    write_features(root, "p", "image", {"train": SIZES})
    return str(root / "features" / "p" / "train")


def rows(batches) -> list[tuple]:
    """Each row as (y, x...) in the order the batches gave them."""
    out = []
    for b in batches:
        x, y = b["x"].numpy(), b["y"].numpy()
        out += [(int(label), *map(float, row)) for label, row in zip(y, x, strict=True)]
    return out


def epoch(split, *, workers=0, rank=None, world=None, epoch=0, **kw) -> list[tuple]:
    ds = FeatureDataset(split, batch_size=8, rank=rank, world=world, **kw)
    ds.set_epoch(epoch)
    return rows(DataLoader(ds, batch_size=None, num_workers=workers))


def all_rows(split) -> list[tuple]:
    return sorted(epoch(split))


@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.parametrize("shuffle", [False, True])
def test_every_row_exactly_once_per_epoch(split, workers, shuffle):
    got = epoch(split, workers=workers, shuffle=shuffle, seed=3)
    assert len(got) == sum(SIZES) and len(set(got)) == sum(SIZES)
    assert sorted(got) == all_rows(split)


def test_two_ranks_with_two_workers_each_partition_the_rows(split):
    ranks = [epoch(split, workers=2, rank=r, world=2, shuffle=True) for r in (0, 1)]
    assert not set(ranks[0]) & set(ranks[1])  # no row on both ranks
    assert sorted(ranks[0] + ranks[1]) == all_rows(split)  # none dropped


@pytest.mark.parametrize("workers", [0, 2])
def test_the_order_is_seeded_per_seed_and_epoch(split, workers):
    def order(seed, e):
        return epoch(split, workers=workers, shuffle=True, seed=seed, epoch=e)

    assert order(1, 0) == order(1, 0)  # same seed and epoch: the same batches, in order
    assert order(1, 0) != order(1, 1)  # a new epoch reshuffles
    assert order(1, 0) != order(2, 0)
    assert order(1, 0) != sorted(order(1, 0))


def test_equal_steps_gives_every_shard_the_same_full_batches(split):
    # 4 shards (2 ranks x 2 workers) over 172 rows: 172 // (4 * 8) = 5 batches of 8 each.
    for rank in (0, 1):
        ds = FeatureDataset(split, batch_size=8, rank=rank, world=2, shuffle=True, equal_steps=True)
        sizes = [len(b["y"]) for b in DataLoader(ds, batch_size=None, num_workers=2)]
        assert sizes == [8] * 10  # 5 per worker, 2 workers


def test_batches_are_writable_tensors_of_the_columns(split):
    (first, *_) = DataLoader(FeatureDataset(split, batch_size=8), batch_size=None)
    assert set(first) == {"x", "y"}
    assert (first["x"].dtype, tuple(first["x"].shape)) == (
        torch.float32,
        (8, 16),
    )  # synthetic 4x4 images
    assert (first["y"].dtype, tuple(first["y"].shape)) == (torch.int32, (8,))
    first["x"] += 1  # a writable tensor, not a view of Arrow's read-only memory


def test_too_few_row_groups_for_the_shards_is_one_line(split):
    ds = FeatureDataset(split, batch_size=8, rank=0, world=9)
    with pytest.raises(InputError) as e:
        list(DataLoader(ds, batch_size=None, num_workers=0))
    assert str(e.value) == (
        f"{inspect_split(split).url}: 8 row group(s) for 9 shards (ranks x DataLoader workers); "
        "use fewer workers or write more row groups"
    )
