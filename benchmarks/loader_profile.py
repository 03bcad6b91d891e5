"""Where the loader's time goes: one path run for a while, sampled by py-spy, bucketed by step.

    python benchmarks/loader_profile.py --kind sequence --workers 1 [--path loader|floor]

Runs the floor (``loader.floor_batches``) or ``FeatureLoader`` in its ``Prefetcher`` with
``to_tensors`` (as training does) over ``--epochs`` epochs of the data ``benchmarks/loader.py``
generates, under ``py-spy record --threads`` (every thread, wall-clock samples), then buckets each
sample by the step it was in (decode, permutation, gather, batch assembly, the copy into torch,
the hand-off between threads, waiting) and prints one Markdown row per thread: where that
thread's time went. Needs ``py-spy`` (``pip install py-spy``; not in the locks: a benchmark tool).
"""

from __future__ import annotations

import argparse
import collections
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

# A sample's step: the innermost frame that matches, patterns as py-spy prints function names
# (a sample in ndarray.take called from the assembler is the gather, not assembly). Waiting comes
# first: py-spy cannot tell a thread blocked in a lock from one that runs, so the blocked frames
# are named here, and a thread's "waiting" share is its idle time.
BUCKETS = [
    # an idle pool thread's innermost Python frame is _worker itself (blocked in the C queue)
    ("waiting", ("Condition.wait", "_wait_for_tstate_lock", "Event.wait", "_worker")),
    ("decode", ("read_row_group", "_to_numpy", "ParquetFile.__init__", "open_input_file")),
    ("permutation", ("permutation",)),
    ("gather / shuffle copy", ("take",)),
    (
        "batch assembly",
        ("_concat", "concatenate", "_interleaved", "_batched", "assemble", "copy_into", "Buffers"),
    ),
    ("copy into torch", ("convert", "from_numpy", "ascontiguousarray", "to_tensors")),
    ("hand-off", ("Queue.put", "Queue.get", "Future.result", "_fill", "__iter__")),
]
STARTUP = ("_find_and_load", "generate", "datagen")  # imports and data checks: not the path


def run_path(args: argparse.Namespace) -> None:
    """The measured process: one path, ``--epochs`` epochs, samples/s printed at the end."""
    import torch

    import datagen_features as datagen
    from deepspark.data import FeatureLoader, Prefetcher, to_url
    from deepspark.train.loop import to_tensors
    from loader import DEFAULT_ROWS, consume, floor_batches

    rows = args.rows or DEFAULT_ROWS[args.kind]
    manifest = datagen.generate(args.root, args.kind, rows, 8, 16, 7)
    split = datagen.split_dir(args.root, args.kind, rows) / "train"
    task = "classification" if args.kind == "image" else "regression"
    convert, b = to_tensors(torch.device("cpu"), task), 256
    files = sorted(split.glob("*.parquet"))
    started, n = time.perf_counter(), 0
    for e in range(args.epochs):
        if args.path == "floor":
            n += consume(map(convert, floor_batches(files, manifest["x_len"], b, args.workers, e)))
        else:
            fl = FeatureLoader(
                to_url(str(split)), ["x", "y"], batch_size=b, shuffle=True, seed=0,
                steps=manifest["rows"] // b, workers=args.workers,
            )  # fmt: skip
            n += consume(Prefetcher(fl.epoch(e), 4, convert))
    print(f"{args.path} w{args.workers}: {n / (time.perf_counter() - started):,.0f} samples/s")


def bucket(frames: list[str]) -> str:
    """The step a sample belongs to (``frames`` outermost first)."""
    for frame in reversed(frames):
        name = frame.split(" (")[0]
        for step, patterns in BUCKETS:
            if any(p in name for p in patterns):
                return step
    return "other"


def thread_of(frames: list[str]) -> str:
    """A thread's role from its entry frames (py-spy's thread names go stale as ids are reused)."""
    names = " ".join(frames[:6])
    if "_worker" in names:
        return "reader"
    if "_fill" in names:
        return "prefetch"
    if "<module>" in names or "main" in names:
        return "main (consumer)"
    return "other"


def summarize(raw: Path) -> dict[str, collections.Counter]:
    """Samples per thread role and step from py-spy's raw (collapsed) output."""
    per: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        if any(s in f for f in frames for s in STARTUP):
            continue
        per[thread_of(frames[1:])][bucket(frames[1:])] += int(count)
    return per


def table(per: dict[str, collections.Counter]) -> str:
    """Each thread's samples by step, in % of that thread's samples, as a Markdown table."""
    steps = [name for name, _ in BUCKETS] + ["other"]
    lines = ["| thread | " + " | ".join(steps) + " |", "|---" + "|---:" * len(steps) + "|"]
    for thread, counts in sorted(per.items()):
        total = sum(counts.values())
        if total < 20:  # a thread that barely ran (e.g. Petastorm's or torch's helpers)
            continue
        cells = [f"{100 * counts[s] / total:.0f} %" for s in steps]
        lines.append(f"| {thread} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Command line: profile one path under py-spy, or (``--child``) be the profiled process."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--kind", choices=["sequence", "image"], default="sequence")
    p.add_argument("--path", choices=["loader", "floor"], default="loader")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--rows", type=int)
    p.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    p.add_argument("--root", type=Path, default=Path("/tmp/deepspark-bench/features"))
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        run_path(args)
        return 0
    spy = Path(sys.executable).with_name("py-spy")
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "profile.txt"
        child = [sys.executable, __file__, "--child", *(argv or sys.argv[1:])]
        cmd = [str(spy), "record", "--threads", "--idle", "-r", str(args.rate), "-f", "raw"]
        cmd += ["-o", str(raw)]
        subprocess.run([*cmd, "--", *child], check=True)
        per = summarize(raw)
    print(f"\n{args.path}, {args.kind}, {args.workers} thread(s): each thread's time by step")
    print(table(per))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
