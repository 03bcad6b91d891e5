"""Batch buffers have an owner: a batch is never overwritten while anything still refers to it.

The assembler reuses batch buffers (``assemble._Buffers``). Every path below keeps, of each batch
it is handed, one of the things a consumer may keep (the batch, a column, a view of one, a tensor
over one, a view of that) or nothing, so that the buffers of the batches kept nothing of are
reused while the others are still held; at the end of the epoch, every kept batch must still
hold the values it had when it was handed out. Paths: ``FeatureLoader`` (both backends, a
training epoch of fixed steps and a one-pass epoch with a short last batch), the training loop's
``Prefetcher`` with ``to_tensors``, and ``FeatureDataset`` under a ``DataLoader``; each at 1 and 2
reader threads, on both feature kinds. Batches nobody keeps are reused (else every batch would be
fresh memory, and slower); batches with a string column are never pooled, but assembled as well.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from torch.utils.data import DataLoader

from deepspark.data import (
    FeatureDataset,
    FeatureLoader,
    Prefetcher,
    backend,
    inspect_split,
    read_split,
)
from deepspark.train.loop import to_tensors
from tests.synthetic import write_features

SIZES = [37, 50, 23, 64]  # 4 row groups (one file each), 174 rows: batches straddle groups
BATCH = 8
STEPS = 40  # a training epoch of 40 batches (320 rows) cycles the 174 rows almost twice
PETASTORM = pytest.mark.skipif(
    not backend.petastorm_installed(), reason="petastorm is not installed"
)


@pytest.fixture(scope="module", params=["sequence", "image"])
def split(request, tmp_path_factory) -> tuple[str, str]:
    root = tmp_path_factory.mktemp(request.param)
    write_features(root, "p", request.param, {"train": SIZES})
    return request.param, inspect_split(str(root / "features" / "p" / "train")).url


def columns(batch: object) -> tuple:
    """``(x, y)`` of a batch dict (numpy or torch) or of ``to_tensors``' tuple."""
    return batch if isinstance(batch, tuple) else (batch["x"], batch["y"])


def other(v: np.ndarray | torch.Tensor) -> torch.Tensor | np.ndarray:
    """The same memory seen by the other library: a tensor over an array, an array over a tensor."""
    return torch.from_numpy(v) if isinstance(v, np.ndarray) else v.numpy()


# What a consumer keeps of a batch, in turn: every other batch nothing at all (its buffer is
# free for the next one), the rest one of the forms that share the batch's memory.
KEEP: list[Callable[[object], object]] = [
    lambda b: None,
    lambda b: b,  # the whole batch
    lambda b: None,
    lambda b: columns(b)[0],  # one column
    lambda b: None,
    lambda b: columns(b)[0][1:],  # a view of a column
    lambda b: None,
    lambda b: columns(b)[1],  # the other column
    lambda b: None,
    lambda b: other(columns(b)[0]),  # a tensor over an array, or an array over a tensor
    lambda b: None,
    lambda b: other(columns(b)[0])[2:],  # and a view of that
]


def copy(held: object) -> object:
    if isinstance(held, dict):
        return {k: copy(v) for k, v in held.items()}
    if isinstance(held, tuple):
        return tuple(copy(v) for v in held)
    return None if held is None else np.array(held, copy=True)


def address(batch: object) -> int:
    x = columns(batch)[0]
    return x.data_ptr() if isinstance(x, torch.Tensor) else x.__array_interface__["data"][0]


def changed_batches(batches: Iterable[object]) -> tuple[int, int, list[int]]:
    """Batches seen, distinct buffers they came in, and which kept batches changed since."""
    kept: list[tuple[object, object]] = []
    buffers: set[int] = set()
    for i, batch in enumerate(batches):
        buffers.add(address(batch))
        held = KEEP[i % len(KEEP)](batch)
        kept.append((held, copy(held)))
    del batch  # from here on only `kept` refers to any batch
    changed = [i for i, (held, then) in enumerate(kept) if not same(copy(held), then)]
    return len(kept), len(buffers), changed


