"""The process environment: every variable deepspark reads or writes goes through this module.

Environment variables are how settings reach the processes deepspark does not start itself:
training ranks (torchrun, TorchDistributor), Spark's Python workers, MLflow's HTTP client. Reads
and writes anywhere else in ``lib/`` fail ``tests/test_environ.py``, so this file is the whole
list of that traffic.
"""

from __future__ import annotations

import os

from deepspark.errors import SetupError

# Values this process set on its own (put_own): a later put_own may replace them, while a value
# the user set stays.
_OWN: dict[str, str] = {}


def get(name: str, default: str | None = None) -> str | None:
    """The variable's value, or ``default`` when it is unset."""
    return os.environ.get(name, default)


def is_set(name: str) -> bool:
    """Whether the variable is set (to anything, the empty string included)."""
    return name in os.environ


def put(name: str, value: str) -> None:
    """Set the variable for this process and every process it starts from now on."""
    os.environ[name] = value


def put_default(name: str, value: str) -> str:
    """Set the variable unless it is set already; returns the value in effect."""
    return os.environ.setdefault(name, value)


def put_own(name: str, value: str) -> None:
    """Set the variable unless the user set it (a value this process set itself is replaced)."""
    current = os.environ.get(name)
    if current is None or current == _OWN.get(name):
        os.environ[name] = _OWN[name] = value


def drop(name: str) -> None:
    """Unset the variable (nothing happens when it is not set)."""
    os.environ.pop(name, None)


def snapshot() -> dict[str, str]:
    """A copy of the whole environment, for a child process to start from."""
    return dict(os.environ)


# The variables torch.distributed launchers (torchrun, TorchDistributor) give each rank; a
# process started without one is rank 0 of 1.


def rank() -> int:
    """This process's rank among all training processes."""
    return int(os.environ.get("RANK", 0))


def world_size() -> int:
    """How many training processes there are in all."""
    return int(os.environ.get("WORLD_SIZE", 1))


def local_rank() -> int:
    """This process's rank among the training processes of its host."""
    return int(os.environ.get("LOCAL_RANK", 0))


def local_world_size(default: int = 1) -> int:
    """How many training processes share this host (``default`` outside a launcher)."""
    return int(os.environ.get("LOCAL_WORLD_SIZE", default))


TORCH_THREADS = "DEEPSPARK_TORCH_THREADS"


def torch_threads(processes_on_host: int, cores: int | None = None) -> int:
    """Torch threads for each of the ``processes_on_host`` training processes (or trials).

    Their share of the ``cores`` they have (the host's, by default), unless
    ``DEEPSPARK_TORCH_THREADS`` names a count. On a host whose
    cores other work wants too (the other CI lane, a neighbour's Spark tasks), fewer threads train
    faster: at every OpenMP barrier the threads wait for one the scheduler has put aside.
    ``benchmarks/threads.py`` (BENCHMARKS.md): the flights LSTM on 2 threads beside one busy core
    ran at 0.24 of its speed alone, on 1 thread at 1.01 (and alone, 1 thread ran at 0.96 of 2).
    """
    value = os.environ.get(TORCH_THREADS)
    if value is None:
        return max(1, (cores or os.cpu_count() or 1) // processes_on_host)
    if not value.isdigit() or int(value) < 1:
        raise SetupError(
            f"{TORCH_THREADS}: expected a whole number of threads >= 1, found {value!r}"
        )
    return int(value)
