"""One training epoch and one sharded evaluation; no launching, no tracking, no checkpoints."""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from deepspark.data import FeatureLoader, Prefetcher
from deepspark.objectives import better, regression_loss
from deepspark.train.progress import Progress

# A batch cut from a single row group is a view of Arrow's read-only buffer (pyarrow hands
# those out as is). Torch warns once that it cannot guard such memory; nothing here writes to an
# input batch in place (augmentation returns a new tensor), so the warning is noise.
warnings.filterwarnings("ignore", message="The given NumPy array is not writable", module=__name__)


@dataclass
class Step:
    """What a training step needs besides the model and the batch."""

    task: str
    loss: str
    y_std: float
    device: torch.device
    bf16: bool
    grad_clip: float
    augment: Callable[[torch.Tensor], torch.Tensor] | None = None
    x_shape: tuple[int, ...] = ()
    label_smoothing: float = 0.0


def loss_fn(step: Step, pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Cross-entropy for classes; for forecasts, the configured loss on standardized errors."""
    if step.task == "classification":
        return F.cross_entropy(pred, y, label_smoothing=step.label_smoothing)
    # Learn in standard units: the loss scale (and with it clipping and weight decay) does not
    # depend on the target's units.
    pred, y = pred / step.y_std, y / step.y_std
    return regression_loss(step.loss)(pred, y)


def to_tensors(device: torch.device, task: str) -> Callable[[dict], tuple]:
    """Batch dict -> (x, y) tensors, pinned when they are headed for a GPU."""
    pin = device.type == "cuda"

    def convert(batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.from_numpy(np.ascontiguousarray(batch["x"], dtype=np.float32))
        y = torch.from_numpy(batch["y"])
        y = y.long() if task == "classification" else y.float()
        return (x.pin_memory(), y.pin_memory()) if pin else (x, y)

    return convert


def train_epoch(
    model: nn.Module,
    loader: FeatureLoader,
    epoch: int,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    step: Step,
    progress: Progress,
    prefetch: int,
    after_step: Callable[[], None] | None = None,
) -> dict[str, float]:
    """Exactly ``loader.steps`` optimizer steps; returns loss, samples, seconds, data wait.

    ``after_step`` runs after every optimizer step (the weight average's update).
    """
    model.train()
    started = time.perf_counter()
    batches = Prefetcher(loader.epoch(epoch), prefetch, to_tensors(step.device, step.task))
    total, samples, n = torch.zeros((), device=step.device), 0, 0
    autocast = (
        torch.autocast(device_type=step.device.type, dtype=torch.bfloat16)
        if step.bf16
        else nullcontext()
    )
    for x, y in batches:
        x = x.to(step.device, non_blocking=True)
        y = y.to(step.device, non_blocking=True)
        if step.augment is not None:
            x = step.augment(x.reshape(x.shape[0], *step.x_shape)).reshape(x.shape[0], -1)
        with autocast:
            loss = loss_fn(step, model(x).float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if step.grad_clip > 0:
            nn.utils.clip_grad_norm_(model.parameters(), step.grad_clip)
        optimizer.step()
        scheduler.step()
        if after_step is not None:
            after_step()
        total += loss.detach()
        samples += len(y)
        n += 1
        # Reading the loss syncs the GPU: only do it when the progress line is due.
        if progress.enabled and (progress.tty or n == loader.steps or _due(progress)):
            progress.update(n, samples, float(total) / n)
    seconds = time.perf_counter() - started
    return {
        "loss": float(total) / max(n, 1),
        "samples": float(samples),
        "seconds": seconds,
        "data_wait": batches.waited,
        "steps": float(n),
    }


def _due(progress: Progress) -> bool:
    return time.perf_counter() - progress.last >= progress.every_s


@torch.no_grad()
def evaluate(
    model: nn.Module, loader: FeatureLoader, step: Step, *, world: int, prefetch: int = 2
) -> dict[str, float]:
    """Metrics over every rank's shard, summed across ranks (one all-reduce, so uneven is fine).

    ``model`` must be the bare module, not the DDP wrapper: DDP's forward syncs buffers across
    ranks, and ranks with fewer validation batches would leave the others waiting.
    """
    model.eval()
    sums = torch.zeros(4, dtype=torch.float64, device=step.device)
    for x, y in Prefetcher(loader.epoch(0), prefetch, to_tensors(step.device, step.task)):
        x, y = x.to(step.device, non_blocking=True), y.to(step.device, non_blocking=True)
        pred = model(x).float()
        sums[0] += loss_fn(step, pred, y).double() * len(y)
        sums[1] += len(y)
        if step.task == "classification":
            sums[2] += (pred.argmax(1) == y).sum()
        else:
            err = (pred - y).double()
            sums[2] += err.abs().sum()
            sums[3] += (err * err).sum()
    if world > 1:
        dist.all_reduce(sums)
    loss, n, a, b = sums.tolist()
    n = max(n, 1.0)
    if step.task == "classification":
        return {"loss": loss / n, "accuracy": a / n, "rows": n}
    return {"loss": loss / n, "mae": a / n, "rmse": (b / n) ** 0.5, "rows": n}


@torch.no_grad()
def predict(model: nn.Module, x: np.ndarray, device: torch.device, batch: int = 4096) -> np.ndarray:
    """Model outputs for the rows of ``x``, computed ``batch`` rows at a time on ``device``."""
    model.eval()
    out = []
    for start in range(0, len(x), batch):
        rows = np.ascontiguousarray(x[start : start + batch], dtype=np.float32)
        out.append(model(torch.from_numpy(rows).to(device)).float().cpu().numpy())
    return np.concatenate(out)


def improved(metric: str, value: float, best: float | None, min_delta: float) -> bool:
    """Whether ``value`` beats ``best`` by more than ``min_delta`` in the metric's direction."""
    return better(metric, value, best, min_delta)
