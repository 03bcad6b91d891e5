"""Environment variables are read and written in one module, deepspark/environ.py."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from deepspark import environ

LIB = Path(__file__).resolve().parents[1] / "lib" / "deepspark"
DIRECT = re.compile(r"\bos\.(environ|getenv|putenv|unsetenv)\b")


def test_no_module_but_environ_touches_the_environment():
    found = [
        f"{p.relative_to(LIB)}:{n}: {line.strip()}"
        for p in sorted(LIB.rglob("*.py"))
        if p.name != "environ.py"
        for n, line in enumerate(p.read_text().splitlines(), 1)
        if DIRECT.search(line)
    ]
    assert found == []


def test_a_value_the_user_set_is_never_replaced_and_our_own_is(monkeypatch):
    monkeypatch.setenv("DEEPSPARK_TEST_USERS", "7")
    monkeypatch.delenv("DEEPSPARK_TEST_OURS", raising=False)
    monkeypatch.setattr(environ, "_OWN", {})
    environ.put_own("DEEPSPARK_TEST_USERS", "1")
    environ.put_own("DEEPSPARK_TEST_OURS", "1")
    environ.put_own("DEEPSPARK_TEST_OURS", "2")  # a later call changes this process's own value
    assert environ.get("DEEPSPARK_TEST_USERS") == "7"
    assert environ.get("DEEPSPARK_TEST_OURS") == "2"
    environ.drop("DEEPSPARK_TEST_OURS")
    assert not environ.is_set("DEEPSPARK_TEST_OURS")


@pytest.mark.parametrize(
    ("variables", "expected"),
    [({}, (0, 1, 0, 1)), ({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1",
                           "LOCAL_WORLD_SIZE": "2"}, (3, 4, 1, 2))],
)  # fmt: skip
def test_a_process_outside_a_launcher_is_rank_0_of_1(monkeypatch, variables, expected):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    got = (environ.rank(), environ.world_size(), environ.local_rank(), environ.local_world_size())
    assert got == expected


def test_training_takes_its_share_of_the_cores_unless_told_a_thread_count(monkeypatch):
    import os

    import torch

    from deepspark.errors import SetupError
    from deepspark.train.worker import _device

    monkeypatch.delenv(environ.TORCH_THREADS, raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    assert [environ.torch_threads(n) for n in (1, 2, 3, 16)] == [8, 4, 2, 1]
    assert environ.torch_threads(2, cores=2) == 1  # a tuning study: 2 trials on local[2]
    monkeypatch.setenv(environ.TORCH_THREADS, "1")  # a host other work shares (CI's two lanes)
    assert environ.torch_threads(1) == 1
    before = torch.get_num_threads()
    try:
        monkeypatch.setenv(environ.TORCH_THREADS, "3")
        _device(use_gpu=False, world=1, local_rank=0)  # what each training process does
        assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(before)
    for bad in ("0", "two", ""):
        monkeypatch.setenv(environ.TORCH_THREADS, bad)
        with pytest.raises(SetupError) as e:
            environ.torch_threads(1)
        assert str(e.value) == (
            f"DEEPSPARK_TORCH_THREADS: expected a whole number of threads >= 1, found {bad!r}"
        )
