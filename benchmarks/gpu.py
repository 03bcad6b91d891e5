"""Accelerator benchmark: does the loader keep a training step fed? One command, CUDA or CPU.

    python benchmarks/gpu.py              # the models, ~3-4 min on one GPU
    python benchmarks/gpu.py --emulate    # a calibrated sleep for the step, a few min on CPU
    python benchmarks/gpu.py --quick      # smoke run (tests), either mode

Needs only torch, numpy, pyarrow, pyyaml and deepspark (``pip install --no-deps``): it writes its
own feature Parquet (no Spark, no network). Per case (the CNN on 1x28x28 and 3x64x64 images, the
LSTM on 24x15 windows) the same model step is fed two ways: by the real loader (``FeatureLoader``
in the ``Prefetcher``, with ``to_tensors`` and a non-blocking copy, as ``train/loop.py`` does)
and from batches pre-staged on the device, each with bf16 autocast off and on.

Accelerator utilization is MLPerf Storage's: AU = compute time / wall time. Compute time is the
step's own duration: CUDA events around it on a GPU (host-side gaps between steps count as
idle), the clock on a CPU. ``--emulate`` replaces the step by a sleep of 1, 5 and 20 ms per
batch of 256 (as MLPerf Storage's DLIO emulates an accelerator) and counts that nominal time as
compute; the sleep uses no host CPU, so it shows how fast a step the loader alone can keep fed.
Results: benchmarks/results/gpu-*.json and a Markdown table on stdout.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from deepspark.config.architectures import CNNConfig, RNNConfig
from deepspark.config.train import TrainConfig
from deepspark.data import FeatureLoader, Prefetcher, to_url
from deepspark.models import build_model
from deepspark.train.loop import Step, loss_fn, to_tensors

ROOT = Path(__file__).resolve().parents[1]
STEP_MS = (1.0, 5.0, 20.0)  # emulated step per batch of 256 samples
AU_TARGET = 0.9  # MLPerf Storage's pass mark for most of its workloads
Feed = Iterator[tuple[torch.Tensor, torch.Tensor]]


@dataclass(frozen=True)
class Case:
    """One model on one kind of feature row."""

    name: str
    x_shape: tuple[int, ...]
    rows: int  # written for a full run; the loader cycles them
    train: TrainConfig
    n_out: int  # classes, or 1 for a forecast

    @property
    def task(self) -> str:  # noqa: D102
        return "classification" if self.n_out > 1 else "regression"


CASES = (
    Case("cnn-1x28x28", (1, 28, 28), 16384, TrainConfig(model="cnn", cnn=CNNConfig()), 10),
    Case("cnn-3x64x64", (3, 64, 64), 4096, TrainConfig(model="cnn", cnn=CNNConfig()), 10),
    Case("lstm-24x15", (24, 15), 32768, TrainConfig(model="rnn", rnn=RNNConfig()), 1),
)


def write_split(folder: Path, case: Case, rows: int, seed: int = 0) -> str:
    """``rows`` feature rows in the features stage's layout: 4 row groups per file, ~2 MB each."""
    rng = np.random.default_rng(seed)
    width = math.prod(case.x_shape)
    per_group = max(64, (2 << 20) // (4 * width))
    folder.mkdir(parents=True, exist_ok=True)
    for i, start in enumerate(range(0, rows, 4 * per_group)):
        n = min(4 * per_group, rows - start)
        if case.task == "classification":  # pixels / max_value, as the features stage writes
            x = rng.integers(0, 256, (n, width), dtype=np.uint8).astype(np.float32) / 255
            y = pa.array(rng.integers(0, case.n_out, n, dtype=np.int32))
        else:
            x = rng.standard_normal((n, width), dtype=np.float32)
            y = pa.array(rng.standard_normal(n, dtype=np.float32))
        offsets = pa.array(np.arange(n + 1, dtype=np.int32) * width)
        xs = pa.ListArray.from_arrays(offsets, pa.array(x.reshape(-1)))
        table = pa.table({"x": xs, "y": y})
        pq.write_table(table, folder / f"part-{i:05d}.parquet", row_group_size=per_group)
    return to_url(str(folder))


def loader_feed(url: str, case: Case, batch: int, device: torch.device, workers: int) -> Prefetcher:
    """Batches as training gets them: shuffled, mixed, converted and pinned in the prefetcher."""
    lcfg = case.train.loader
    loader = FeatureLoader(
        url, ["x", "y"], batch_size=batch, shuffle=True, steps=10**9, mix=lcfg.mix,
        workers=workers, backend=lcfg.backend,
    )  # fmt: skip
    return Prefetcher(loader.epoch(0), lcfg.prefetch, to_tensors(device, case.task))


def staged_feed(url: str, case: Case, batch: int, device: torch.device, count: int = 8) -> Feed:
    """``count`` real batches moved to the device once, then cycled: data costs nothing."""
    feed = loader_feed(url, case, batch, device, workers=1)
    staged = [(x.to(device), y.to(device)) for (x, y), _ in zip(feed, range(count), strict=False)]
    feed.close()
    while True:
        yield from staged


def model_step(case: Case, device: torch.device, bf16: bool) -> Callable[..., None]:
    """The training step of ``train/loop.py`` (autocast, loss, backward, AdamW) for this model."""
    torch.manual_seed(0)
    scale = (0.0, 1.0) if case.task == "regression" else None
    net = build_model(case.train, case.x_shape, case.n_out, y_scale=scale).to(device).train()
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-3)
    loss = "cross_entropy" if case.task == "classification" else "l1"
    step = Step(case.task, loss, 1.0, device, bf16, 0.0)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else nullcontext()
    clip = case.train.grad_clip  # training clips by default: part of the step's cost

    def run(x: torch.Tensor, y: torch.Tensor) -> None:
        with autocast:
            value = loss_fn(step, net(x).float(), y)
        optimizer.zero_grad(set_to_none=True)
        value.backward()
        if clip > 0:
            torch.nn.utils.clip_grad_norm_(net.parameters(), clip)
        optimizer.step()

    return run


