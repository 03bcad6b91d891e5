"""Launch benchmark: TorchDistributor local mode, from run() to the first training step.

    python benchmarks/launch.py [--repeat 3] [--mode real|minimal|both] [--set KEY=VALUE ...]

One SparkSession (local[2], conf/base.yaml's profile) is built first and not counted. Then, per
repeat, ``t0 = time.time()`` right before the launch and each rank writes wall-clock marks:
``created`` (its process start), ``entered`` (the function unpickled and called), ``imported``
(torch and the training modules), ``pg_ready`` (init_process_group done), ``optimizer`` (model
and AdamW built), ``first_batch`` and ``first_step`` (the first optimizer step done). Modes:

* ``real``: the project's entry, ``deepspark.train.launch.with_distributor(job)`` for
  conf/digits.yaml with ``pipeline.train.epochs=1`` and MLflow off; ``train_worker`` is wrapped
  (in this process only, no lib/ change) to install the marks: a patched init_process_group,
  AdamW and Prefetcher subclasses, a global optimizer step hook. Also the whole job's wall time.
* ``minimal``: ``TorchDistributor(2, local_mode=True, use_gpu=False).run(fn)`` with a small fn:
  gloo, a FeatureLoader on the digits train split, one DDP step of a 2-layer MLP.

Results go to benchmarks/results/launch-<date>.json and a Markdown table to stdout (worker logs go
to stderr). Target: first step <= 10 s after the call.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from etl import code_hash, machine

ROOT = Path(__file__).resolve().parents[1]
DIGITS = ROOT / "work" / "data" / "features" / "digits" / "train"
MARKS_ENV = "DEEPSPARK_BENCH_MARKS"
PHASES = ("created", "entered", "imported", "pg_ready", "optimizer", "first_batch", "first_step")
TARGET_S = 10.0


def _save(marks: dict) -> None:
    """This rank's marks, as a file in the folder the driver named (rewritten as they grow)."""
    path = Path(os.environ[MARKS_ENV]) / f"rank{os.environ.get('RANK', '0')}.json"
    path.write_text(json.dumps(marks))


def timed_worker(job: object) -> object:
    """deepspark's train_worker with wall-clock marks around its startup (runs in each rank)."""
    import time

    marks = {"entered": time.time()}
    import psutil
    import torch
    import torch.distributed as dist
    from torch.optim.optimizer import register_optimizer_step_post_hook

    from deepspark.train import loop
    from deepspark.train.worker import train_worker

    marks.update(imported=time.time(), created=psutil.Process().create_time())
    init = dist.init_process_group

    def init_process_group(*args: object, **kwargs: object) -> None:
        init(*args, **kwargs)
        marks["pg_ready"] = time.time()

    class AdamW(torch.optim.AdamW):  # the first optimizer imports torch._dynamo (seconds)
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, **kwargs)
            marks.setdefault("optimizer", time.time())

    class Prefetcher(loop.Prefetcher):
        def __iter__(self):  # noqa: ANN204
            for item in super().__iter__():
                marks.setdefault("first_batch", time.time())
                yield item

    def step_hook(*_: object) -> None:
        if "first_step" not in marks:
            marks["first_step"] = time.time()
            _save(marks)

    dist.init_process_group, loop.Prefetcher = init_process_group, Prefetcher
    torch.optim.AdamW = AdamW
    hook = register_optimizer_step_post_hook(step_hook)
    try:
        return train_worker(job)
    finally:
        hook.remove()
        marks["finished"] = time.time()
        _save(marks)


def minimal_worker(url: str, rows: int, batch_size: int) -> None:
    """Startup as training does it, then one DDP step on the first batch (runs in each rank)."""
    import time

    marks = {"entered": time.time()}
    import psutil
    import torch
    import torch.distributed as dist
    import torch.nn.functional as F
    from torch import nn
    from torch.nn.parallel import DistributedDataParallel as DDP

    from deepspark.data import FeatureLoader, Prefetcher
    from deepspark.train.loop import to_tensors

    marks.update(imported=time.time(), created=psutil.Process().create_time())
    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    marks["pg_ready"] = time.time()
    rank, world = dist.get_rank(), dist.get_world_size()
    net = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-3)  # then DDP, as the Trainer does
    marks["optimizer"] = time.time()
    model = DDP(net)
    loader = FeatureLoader(
        url, ["x", "y"], batch_size=batch_size, rank=rank, world=world, shuffle=True,
        steps=rows // (world * batch_size),
    )  # fmt: skip
    for x, y in Prefetcher(loader.epoch(0), 4, to_tensors(torch.device("cpu"), "classification")):
        marks["first_batch"] = time.time()
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        marks["first_step"] = time.time()
        break
    dist.destroy_process_group()
    marks["finished"] = time.time()
    _save(marks)