def same(now: object, then: object) -> bool:
    if isinstance(now, dict):
        return now.keys() == then.keys() and all(same(now[k], then[k]) for k in now)
    if isinstance(now, tuple):
        return all(same(a, b) for a, b in zip(now, then, strict=True))
    return now is then is None or np.array_equal(now, then)


def loader(url: str, threads: int, backend: str = "arrow", **kw) -> FeatureLoader:
    columns = kw.pop("columns", ["x", "y"])
    return FeatureLoader(
        url, columns, batch_size=BATCH, shuffle=True, seed=5, workers=threads, backend=backend,
        **kw,
    )  # fmt: skip


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("backend", ["arrow", pytest.param("petastorm", marks=PETASTORM)])
def test_a_training_epoch_never_overwrites_a_kept_batch(split, threads, backend):
    _, url = split
    seen, buffers, changed = changed_batches(loader(url, threads, backend, steps=STEPS).epoch(0))
    assert (seen, changed) == (STEPS, [])
    assert buffers < seen  # the batches kept nothing of were reused around the kept ones


@pytest.mark.parametrize("threads", [1, 2])
def test_a_one_pass_epoch_never_overwrites_a_kept_batch(split, threads):
    _, url = split
    seen, buffers, changed = changed_batches(loader(url, threads).epoch(0))
    assert (seen, changed) == (-(-sum(SIZES) // BATCH), [])  # the last of the 22 is short
    assert buffers < seen


@pytest.mark.parametrize("threads", [1, 2])
def test_the_training_loops_tensors_are_never_overwritten(split, threads):
    kind, url = split
    convert = to_tensors(torch.device("cpu"), "classification" if kind == "image" else "regression")
    batches = Prefetcher(loader(url, threads, steps=STEPS).epoch(0), 4, convert)
    seen, buffers, changed = changed_batches(batches)
    assert (seen, changed) == (STEPS, [])
    assert buffers < seen


@pytest.mark.parametrize("threads", [1, 2])
def test_feature_dataset_batches_are_never_overwritten(split, threads):
    _, url = split
    ds = FeatureDataset(url, batch_size=BATCH, shuffle=True, equal_steps=True, threads=threads)
    seen, buffers, changed = changed_batches(DataLoader(ds, batch_size=None, num_workers=0))
    assert (seen, changed) == (sum(SIZES) // BATCH, [])
    assert buffers < seen


def test_a_batch_nobody_keeps_is_reused(split):
    # The loop variable still holds the last batch while the next is assembled: two buffers.
    _, url = split
    assert len({address(b) for b in loader(url, 1, steps=STEPS).epoch(0)}) == 2


def test_the_training_loop_reuses_its_buffers(split):
    # Alive at once, at most: the queue's 4, the one the prefetch thread is putting, the two
    # the consumer's loop and the Prefetcher's iterator hold, and the one being assembled.
    kind, url = split
    convert = to_tensors(torch.device("cpu"), "classification" if kind == "image" else "regression")
    batches: Iterator = Prefetcher(loader(url, 2, steps=STEPS).epoch(0), 4, convert)
    assert len({address(b) for b in batches}) <= 4 + 4


@pytest.fixture(scope="module")
def named(tmp_path_factory) -> str:
    """Image features with a string column, as evaluation reads a forecast's series names."""

    def hook(split, table):
        return table.append_column("name", pa.array([f"row {i}" for i in range(len(table))]))

    root = tmp_path_factory.mktemp("named")
    write_features(root, "p", "image", {"train": SIZES}, table_hook=hook)
    return inspect_split(str(root / "features" / "p" / "train")).url


def test_a_string_column_is_assembled_across_row_groups(named):
    # One batch of 4096 rows gathers all four groups: strings cannot live in a byte buffer.
    table = pq.read_table(named.removeprefix("file://"))
    got = read_split(named, ["x", "name"])
    assert got["name"].tolist() == table.column("name").to_pylist()
    assert np.array_equal(got["x"], np.stack(table.column("x").to_numpy(zero_copy_only=False)))


def test_a_batch_with_a_string_column_is_never_overwritten(named):
    batches = loader(named, 1, steps=STEPS, columns=["x", "y", "name"]).epoch(0)
    seen, _, changed = changed_batches(batches)
    assert (seen, changed) == (STEPS, [])