def bf16_works(case: Case, device: torch.device) -> bool:
    """Whether this device trains ``case`` under bf16 autocast at all.

    oneDNN has no bf16 LSTM on CPUs without AVX-512 ("could not create a primitive
    descriptor"): there the bench measures fp32 only, and says so. Training itself uses bf16 on
    GPUs only (``precision: auto``).
    """
    x = torch.randn(2, *case.x_shape, device=device)
    y = torch.zeros(2, dtype=torch.long if case.task == "classification" else torch.float)
    try:
        model_step(case, device, True)(x, y.to(device))
    except RuntimeError as e:
        print(f"  {case.name}: no bf16 on {device} ({str(e).splitlines()[0][:80]})",
              file=sys.stderr)  # fmt: skip
        return False
    return True


def sleep_step(ms: float, reps: int = 10) -> Callable[..., None]:
    """A step that sleeps ``ms``: ``time.sleep`` overshoots, so ask for the least overshoot less.

    The least, not the typical: a sleep must never end early, or the nominal compute it stands
    for would exceed the time it took.
    """
    target = ms / 1000
    over = []
    for _ in range(reps):
        start = time.perf_counter()
        time.sleep(target)
        over.append(time.perf_counter() - start - target)
    ask = max(0.0, target - min(over))
    return lambda x, y: time.sleep(ask)