def launch_once(mode: str, spark: object, args: argparse.Namespace, scratch: Path) -> dict:
    """One launch: its marks per rank relative to t0 (seconds), and the call's wall time."""
    from pyspark.ml.torch.distributor import TorchDistributor

    from deepspark.config import load_config
    from deepspark.data import inspect_split
    from deepspark.train import launch
    from deepspark.train.job import prepare

    marks_dir = Path(tempfile.mkdtemp(dir=scratch, prefix=f"{mode}-"))
    os.environ[MARKS_ENV] = str(marks_dir)
    if mode == "real":  # prepared outside the timing, as the train stage does before launching
        overrides = [
            f"paths.data={ROOT / 'work' / 'data'}",
            f"paths.checkpoints={marks_dir / 'checkpoints'}",
            "pipeline.train.epochs=1",
            "mlflow.enabled=false",
            *args.set,
        ]
        job = prepare(load_config(ROOT / "conf" / "digits.yaml", overrides))
        launch.train_worker = timed_worker  # with_distributor runs whatever this name holds
        t0 = time.time()
        launch.with_distributor(job)
    else:
        split = inspect_split(str(DIGITS))
        distributor = TorchDistributor(num_processes=2, local_mode=True, use_gpu=False)
        t0 = time.time()
        distributor.run(minimal_worker, split.url, split.rows, args.batch_size)
    wall = time.time() - t0
    ranks = [json.loads(p.read_text()) for p in sorted(marks_dir.glob("rank*.json"))]
    if not ranks or any("first_step" not in r for r in ranks):
        raise RuntimeError(f"{mode}: a rank recorded no first step (marks: {ranks})")
    rel = [{k: round(r[k] - t0, 3) for k in PHASES if k in r} for r in ranks]
    return {
        "ranks": rel,
        "first_step_s": max(r["first_step"] for r in rel),
        "wall_s": round(wall, 3),
    }


def summarize(runs: list[dict]) -> dict:
    """Medians over repeats of the slowest rank's marks, and of the first step and wall time."""
    phases = {
        k: round(statistics.median(max(r[k] for r in run["ranks"]) for run in runs), 3)
        for k in PHASES
        if all(k in r for run in runs for r in run["ranks"])
    }
    first = [run["first_step_s"] for run in runs]
    return {
        "first_step_median_s": round(statistics.median(first), 3),
        "first_step_s": first,
        "wall_median_s": round(statistics.median(run["wall_s"] for run in runs), 3),
        "wall_s": [run["wall_s"] for run in runs],
        "phases_median_s": phases,
        "meets_target": statistics.median(first) <= TARGET_S,
    }


def markdown(summaries: dict) -> str:
    """All modes as one Markdown table: seconds after the call, slowest rank, median of repeats."""
    lines = [
        "| mode | " + " | ".join(PHASES) + " | first step (all) | job wall (all) |",
        "|---|" + "---:|" * (len(PHASES) + 2),
    ]
    for mode, s in summaries.items():
        cells = [f"{s['phases_median_s'].get(k, float('nan')):.2f}" for k in PHASES]
        cells[-1] = f"**{cells[-1]}**" + ("" if s["meets_target"] else " ✗")
        first = ", ".join(f"{v:.2f}" for v in s["first_step_s"])
        wall = ", ".join(f"{v:.1f}" for v in s["wall_s"])
        lines.append(f"| {mode} | " + " | ".join(cells) + f" | {first} | {wall} |")
    lines.append(f"\nseconds from the call (t0) to each mark; target first step <= {TARGET_S} s")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Command line: launch ``--repeat`` times per mode in one Spark session; report."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--mode", choices=["real", "minimal", "both"], default="both")
    p.add_argument("--batch-size", type=int, default=32, help="minimal mode, per process")
    p.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE",
        help="a config override for the real job (e.g. pipeline.train.batch_size=64)",
    )  # fmt: skip
    p.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results")
    args = p.parse_args(argv)
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    from deepspark.config import load_config
    from deepspark.spark import build_session

    modes = ["real", "minimal"] if args.mode == "both" else [args.mode]
    cfg = load_config(ROOT / "conf" / "digits.yaml", ["mlflow.enabled=false"])
    started = time.perf_counter()
    spark = build_session(cfg.spark, app_name="deepspark-bench-launch")
    report: dict = {"command": " ".join(["python", *sys.argv]), "machine": machine()}
    report.update(code_sha=code_hash(), spark=spark.version, modes={})
    report["session_startup_s"] = round(time.perf_counter() - started, 2)
    runs: dict[str, list] = {m: [] for m in modes}
    with tempfile.TemporaryDirectory(prefix="deepspark-launch-") as scratch:
        for r in range(args.repeat):
            for mode in modes:  # interleaved: drift on a shared machine hits both alike
                with contextlib.redirect_stdout(sys.stderr):  # the workers' logs
                    runs[mode].append(launch_once(mode, spark, args, Path(scratch)))
                print(f"{mode} #{r}: {runs[mode][-1]}", file=sys.stderr, flush=True)
    spark.stop()
    for mode in modes:
        report["modes"][mode] = {"summary": summarize(runs[mode]), "runs": runs[mode]}
    print(markdown({m: v["summary"] for m, v in report["modes"].items()}))
    args.results.mkdir(parents=True, exist_ok=True)
    path = args.results / f"launch-{dt.date.today().isoformat()}.json"
    earlier = json.loads(path.read_text())["runs"] if path.exists() else []  # one per command
    path.write_text(json.dumps({"runs": [*earlier, report]}, indent=2) + "\n")
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
