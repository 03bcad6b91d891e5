"""Where the loader's time goes: one path run for a while, sampled by py-spy, bucketed by step.

    python benchmarks/loader_profile.py --kind sequence --workers 1 [--path loader|floor]

Runs the floor (``loader.floor_batches``) or ``FeatureLoader`` in its ``Prefetcher`` with
``to_tensors`` (as training does) over ``--epochs`` epochs of the data ``benchmarks/loader.py``
generates, under ``py-spy record --threads`` (on-CPU samples only, every thread), then buckets
each sample by the step of the path it was in (decode, shuffle gather, batch assembly, the copy
into torch, the hand-off between threads) and prints one Markdown table row per thread and in
all. Needs ``py-spy`` (``pip install py-spy``; not in the locks: a benchmark tool).
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

# First match wins, innermost frame first: a sample in np.take called from the assembler counts
# as the gather, not as assembly. Patterns are function names as py-spy prints them.
BUCKETS = [
    ("decode", ("read_row_group", "_to_numpy", "read(", "_read_group", "make_batch_reader")),
    ("shuffle gather", ("take (", "permutation", "_gather")),
    ("batch assembly", ("_concat", "concatenate", "_interleaved", "_batched", "_assemble")),
    ("copy into torch", ("convert (", "from_numpy", "ascontiguousarray", "to_tensors")),
    ("hand-off", ("put (", "get (", "result (", "_fill", "wait (", "__iter__")),
]


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


def bucket(stack: list[str]) -> str:
    """The step a sample belongs to (``stack`` outermost first)."""
    for frame in reversed(stack):
        for name, patterns in BUCKETS:
            if any(p in frame for p in patterns):
                return name
    return "other"


def summarize(raw: Path) -> tuple[dict, collections.Counter]:
    """Samples per (thread, step) from py-spy's collapsed output, and per thread."""
    per: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        thread = frames[0].split(" ")[0] if frames else "?"
        thread = next((t for t in THREADS if any(t in f for f in frames)), thread)
        per[thread][bucket(frames[1:])] += int(count)
    totals = collections.Counter({t: sum(c.values()) for t, c in per.items()})
    return per, totals


# Threads named by what runs in them (py-spy names threads by id; the entry frame says which).
THREADS = ("run_path", "_fill", "_worker")
LABELS = {"run_path": "main (consumer)", "_fill": "prefetch", "_worker": "reader pool"}


def table(per: dict, totals: collections.Counter) -> str:
    """Share of all on-CPU samples per thread and step, as a Markdown table."""
    steps = [name for name, _ in BUCKETS] + ["other"]
    everything = sum(totals.values())
    lines = [
        "| thread | " + " | ".join(steps) + " | all |",
        "|---" + "|---:" * (len(steps) + 1) + "|",
    ]
    rows = [*per.items(), ("all", sum(per.values(), collections.Counter()))]
    for thread, counts in rows:
        cells = [f"{100 * counts[s] / everything:.0f} %" for s in steps]
        total = sum(counts.values())
        label = LABELS.get(thread, thread)
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {100 * total / everything:.0f} % |")
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
        cmd = [str(spy), "record", "--threads", "-r", str(args.rate), "-f", "raw", "-o", str(raw)]
        subprocess.run([*cmd, "--", *child], check=True)
        per, totals = summarize(raw)
    print(f"\n{args.path}, {args.kind}, {args.workers} thread(s): share of on-CPU samples")
    print(table(per, totals))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
