"""The loader seam: shards, fixed steps, seeded shuffling, metadata inspection."""

from __future__ import annotations

import time

import numpy as np
import pytest

from deepspark.data import FeatureLoader, Prefetcher, backend, choose_backend, inspect_split
from deepspark.errors import InputError, SetupError
from tests.synthetic import write_features

# Every backend; Petastorm's tests skip where the deepspark[petastorm] extra is not installed.
BACKENDS = [
    "arrow",
    pytest.param(
        "petastorm",
        marks=pytest.mark.skipif(
            not backend.petastorm_installed(), reason="petastorm is not installed"
        ),
    ),
]


@pytest.fixture
def uneven(tmp_path):
    # Row group i goes to rank i % 2: rank 0 gets 10 + 10 rows, rank 1 gets 200 + 10.
    write_features(tmp_path, "p", "image", {"train": [10, 200, 10, 10]})
    return inspect_split(str(tmp_path / "features" / "p" / "train"))


def ys(loader, epoch=0):
    return np.concatenate([b["y"] for b in loader.epoch(epoch)])


def xs(loader, epoch=0):
    return np.concatenate([b["x"] for b in loader.epoch(epoch)])


def test_inspect_split_reads_footers(uneven):
    assert (uneven.rows, uneven.files, uneven.row_groups) == (230, 4, 4)
    assert uneven.columns == {"x": "list<element: float>", "y": "int32"}


@pytest.mark.parametrize("backend", BACKENDS)
def test_one_pass_reads_every_row_once_and_shards_partition_the_rows(uneven, backend):
    def load(**kw):
        return FeatureLoader(uneven.url, ["x", "y"], batch_size=7, backend=backend, **kw)

    whole = xs(load())
    shards = [xs(load(rank=r, world=2)) for r in (0, 1)]
    assert len(whole) == 230 and [len(s) for s in shards] == [20, 210]
    key = lambda a: sorted(map(tuple, a))  # noqa: E731
    assert key(np.concatenate(shards)) == key(whole)


@pytest.mark.parametrize("backend", BACKENDS)
def test_fixed_steps_are_equal_on_uneven_shards(uneven, backend):
    steps = uneven.rows // (2 * 16)
    for rank in (0, 1):
        loader = FeatureLoader(
            uneven.url, ["x", "y"], batch_size=16, rank=rank, world=2, shuffle=True, steps=steps,
            backend=backend,
        )  # fmt: skip
        sizes = [len(b["y"]) for b in loader.epoch(0)]
        assert sizes == [16] * steps  # rank 0 cycles its 20 rows; rank 1 stops early


@pytest.mark.parametrize("backend", BACKENDS)
def test_shuffle_is_seeded_per_epoch(uneven, backend):
    def order(seed, epoch):
        loader = FeatureLoader(
            uneven.url, ["x"], batch_size=10, shuffle=True, seed=seed, steps=23, backend=backend
        )
        return xs(loader, epoch)[:, 0]

    assert np.array_equal(order(1, 0), order(1, 0))
    assert not np.array_equal(order(1, 0), order(1, 1))
    assert not np.array_equal(order(1, 0), order(2, 0))


def test_prefetcher_counts_the_wait_and_passes_errors_through():
    def slow_then_broken():
        time.sleep(0.3)  # the consumer blocks on the first batch for about this long
        yield {"y": np.zeros(2)}
        raise InputError("boom")

    it = Prefetcher(slow_then_broken(), depth=2)
    with pytest.raises(InputError, match="boom"):
        list(it)
    assert 0.2 <= it.waited < 5.0


def test_missing_split_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="feature split not found; run the features stage first"):
        inspect_split(str(tmp_path / "nowhere"))


def test_both_backends_give_each_rank_the_same_rows(uneven):
    pytest.importorskip("petastorm")

    def rows(backend, rank):
        loader = FeatureLoader(uneven.url, ["x"], batch_size=5, rank=rank, world=2, backend=backend)
        return xs(loader)

    for rank in (0, 1):
        arrow, petastorm = rows("arrow", rank), rows("petastorm", rank)
        assert len(arrow) == len(petastorm) == (20, 210)[rank]
        assert np.array_equal(np.unique(arrow, axis=0), np.unique(petastorm, axis=0))


