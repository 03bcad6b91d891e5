"""The training function: top-level and picklable, so every launcher can start it.

TorchDistributor pickles :func:`train_worker` and runs it in each process; torchrun and a plain
``python -m deepspark.train`` call it directly. Rank and world size come from the environment
those launchers set (none set: one process). Only rank 0 touches MLflow and checkpoints.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

from deepspark import environ
from deepspark.logconf import ENV, configure, quiet_progress_bars
from deepspark.train.job import TrainJob

log = logging.getLogger("deepspark.train")


def train_worker(job: TrainJob) -> dict[str, Any] | None:
    """Train, validate each epoch, checkpoint, stop early, test; returns rank 0's summary."""
    from deepspark.train.trainer import Trainer

    if not logging.getLogger().handlers:  # a process of its own: log like the driver does
        configure(environ.get(ENV) or "INFO")
    quiet_progress_bars()  # a rank on an executor inherits nothing: its stderr is a log
    importable(job)
    rank, world = environ.rank(), environ.world_size()
    device, gpu = _device(job.train.use_gpu, world, environ.local_rank())
    summary = Trainer(job, rank=rank, world=world, device=device, gpu=gpu).fit()
    return _leave_together(world, summary)


def importable(job: TrainJob) -> None:
    """A ``package.module:factory`` model's module on this process's ``sys.path``.

    A rank is a fresh interpreter (TorchDistributor's torchrun children, torchrun itself): it has
    neither the driver's ``sys.path`` additions nor its working directory. On the driver's host
    the folder preflight found is there; on an executor, the module arrives as ``--py-files``
    (``pkg.zip`` or ``module.py``) in the working directory, which Spark puts on its Python
    worker's path but not on a torchrun child's.
    """
    if job.model_root is None:
        return
    from deepspark.models.custom import top_level

    top, here = top_level(job.train.model), os.getcwd()
    candidates = (
        job.model_root,
        os.path.join(here, f"{top}.zip"),
        here if os.path.exists(os.path.join(here, f"{top}.py")) else "",
    )
    found = next((p for p in candidates if p and os.path.exists(p)), None)
    if found is not None and found not in sys.path:
        sys.path.append(found)


def _leave_together(world: int, summary: dict[str, Any] | None) -> dict[str, Any] | None:
    """Rank 0's summary on every rank, once it is done; then all leave the process group together.

    A rank that tore down its gloo group and exited while rank 0 was still reporting aborted in
    gloo's teardown ("terminate called without an active exception", seen in the cluster tier);
    the failed barrier task then cost a full Spark stage retry. PyTorch's guidance is the same:
    destroy the group collectively, where no rank needs it any more. Every rank returns the same
    summary because TorchDistributor keeps whichever process's return value was written last.
    """
    if world == 1:
        return summary
    import torch.distributed as dist

    from deepspark.train.collective import broadcast_from_rank0

    summary = broadcast_from_rank0(summary)  # collective: also the wait for rank 0's report
    dist.destroy_process_group()
    return summary


def _device(use_gpu: bool, world: int, local_rank: int) -> tuple[Any, bool]:
    """This process's device (and whether it is a GPU); joins the process group when world > 1."""
    import torch
    import torch.distributed as dist

    gpu = use_gpu and torch.cuda.is_available()
    if use_gpu and not gpu:
        raise RuntimeError("train.use_gpu=true but torch sees no CUDA device on this worker")
    device = torch.device(f"cuda:{local_rank}" if gpu else "cpu")
    if gpu:
        torch.cuda.set_device(device)
    else:
        # Processes on one host share its cores: without this each takes them all and they thrash.
        torch.set_num_threads(environ.torch_threads(environ.local_world_size(default=world)))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if gpu else "gloo")
    return device, gpu
