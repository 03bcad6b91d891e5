"""The Trainer: one process's training run, top to bottom: setup -> epoch -> snapshot -> finish.

Built by :func:`deepspark.train.worker.train_worker` in every rank. Rank 0 alone writes
checkpoints (a :class:`~deepspark.train.state.TrainState` beside the tensors) and reports; every
rank trains, validates and stops at the same epoch, because early stopping reads the same
all-reduced validation metric everywhere.
"""

from __future__ import annotations

import logging
import math
import random
from typing import Any

import torch

from deepspark.config.train import TrainConfig
from deepspark.data import FeatureLoader
from deepspark.models import build_model
from deepspark.train import average, loop
from deepspark.train import checkpoint as ckpt
from deepspark.train.augment import random_affine
from deepspark.train.job import TrainJob
from deepspark.train.progress import Progress
from deepspark.train.report import Reporter
from deepspark.train.state import BestWeights, Tensors, TrainState

log = logging.getLogger("deepspark.train")


class Trainer:
    """Setup (model, optimizer, loaders, resumed state), then :meth:`fit` runs the epochs."""

    def __init__(self, job: TrainJob, *, rank: int, world: int, device: Any, gpu: bool) -> None:
        self.job, self.cfg, self.rank, self.world = job, job.train, rank, world
        cfg = self.cfg
        state, tensors = self._resumed()
        self.state = state or TrainState(seed=cfg.seed)
        _reseed(cfg.seed, -1, 0)  # same initial weights on every rank (DDP also broadcasts them)
        linear = (job.linear.weight, job.linear.bias) if job.linear is not None else None
        self.net = build_model(
            cfg, job.x_shape, job.n_out, y_scale=job.y_scale, persistence=job.persistence,
            linear=linear,
        ).to(device)  # fmt: skip
        self.steps = job.splits["train"].rows // (world * cfg.batch_size)
        self.optimizer, self.scheduler = _optimizer(self.net, cfg, self.steps)
        self.averaged = average.averaged(self.net, cfg.ema or 0.0)
        if tensors is not None:
            self._load(tensors)
        if world > 1:
            from torch.nn.parallel import DistributedDataParallel as DDP

            self.model = DDP(self.net, device_ids=[device.index] if gpu else None)
        else:
            self.model = self.net
        # What is validated, kept as best and tested: the averaged weights when there are any.
        self.judged = self.averaged.module if self.averaged is not None else self.net
        self.generator = torch.Generator(device=device)
        self.step = loop.Step(
            task=job.task, loss=cfg.loss, y_std=job.y_scale[1] if job.y_scale else 1.0,
            device=device, bf16=cfg.precision == "bf16" or (cfg.precision == "auto" and gpu),
            grad_clip=cfg.grad_clip, augment=self._augment(), x_shape=job.x_shape,
            label_smoothing=cfg.label_smoothing,
        )  # fmt: skip
        self.train_loader, self.val_loader = _loaders(job, rank, world, self.steps)
        self.reporter = Reporter(
            job, rank=rank, world=world, run_id=self.state.run_id, history=self.state.history,
            logged=self.state.logged if state is not None else None,
        )  # fmt: skip

    def fit(self) -> dict[str, Any] | None:
        """Every remaining epoch, then rank 0's test and report; rank 0 returns the summary."""
        try:
            for epoch in range(self.state.epoch, self.cfg.epochs):
                if self.state.stopped:
                    break
                record = self.epoch(epoch)
                if self.rank == 0:
                    self.snapshot(record)
            if self.world > 1:
                import torch.distributed as dist

                dist.barrier()
            return self.finish() if self.rank == 0 else None
        except BaseException:
            # No collective teardown on the way out of a failure: the peers may be mid-collective,
            # and torchrun ends them once this process exits with its real traceback.
            self.reporter.fail()
            raise

    def epoch(self, epoch: int) -> dict[str, float]:
        """Train one epoch, validate, keep the best weights, decide early stopping."""
        cfg, state = self.cfg, self.state
        # Every random draw of an epoch (dropout, augmentation, shuffling) is seeded from
        # (seed, epoch, rank): a resumed epoch replays exactly, with no RNG state to save.
        _reseed(cfg.seed, epoch, self.rank)
        self.generator.manual_seed(_mix(cfg.seed, epoch, self.rank, 1))
        progress = Progress(
            epoch, cfg.epochs, self.steps, enabled=self.rank == 0, every_s=cfg.log_every_s
        )
        after_step = None if self.averaged is None else self._average
        stats = loop.train_epoch(
            self.model, self.train_loader, epoch, self.optimizer, self.scheduler, self.step,
            progress, cfg.loader.prefetch, after_step=after_step,
        )  # fmt: skip
        val = loop.evaluate(self.judged, self.val_loader, self.step, world=self.world)
        value = val[cfg.monitor]
        if loop.improved(cfg.monitor, value, state.best, cfg.min_delta):
            state.best, state.bad_epochs = value, 0
            if self.rank == 0:
                best = BestWeights(model=self.judged.state_dict(), epoch=epoch)
                ckpt.save(self.job.checkpoint_dir, ckpt.BEST, best.to_payload())
        else:
            state.bad_epochs += 1
        state.stopped = cfg.patience > 0 and state.bad_epochs >= cfg.patience
        state.epoch = epoch + 1
        record = {
            "epoch": epoch,
            "train_loss": stats["loss"],
            **{f"val_{k}": v for k, v in val.items() if k != "rows"},
            "samples_per_s": stats["samples"] * self.world / stats["seconds"],
            "data_wait_fraction": stats["data_wait"] / stats["seconds"],
            "epoch_seconds": stats["seconds"],
            "lr": self.scheduler.get_last_lr()[0],
        }
        state.history.append(record)
        if state.stopped and self.rank == 0:
            log.info("early stop after epoch %d: val %s has not improved for %d epochs",
                     epoch + 1, cfg.monitor, state.bad_epochs)  # fmt: skip
        return record

    def snapshot(self, record: dict[str, float]) -> None:
        """Rank 0: report the epoch, then write ``last.pt`` and ``state.json``."""
        self.reporter.epoch(record)
        state, job = self.state, self.job
        state.run_id, state.logged = self.reporter.run_id, self.reporter.progress()
        tensors = Tensors(
            model=self.net.state_dict(),
            optimizer=self.optimizer.state_dict(),
            scheduler=self.scheduler.state_dict(),
            averaged=self.averaged.state_dict() if self.averaged is not None else None,
        )
        state.config = _plain(job)
        ckpt.save(job.checkpoint_dir, ckpt.LAST, state.to_payload(tensors))
        metric = {self.cfg.monitor: record[f"val_{self.cfg.monitor}"]}
        ckpt.write_state(job.checkpoint_dir, state.summary(self.cfg.epochs, **metric))

    def finish(self) -> dict[str, Any]:
        """Rank 0: the best weights on the test split, the model and the gate; the run closed."""
        job, state = self.job, self.state
        payload = ckpt.load(job.checkpoint_dir, ckpt.BEST)
        best = BestWeights.from_payload(payload) if payload is not None else None
        if best is not None:
            self.net.load_state_dict(best.model)
        summary = self.reporter.finish(
            self.net, self.step, state.history, best_epoch=best.epoch if best else None
        )
        # last.pt keeps the last epoch's tensors and the config that trained them, now marked
        # finished, with what reached MLflow.
        last = ckpt.load(job.checkpoint_dir, ckpt.LAST)
        state.finished, state.run_id = True, self.reporter.run_id
        state.logged = self.reporter.progress()
        tensors = Tensors.from_payload(last) if last is not None else None
        ckpt.save(job.checkpoint_dir, ckpt.LAST, state.to_payload(tensors))
        floats = {k: v for k, v in summary.items() if isinstance(v, float)}
        ckpt.write_state(job.checkpoint_dir, state.summary(self.cfg.epochs, **floats))
        return summary

    def _resumed(self) -> tuple[TrainState | None, Tensors | None]:
        """The state to go on from, and its tensors: none for a fresh or an already finished run.

        A finished run is not resumed (this is a new training run), unless MLflow failed during
        it: then its checkpoint is loaded, no epoch runs (it holds the last one, or stopped early)
        and only what did not reach MLflow is logged.
        """
        payload = ckpt.load(self.job.checkpoint_dir) if self.cfg.resume else None
        if payload is None:
            return None, None
        state = TrainState.from_payload(payload)
        if state.finished and not state.unreported:
            return None, None
        if self.rank == 0 and state.finished:
            log.info(
                "training in %s finished earlier (%d epochs); reporting only: logging to MLflow "
                "what did not reach it (%s)",
                self.job.checkpoint_dir, len(state.history), ", ".join(state.logged.failed),
            )  # fmt: skip
        elif self.rank == 0:
            log.info("resuming %s from epoch %d of %d", self.job.checkpoint_dir, state.epoch,
                     self.cfg.epochs)  # fmt: skip
        return state, Tensors.from_payload(payload)

    def _load(self, tensors: Tensors) -> None:
        self.net.load_state_dict(tensors.model)
        self.optimizer.load_state_dict(tensors.optimizer)
        self.scheduler.load_state_dict(tensors.scheduler)
        if self.averaged is not None:
            self.averaged.load_state_dict(tensors.averaged)

    def _average(self) -> None:
        self.averaged.update_parameters(self.net)  # type: ignore[union-attr]

    def _augment(self) -> Any:
        a = self.cfg.augment
        if self.job.task != "classification" or (a.shift <= 0 and a.rotate <= 0):
            return None

        def augment(x: torch.Tensor) -> torch.Tensor:
            return random_affine(x, shift=a.shift, rotate=a.rotate, generator=self.generator)

        return augment


def _plain(job: TrainJob) -> dict[str, Any]:
    from deepspark.config import to_plain

    return to_plain(job.config)


def _optimizer(net: Any, cfg: TrainConfig, steps: int) -> tuple[Any, Any]:
    """AdamW (no decay on biases and norms) and the per-step learning-rate schedule."""
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
    cfg = job.train
    lcfg = cfg.loader
    train = FeatureLoader(
        job.splits["train"].data, ["x", "y"], batch_size=cfg.batch_size, rank=rank, world=world,
        shuffle=True, seed=cfg.seed, steps=steps, mix=lcfg.mix, workers=lcfg.workers,
        backend=lcfg.backend,
    )  # fmt: skip
    validation = FeatureLoader(
        job.splits["validation"].data, ["x", "y"], batch_size=max(cfg.batch_size, 256),
        rank=rank, world=world, workers=lcfg.workers, backend=lcfg.backend,
    )  # fmt: skip
    return train, validation


def _mix(*parts: int) -> int:
    import numpy as np

    return int(np.random.SeedSequence([p & 0xFFFFFFFF for p in parts]).generate_state(1)[0])


def _reseed(seed: int, epoch: int, rank: int) -> None:
    import numpy as np

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
