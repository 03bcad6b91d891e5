"""The training function: top-level and picklable, so every launcher can start it.

TorchDistributor pickles :func:`train_worker` and runs it in each process; torchrun and a plain
``python -m deepspark.train`` call it directly. Rank and world size come from the environment
those launchers set (none set: one process). Only rank 0 touches MLflow and checkpoints.
"""

from __future__ import annotations

import logging
import math
import os
import random
from typing import Any

from deepspark.train.job import TrainJob

log = logging.getLogger("deepspark.train")


def train_worker(job: TrainJob) -> dict[str, Any] | None:
    """Train, validate each epoch, checkpoint, stop early, test; returns rank 0's summary."""
    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP

    from deepspark.models import build_model
    from deepspark.train import average, loop
    from deepspark.train import checkpoint as ckpt
    from deepspark.train.augment import random_affine
    from deepspark.train.progress import Progress
    from deepspark.train.report import Reporter, unreported

    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    cfg = job.train
    device, gpu = _device(cfg.use_gpu, world, local_rank)

    state = ckpt.load(job.checkpoint_dir) if cfg.resume else None
    # A finished run is not resumed (this is a new training run), unless MLflow failed during it:
    # then its checkpoint is loaded, no epoch runs (it holds the last one, or stopped early), and
    # only what did not reach MLflow is logged.
    reporting_only = bool(state is not None and state.get("finished") and unreported(state))
    if state is not None and state.get("finished") and not reporting_only:
        state = None
    seed = cfg.seed
    _reseed(seed, -1, 0)  # same initial weights on every rank (DDP also broadcasts them)

    linear = (job.linear.weight, job.linear.bias) if job.linear is not None else None
    net = build_model(
        cfg,
        job.x_shape,
        job.n_out,
        y_scale=job.y_scale,
        persistence=job.persistence,
        linear=linear,
    ).to(device)
    train_info = job.splits["train"]
    steps = train_info.rows // (world * cfg.batch_size)
    optimizer, scheduler = _optimizer(net, cfg, steps)
    averaged = average.averaged(net, average.ema_decay(cfg.ema, job.task))
    if state is not None:
        net.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if averaged is not None:
            averaged.load_state_dict(state["averaged"])
    model = DDP(net, device_ids=[local_rank] if gpu else None) if world > 1 else net
    # What is validated, kept as best and tested: the averaged weights when there are any.
    judged = averaged.module if averaged is not None else net

    task = job.task
    metric = (
        cfg.monitor if cfg.monitor != "auto" else ("loss" if task == "classification" else "mae")
    )
    generator = torch.Generator(device=device)
    augment = None
    if task == "classification" and (cfg.augment.shift > 0 or cfg.augment.rotate > 0):
        a = cfg.augment

        def augment(x: torch.Tensor) -> torch.Tensor:
            return random_affine(x, shift=a.shift, rotate=a.rotate, generator=generator)

    step = loop.Step(
        task=task,
        loss=cfg.loss
        if cfg.loss != "auto"
        else ("cross_entropy" if task == "classification" else "l1"),
        y_std=job.y_scale[1] if job.y_scale else 1.0,
        device=device,
        bf16=cfg.precision == "bf16" or (cfg.precision == "auto" and gpu),
        grad_clip=cfg.grad_clip,
        augment=augment,
        x_shape=job.x_shape,
    )
    lcfg = cfg.loader
    train_loader, val_loader = _loaders(job, rank, world, steps)

    start_epoch = state["epoch"] if state else 0
    best = state["best"] if state else None
    bad_epochs = state["bad_epochs"] if state else 0
    stopped = state.get("stopped", False) if state else False
    history = state["history"] if state else []
    if reporting_only and rank == 0:
        log.info(
            "training in %s finished earlier (%d epochs); reporting only: logging to MLflow what "
            "did not reach it (%s)",
            job.checkpoint_dir, len(history), ", ".join(state["mlflow"]["failed"]),
        )  # fmt: skip
    elif state is not None and rank == 0:
        log.info("resuming %s from epoch %d of %d", job.checkpoint_dir, start_epoch, cfg.epochs)
    reporter = Reporter(
        job, rank=rank, world=world, run_id=(state or {}).get("run_id"), history=history,
        logged=(state or {}).get("mlflow"),
    )  # fmt: skip
    try:
        for epoch in range(start_epoch, cfg.epochs):
            if stopped:
                break
            # Every random draw of an epoch (dropout, augmentation, shuffling) is seeded from
            # (seed, epoch, rank): a resumed epoch replays exactly, with no RNG state to save.
            _reseed(seed, epoch, rank)
            generator.manual_seed(_mix(seed, epoch, rank, 1))
            progress = Progress(
                epoch, cfg.epochs, steps, enabled=rank == 0, every_s=cfg.log_every_s
            )
            stats = loop.train_epoch(
                model, train_loader, epoch, optimizer, scheduler, step, progress, lcfg.prefetch,
                after_step=None if averaged is None else lambda: averaged.update_parameters(net),
            )  # fmt: skip
            val = loop.evaluate(judged, val_loader, step, world=world)
            value = val[metric]
            if loop.improved(metric, value, best, cfg.min_delta):
                best, bad_epochs = value, 0
                if rank == 0:
                    ckpt.save(
                        job.checkpoint_dir,
                        ckpt.BEST,
                        {"model": judged.state_dict(), "epoch": epoch},
                    )
            else:
                bad_epochs += 1
            stopped = cfg.patience > 0 and bad_epochs >= cfg.patience
            record = {
                "epoch": epoch,
                "train_loss": stats["loss"],
                **{f"val_{k}": v for k, v in val.items() if k != "rows"},
                "samples_per_s": stats["samples"] * world / stats["seconds"],
                "data_wait_fraction": stats["data_wait"] / stats["seconds"],
                "epoch_seconds": stats["seconds"],
                "lr": scheduler.get_last_lr()[0],
            }
            history.append(record)
            if rank == 0:
                reporter.epoch(record)
                ckpt.save(job.checkpoint_dir, ckpt.LAST, {
                    "model": net.state_dict(), "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(), "epoch": epoch + 1, "best": best,
                    "bad_epochs": bad_epochs, "stopped": stopped, "history": history,
                    "config": job.config, "seed": seed, "run_id": reporter.run_id,
                    "finished": False, "mlflow": reporter.progress(),
                    **({"averaged": averaged.state_dict()} if averaged is not None else {}),
                })  # fmt: skip
                ckpt.write_state(job.checkpoint_dir, {
                    "epoch": epoch + 1, "epochs": cfg.epochs, "stopped": stopped,
                    "finished": False, "run_id": reporter.run_id, metric: value,
                })  # fmt: skip
            if stopped and rank == 0:
                log.info("early stop after epoch %d: val %s has not improved for %d epochs",
                         epoch + 1, metric, bad_epochs)  # fmt: skip
        if world > 1:
            dist.barrier()
        if rank != 0:
            return _leave_together(world, None)
        best_state = ckpt.load(job.checkpoint_dir, ckpt.BEST)
        if best_state is not None:
            net.load_state_dict(best_state["model"])
        summary = reporter.finish(net, step, history, best_epoch=best_state and best_state["epoch"])
        logged = reporter.progress()
        final = ckpt.load(job.checkpoint_dir, ckpt.LAST) or {}
        final.update(finished=True, run_id=reporter.run_id, mlflow=logged)
        ckpt.save(job.checkpoint_dir, ckpt.LAST, final)
        ckpt.write_state(job.checkpoint_dir, {
            "epoch": len(history), "epochs": cfg.epochs, "stopped": stopped, "finished": True,
            "run_id": reporter.run_id, "mlflow_failed": logged["failed"],
            **{k: v for k, v in summary.items() if isinstance(v, float)},
        })  # fmt: skip
        return _leave_together(world, summary)
    except BaseException:
        # No collective teardown on the way out of a failure: the peers may be mid-collective,
        # and torchrun ends them once this process exits with its real traceback.
        reporter.fail()
        raise


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
        local_world = int(os.environ.get("LOCAL_WORLD_SIZE", world))
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // local_world))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if gpu else "gloo")
    return device, gpu