def measure(
    feed: Feed,
    step: Callable[..., None],
    device: torch.device,
    *,
    batch: int,
    seconds: float,
    warmup: int,
    min_steps: int,
    gpu_clock: bool,
    nominal_s: float | None = None,
) -> dict:
    """Run steps for ``seconds`` (at least ``min_steps``) after ``warmup``; AU and samples/s.

    ``nominal_s`` (emulation): the accelerator's time per step, counted as compute even when the
    sleep took longer (never more than it took); a sleep stretched by the host (its thread
    waiting for a core or the GIL after waking) is then a loss, as it would be for a real
    accelerator waiting on that thread.
    """
    source = iter(feed)
    for _ in range(warmup):
        x, y = next(source)
        step(x.to(device, non_blocking=True), y.to(device, non_blocking=True))
    waited0 = getattr(feed, "waited", 0.0)
    _sync(device)
    events: list = []
    compute = nominal_compute = 0.0
    steps, start = 0, time.perf_counter()
    while steps < min_steps or time.perf_counter() - start < seconds:
        x, y = next(source)
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        if gpu_clock:  # stream-ordered: the copy above is not compute, gaps between steps are idle
            pair = (torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
            pair[0].record()
            step(x, y)
            pair[1].record()
            events.append(pair)
        else:
            t0 = time.perf_counter()
            step(x, y)
            took_step = time.perf_counter() - t0
            compute += took_step
            # A calibrated sleep can still end before its nominal time (calibrated while the host
            # was busier): the accelerator it stands for never computes longer than the step took.
            nominal_compute += took_step if nominal_s is None else min(nominal_s, took_step)
        steps += 1
    _sync(device)
    wall = time.perf_counter() - start
    compute += sum(a.elapsed_time(b) for a, b in events) / 1000
    took, compute = compute, compute if nominal_s is None or gpu_clock else nominal_compute
    waited = getattr(feed, "waited", 0.0) - waited0
    return {
        "steps": steps, "wall_s": round(wall, 4), "compute_s": round(compute, 4),
        "au": round(compute / wall, 4), "samples_per_s": round(steps * batch / wall, 1),
        "data_wait_fraction": round(waited / wall, 4), "step_ms": round(1000 * took / steps, 3),
    }  # fmt: skip


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_case(url: str, case: Case, args: argparse.Namespace, device: torch.device) -> list[dict]:
    """Every feed x (bf16 setting, or emulated step time) for one case."""
    out = []
    kw = {"batch": args.batch_size, "seconds": args.seconds, "warmup": args.warmup,
          "min_steps": args.min_steps}  # fmt: skip
    if args.emulate:
        settings = [{"step": ms} for ms in STEP_MS]
    else:
        settings = [{"bf16": b} for b in (0, 1) if not b or bf16_works(case, device)]
    for setting in settings:
        for feed_name in ("staged", "loader"):
            nominal = None
            if args.emulate:
                # Sleeps are scaled with the batch: the step times are per 256 samples.
                nominal = setting["step"] * args.batch_size / 256 / 1000
                step = sleep_step(1000 * nominal)
            else:
                step = model_step(case, device, bool(setting["bf16"]))
            if feed_name == "loader":
                feed = loader_feed(url, case, args.batch_size, device, args.workers)
            else:
                feed = staged_feed(url, case, args.batch_size, device)
            gpu_clock = device.type == "cuda" and not args.emulate
            try:
                m = measure(feed, step, device, gpu_clock=gpu_clock, nominal_s=nominal, **kw)
            finally:
                feed.close()
            row = {"case": case.name, "x_shape": list(case.x_shape), "feed": feed_name}
            out.append({**row, **setting, **m})
            print(f"  {case.name} {feed_name} {setting}: {m['samples_per_s']:,.0f} samples/s, "
                  f"AU {m['au']:.3f}", file=sys.stderr, flush=True)  # fmt: skip
    for r in out:  # the loader's rate over the staged one with the same setting
        ref = next(s for s in out if s["feed"] == "staged" and _same(s, r))
        r["vs_staged"] = round(r["samples_per_s"] / ref["samples_per_s"], 3)
    return out


def _same(a: dict, b: dict) -> bool:
    return all(a.get(k) == b.get(k) for k in ("bf16", "step"))


def device_info(device: torch.device) -> dict:
    """What ran the steps: the GPU's name, or the CPU model and core count."""
    info = {"type": device.type, "torch": torch.__version__, "cpus": os.cpu_count(),
            "python": platform.python_version()}  # fmt: skip
    if device.type == "cuda":
        return {**info, "name": torch.cuda.get_device_name(device), "cuda": torch.version.cuda}
    name = platform.processor() or platform.machine()
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        name = next(ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {**info, "name": name}


def table(result: dict) -> str:
    """The results as a Markdown table."""
    key = "step" if result["mode"] == "emulate" else "bf16"
    head = "emulated ms/256" if key == "step" else "bf16"
    lines = [f"Device: {result['device']['name']} ({result['device']['type']}), "
             f"batch {result['settings']['batch_size']}, mode {result['mode']}", "",
             f"| case | {head} | feed | samples/s | AU | data wait | vs staged |",
             "|---|---:|---|---:|---:|---:|---:|"]  # fmt: skip
    for r in result["results"]:
        mark = " ✗" if r["feed"] == "loader" and r["au"] < AU_TARGET else ""
        lines.append(
            f"| {r['case']} | {r[key]} | {r['feed']} | {r['samples_per_s']:,.0f} | "
            f"{r['au']:.3f}{mark} | {r['data_wait_fraction']:.3f} | {r['vs_staged']:.2f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    """Parse arguments, run every case, write the JSON; returns the result."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--emulate", action="store_true", help="a calibrated sleep for the step")
    p.add_argument("--quick", action="store_true", help="tiny data, a few steps (smoke test)")
    p.add_argument("--device", default="auto", help="auto (cuda if present), cuda or cpu")
    p.add_argument("--seconds", type=float, help="per run (default 10, emulate 8, quick 0.2)")
    p.add_argument("--batch-size", type=int, help="default 256, quick 32")
    p.add_argument("--workers", type=int, default=TrainConfig(model="cnn").loader.workers)
    p.add_argument("--cases", default=",".join(c.name for c in CASES))
    p.add_argument("--data", help="folder for the Parquet (default: a temporary one)")
    p.add_argument("--out", help="JSON path (default benchmarks/results/gpu[-emulate]-DATE.json)")
    args = p.parse_args(argv)
    quick = args.quick
    if args.seconds is None:
        args.seconds = 0.2 if quick else 8.0 if args.emulate else 10.0
    args.batch_size = args.batch_size or (32 if quick else 256)
    args.warmup, args.min_steps = (1, 2) if quick else (5, 10)
    auto = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(auto if args.device == "auto" else args.device)
    wanted = args.cases.split(",")
    with tempfile.TemporaryDirectory(prefix="deepspark-gpu-") as tmp:
        data = Path(args.data or tmp)
        results = []
        for case in (c for c in CASES if c.name in wanted):
            rows = 8 * args.batch_size if quick else case.rows
            url = write_split(data / case.name, case, rows)
            results += run_case(url, case, args, device)
    mode = "emulate" if args.emulate else "model"
    result = {
        "benchmark": "gpu", "mode": mode, "quick": quick, "date": dt.date.today().isoformat(),
        "device": device_info(device), "au_target": AU_TARGET,
        "settings": {k: getattr(args, k) for k in ("batch_size", "seconds", "warmup",
                                                   "min_steps", "workers")},
        "results": results,
    }  # fmt: skip
    name = f"gpu{'-emulate' if args.emulate else ''}{'-quick' if quick else ''}"
    out = Path(args.out or ROOT / "benchmarks" / "results" / f"{name}-{result['date']}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(table(result))
    print(f"\nwritten: {out}")
    return result


if __name__ == "__main__":
    main()