def test_arrow_backend_reads_several_row_groups_ahead_in_order(uneven):
    one = xs(FeatureLoader(uneven.url, ["x"], batch_size=9, shuffle=True, seed=4, steps=20))
    three = FeatureLoader(
        uneven.url, ["x"], batch_size=9, shuffle=True, seed=4, steps=20, workers=3
    )
    assert np.array_equal(one, xs(three))  # more threads, same batches


def test_ragged_rows_are_an_input_error(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    (tmp_path / "s").mkdir()
    table = pa.table({"x": pa.array([[1.0, 2.0], [3.0]], type=pa.list_(pa.float32()))})
    pq.write_table(table, tmp_path / "s" / "part-0.parquet")
    loader = FeatureLoader((tmp_path / "s").as_uri(), ["x"], batch_size=2)
    with pytest.raises(InputError, match=r"part-0.parquet: column 'x' rows have different lengths"):
        xs(loader)


@pytest.mark.parametrize("installed", [True, False])
def test_an_explicit_backend_is_taken_as_asked_when_installed(monkeypatch, installed):
    monkeypatch.setattr(backend, "petastorm_installed", lambda: installed)
    assert choose_backend("arrow", 2) == "arrow"
    if installed:
        assert choose_backend("petastorm", 2) == "petastorm"
    else:
        with pytest.raises(SetupError) as e:
            choose_backend("petastorm", 1)
        assert str(e.value) == (
            "pipeline.train.loader.backend: petastorm is not installed; install the extra: "
            "pip install 'deepspark[petastorm]' (or use backend: auto/arrow)"
        )


@pytest.mark.parametrize(
    ("installed", "workers", "within_10_percent", "picked"),
    [
        (True, 1, True, "petastorm"),  # the only case that picks Petastorm
        (True, 2, True, "arrow"),  # no exact resume with 2 Petastorm threads
        (False, 1, True, "arrow"),  # not installed
        (True, 1, False, "arrow"),  # measured slower
    ],
)
def test_auto_follows_the_rule(monkeypatch, installed, workers, within_10_percent, picked):
    monkeypatch.setattr(backend, "petastorm_installed", lambda: installed)
    monkeypatch.setattr(backend, "PETASTORM_WITHIN_10_PERCENT", within_10_percent)
    assert choose_backend("auto", workers) == picked


def test_petastorm_detection_matches_the_import():
    try:
        import petastorm  # noqa: F401
    except ImportError:
        assert not backend.petastorm_installed()
    else:
        assert backend.petastorm_installed()


def test_an_unknown_backend_names_the_choices():
    with pytest.raises(ValueError, match=r"expected one of auto, arrow, petastorm, found 'x'"):
        choose_backend("x", 1)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_version_s_files_are_read_and_the_folder_s_others_are_not(uneven, backend):
    # A Delta split's folder keeps older versions' files: the reader gets exactly a version's.
    folder = uneven.url.removeprefix("file://")
    names = sorted(p.rsplit("/", 1)[1] for p in _files(folder))
    kept = [f"{uneven.url}/{n}" for n in names[:3]]  # 10 + 200 + 10 rows; the last 10 are not
    info = inspect_split(folder, files=kept, version=4)
    assert (info.rows, info.files, info.version, info.data) == (220, 3, 4, tuple(kept))
    whole = ys(FeatureLoader(info.data, ["y"], batch_size=7, backend=backend))
    assert len(whole) == 220


def test_a_version_whose_files_are_gone_is_refused_in_one_line(uneven):
    gone = f"{uneven.url}/part-99.parquet"
    with pytest.raises(InputError) as e:
        inspect_split(uneven.url, files=[gone], version=2)
    assert str(e.value) == (
        f"{uneven.url}: version 2 of the feature split lists {gone.removeprefix('file://')}, "
        "which is gone (vacuumed?); rebuild the features or train on a newer version"
    )


def _files(folder):
    from pathlib import Path

    return [str(p) for p in Path(folder).glob("*.parquet")]
