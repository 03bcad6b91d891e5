"""Collectives the training processes end with, safe to run as a process's last act."""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger("deepspark.train")


def broadcast_from_rank0(obj: Any, *, timeout: float = 30.0) -> Any:
    """Rank 0's ``obj`` on every rank; returns only once the backend has let go of the tensors.

    Why not ``dist.broadcast_object_list``: a broadcast returns when its work is marked complete,
    but gloo's worker thread drops its own references to the work's tensors a little later. When
    that was the last reference to a tensor Python had created, the worker thread must take the
    GIL to free the Python object; as the last collective of a process, that could happen after
    the interpreter began finalizing, and CPython then ``pthread_exit``s the thread inside a
    noexcept C++ destructor: "terminate called without an active exception", SIGABRT (about 1
    torchrun launch in 10 on a 2-core box; BENCHMARKS.md). Holding the tensors here until their
    reference count is ours alone means the backend's release never touches Python.
    """
    import pickle

    import torch
    import torch.distributed as dist

    device = (
        torch.device("cuda", torch.cuda.current_device())
        if dist.get_backend() == "nccl"
        else torch.device("cpu")
    )
    rank = dist.get_rank()
    payload = pickle.dumps(obj) if rank == 0 else b""
    size = torch.tensor([len(payload)], dtype=torch.long, device=device)
    dist.broadcast(size, src=0)
    if payload:
        data = torch.frombuffer(bytearray(payload), dtype=torch.uint8).to(device)
    else:
        data = torch.empty(int(size.item()), dtype=torch.uint8, device=device)
    dist.broadcast(data, src=0)
    _wait_released([size, data], timeout)
    return obj if rank == 0 else pickle.loads(data.cpu().numpy().tobytes())


def _wait_released(tensors: list[Any], timeout: float) -> None:
    """Wait until ``tensors`` are referenced only by their Python objects (or ``timeout``)."""
    import time

    deadline = time.monotonic() + timeout
    while any(t._use_count() > 1 for t in tensors):
        if time.monotonic() > deadline:
            log.warning("the process group still holds a broadcast's tensors after %.0fs", timeout)
            return
        time.sleep(0.001)  # the worker thread needs a moment (and a core) to drop the work