def _optimizer(net: Any, cfg: Any, steps: int) -> tuple[Any, Any]:
    """AdamW (no decay on biases and norms) and the per-step learning-rate schedule."""
    import torch

    decay = [p for p in net.parameters() if p.ndim >= 2]
    no_decay = [p for p in net.parameters() if p.ndim < 2]  # biases and norms are not shrunk
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay}],
        lr=cfg.lr,
        weight_decay=0.0,
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, _schedule(cfg.schedule, cfg.warmup_epochs * steps, cfg.epochs * steps)
    )
    return optimizer, scheduler


def _loaders(job: TrainJob, rank: int, world: int, steps: int) -> tuple[Any, Any]:
    """This rank's training loader (``steps`` per epoch) and its validation shard."""
    from deepspark.data import FeatureLoader

    cfg = job.train
    lcfg = cfg.loader
    train = FeatureLoader(
        job.splits["train"].url, ["x", "y"], batch_size=cfg.batch_size, rank=rank, world=world,
        shuffle=True, seed=cfg.seed, steps=steps, mix=lcfg.mix, workers=lcfg.workers,
        backend=lcfg.backend,
    )  # fmt: skip
    validation = FeatureLoader(
        job.splits["validation"].url, ["x", "y"], batch_size=max(cfg.batch_size, 256),
        rank=rank, world=world, workers=lcfg.workers, backend=lcfg.backend,
    )  # fmt: skip
    return train, validation


def _mix(*parts: int) -> int:
    import numpy as np

    return int(np.random.SeedSequence([p & 0xFFFFFFFF for p in parts]).generate_state(1)[0])


def _reseed(seed: int, epoch: int, rank: int) -> None:
    import numpy as np
    import torch

    s = _mix(seed, epoch, rank)
    random.seed(s)
    np.random.seed(s)
    torch.manual_seed(s)


def _schedule(kind: str, warmup: int, total: int):  # noqa: ANN202 - a LambdaLR multiplier
    def factor(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        if kind == "constant":
            return 1.0
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor
