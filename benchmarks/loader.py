"""Loader benchmark: deepspark's FeatureLoader against pyarrow's floor and Petastorm's converter.

    python benchmarks/loader.py [--kind sequence|image|both] [--rows N] [--epochs 10] [--repeat 3]

Per kind: write (or reuse) a synthetic feature split with pyarrow (datagen_features.py), then in
THIS process measure samples/s and MB/s (decoded float32 x + y), at every reader thread count in
``--threads`` (default 1..cores), ``--repeat`` runs each, interleaved run by run, of: the floor
(pyarrow reading the same row groups, in a seeded order, into the same (B, L) float32 arrays and
torch tensors, zero-copy); the floor plus one copy (its batches gathered once in a random order:
the least a shuffling reader adds); FeatureLoader(shuffle=True, steps=one epoch) in a Prefetcher
with to_tensors, as training runs it; and the Petastorm backend (1 and 2 threads). Then the
loader's RSS after each of ``--epochs`` epochs (1 thread); and last, once Spark is up,
Petastorm's ``make_spark_converter(df).make_torch_dataloader(batch_size)`` with its defaults,
capped at ``--converter-rows`` rows per pass. Results go to
benchmarks/results/loader-<date>.json and a Markdown table to stdout.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import psutil
import pyarrow as pa
import pyarrow.parquet as pq

import datagen_features as datagen
from etl import code_hash, machine

# The floor hands torch Arrow's read-only buffers (zero copy); torch warns once, harmlessly.
warnings.filterwarnings("ignore", message="The given NumPy array is not writable")

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_ROWS = {"sequence": 500_000, "image": 160_000}  # ~530 / ~500 MB of decoded floats
# Targets (issue 17): the loader >= 0.9x the floor at the same thread count (1 and 2), >= the
# Petastorm backend thread for thread, RSS trend within +-1 MiB/epoch; >= 3x the converter.
TARGET_FLOOR, TARGET_CONVERTER, TARGET_RSS_SLOPE = 0.9, 3.0, 1.0
TARGET_THREADS = (1, 2)  # the thread counts the floor and Petastorm targets are checked at
AUTO_MARGIN = 0.9  # auto may pick Petastorm only at >= 0.9x arrow's samples/s (backend.py)
MB = 1e6


class RssSampler(threading.Thread):
    """This process's resident memory, sampled every 0.05 s: the peak, and the samples since
    the last :meth:`take` (an epoch's median is steadier than one sample at its end, which
    swings by tens of MiB with the timing of the allocator's page purges)."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak, self.done, self._me = 0, threading.Event(), psutil.Process()
        self.samples: list[int] = []

    def now(self) -> int:
        rss = self._me.memory_info().rss
        self.peak = max(self.peak, rss)
        self.samples.append(rss)
        return rss

    def take(self) -> list[int]:
        """The samples since the last call (at least one: now)."""
        self.now()
        out, self.samples = self.samples, []
        return out

    def run(self) -> None:
        while not self.done.wait(0.05):
            self.now()


def floor_batches(files: list[Path], length: int, batch: int, threads: int, seed: int) -> Iterator:
    """pyarrow alone: row groups in a seeded order, ``threads`` read ahead, cut into batches."""
    counts = [pq.ParquetFile(f).metadata.num_row_groups for f in files]
    groups = [(f, g) for f, n in zip(files, counts, strict=True) for g in range(n)]
    order = np.random.default_rng(seed).permutation(len(groups))

    def read(k: int) -> tuple[np.ndarray, np.ndarray]:
        f, g = groups[k]
        t = pq.ParquetFile(f).read_row_group(g, columns=["x", "y"])
        x = t.column("x").combine_chunks().flatten().to_numpy().reshape(-1, length)
        return x, t.column("y").to_numpy()

    held: tuple | None = None  # a short batch's rows, completed from the next row group
    with ThreadPoolExecutor(threads) as pool:
        pending = [pool.submit(read, k) for k in order[:threads]]
        for k in [*order[threads:], *[None] * len(pending)]:
            x, y = pending.pop(0).result()
            if k is not None:
                pending.append(pool.submit(read, k))
            if held is not None and len(held[1]) + len(y) < batch:  # a tiny row group
                held = (np.concatenate([held[0], x]), np.concatenate([held[1], y]))
                continue
            s = 0
            if held is not None:  # only the straddling batch is copied
                s = batch - len(held[1])
                yield {"x": np.concatenate([held[0], x[:s]]), "y": np.concatenate([held[1], y[:s]])}
            while s + batch <= len(y):
                yield {"x": x[s : s + batch], "y": y[s : s + batch]}
                s += batch
            held = (x[s:], y[s:]) if s < len(y) else None


def copied_once(batches: Iterator, seed: int) -> Iterator:
    """The floor's batches, each gathered once in a random row order into a fresh buffer.

    Not a loader: the least work any shuffling reader adds to the floor (one copy of every value;
    the floor's batches are zero-copy views of the decoded groups). The loader is held to the
    floor itself; this shows how much of the gap one copy already is.
    """
    rng = np.random.default_rng(seed)
    for b in batches:
        order = rng.permutation(len(b["y"]))
        yield {k: np.take(v, order, axis=0) for k, v in b.items()}


def consume(batches: object, seen: dict | None = None) -> int:
    """Take every batch and do nothing with it; returns the rows seen, notes the first batch."""
    n = 0
    for b in batches:
        x, y = b if isinstance(b, tuple) else (b["x"], b["y"])
        if seen is not None and not seen:
            seen.update(x=_describe(x), y=_describe(y))
        n += len(y)
    return n


def _describe(v: object) -> str:
    return f"{type(v).__name__} {v.dtype} {tuple(v.shape)}"


def timed(fn: object) -> dict:
    """Rows, wall seconds and this process's CPU seconds (all threads, Arrow's pool included)."""
    started, cpu = time.perf_counter(), time.process_time()
    rows = fn()
    return {
        "rows": rows,
        "seconds": round(time.perf_counter() - started, 4),
        "cpu_seconds": round(time.process_time() - cpu, 4),
    }


def bench_local(manifest: dict, split: Path, args: argparse.Namespace) -> dict:
    """Floor and FeatureLoader, all in this process (no Spark yet)."""
    import torch

    from deepspark.data import FeatureLoader, Prefetcher, backend, to_url
    from deepspark.data.arrow import retain_freed_memory
    from deepspark.train.loop import to_tensors

    task = "classification" if manifest["kind"] == "image" else "regression"
    convert = to_tensors(torch.device("cpu"), task)
    files, length, b = sorted(split.glob("*.parquet")), manifest["x_len"], args.batch_size
    steps = manifest["rows"] // b
    out: dict = {"first_batch": {}}
    retain_freed_memory()  # the loader's allocator setting, for the floor too (arrow.py)
    consume(map(convert, floor_batches(files, length, b, 2, seed=99)))  # warm-up, not measured

    def loader(workers: int, backend: str = "arrow") -> FeatureLoader:
        return FeatureLoader(
            to_url(str(split)), ["x", "y"], batch_size=b, shuffle=True, seed=0, steps=steps,
            workers=workers, backend=backend,
        )  # fmt: skip

    def epoch(fl: FeatureLoader, e: int, seen: dict) -> dict:
        return timed(lambda: consume(Prefetcher(fl.epoch(e), args.prefetch, convert), seen))

    # Every path at every thread count, interleaved run by run so that drift on a shared machine
    # hits all alike: the floor, the floor plus one copy, the loader (backend: arrow), and the
    # Petastorm backend at the target thread counts where it is installed (not in every lock).
    paths: dict[str, object] = {}
    for t in args.threads:
        paths[f"floor_t{t}"] = lambda r, t=t: timed(
            lambda: consume(map(convert, floor_batches(files, length, b, t, seed=r)))
        )
        paths[f"floor_copy_t{t}"] = lambda r, t=t: timed(
            lambda: consume(map(convert, copied_once(floor_batches(files, length, b, t, r), r)))
        )
        paths[f"loader_w{t}"] = lambda r, t=t, key=f"loader_w{t}": epoch(
            loader(t), r, out["first_batch"].setdefault(key, {})
        )
        if t in TARGET_THREADS and backend.petastorm_installed():
            key = f"loader_petastorm_w{t}"
            paths[key] = lambda r, t=t, key=key: epoch(
                loader(t, "petastorm"), r, out["first_batch"].setdefault(key, {})
            )
    for key in paths:
        out[key] = []
    for r in range(args.repeat):
        for key, run in paths.items():
            out[key].append(run(r))
            print(f"  {key} run {r}: {out[key][-1]['seconds']:.2f}s", file=sys.stderr)

    fl, rss, ends, arrow_bytes = loader(1), [], [], []
    mem = RssSampler()
    mem.start()
    before = mem.now()
    mem.take()
    for e in range(max(1, args.epochs)):  # memory over many epochs: arrow, 1 thread
        seconds = epoch(fl, e, {})["seconds"]
        samples = mem.take()
        rss.append(statistics.median(samples) / 2**20)
        ends.append(samples[-1] / 2**20)
        arrow_bytes.append(pa.total_allocated_bytes())  # what Arrow still holds: 0 = no leak
        print(f"  loader w1 epoch {e}: {seconds:.2f}s", file=sys.stderr)
    mem.done.set()
    slope = float(np.polyfit(np.arange(len(rss)), rss, 1)[0]) if len(rss) > 1 else 0.0
    out["memory_mib"] = {  # this process: each epoch's median RSS; max = sampled every 0.05 s
        "before": round(before / 2**20, 1),
        "per_epoch": [round(r, 1) for r in rss],
        "after_epoch": [round(r, 1) for r in ends],
        "arrow_allocated_bytes_after_epoch": arrow_bytes,
        **{k: round(v, 1) for k, v in [("first", rss[0]), ("last", rss[-1])]},
        "max": round(mem.peak / 2**20, 1),
        "growth": round(rss[-1] - rss[0], 1),
        "slope_per_epoch": round(slope, 2),
    }
    return out


def bench_converter(spark: object, split: Path, args: argparse.Namespace) -> dict:
    """Petastorm's Spark converter with its defaults: materialize, then read passes (capped)."""
    from petastorm.spark import make_spark_converter

    df = spark.read.parquet(str(split))
    total = df.count()
    capped = 0 < args.converter_rows < total
    if capped:
        df = df.limit(args.converter_rows)
    started = time.perf_counter()
    converter = make_spark_converter(df)
    materialize_s = time.perf_counter() - started
    out = {"rows": len(converter), "capped": capped, "materialize_s": round(materialize_s, 2)}
    runs, seen = [], {}
    try:
        for _ in range(args.repeat):
            # Timed from the `with`: opening the reader is part of every pass, as it is for ours.
            started = time.perf_counter()
            with converter.make_torch_dataloader(batch_size=args.batch_size, num_epochs=1) as dl:
                rows = consume(dl, seen)
            runs.append({"rows": rows, "seconds": round(time.perf_counter() - started, 4)})
    finally:
        converter.delete()
    return {**out, "runs": runs, "first_batch": seen}


def rate(runs: list[dict], row_bytes: int) -> dict:
    """Median samples/s, MB/s, cores busy and CPU microseconds per row of the runs."""
    per_s = statistics.median(r["rows"] / r["seconds"] for r in runs)
    out = {"samples_per_s": round(per_s), "mb_per_s": round(per_s * row_bytes / MB, 1)}
    if all("cpu_seconds" in r for r in runs):
        out["cores"] = round(statistics.median(r["cpu_seconds"] / r["seconds"] for r in runs), 2)
        out["cpu_us_per_row"] = round(
            statistics.median(1e6 * r["cpu_seconds"] / r["rows"] for r in runs), 3
        )
    return out


def summarize(raw: dict, row_bytes: int) -> dict:
    """Rates per path and the ratios the targets are about."""
    paths = {k: rate(v, row_bytes) for k, v in raw.items() if k.startswith(("floor", "loader"))}
    if "converter" in raw:
        paths["converter"] = rate(raw["converter"]["runs"], row_bytes)
    s = {k: v["samples_per_s"] for k, v in paths.items()}
    threads = sorted(int(k.removeprefix("floor_t")) for k in s if k.startswith("floor_t"))
    best_floor = max(s[f"floor_t{t}"] for t in threads)
    ratios = {}
    for t in threads:
        ratios[f"loader_w{t}/floor_t{t}"] = round(s[f"loader_w{t}"] / s[f"floor_t{t}"], 2)
        ratios[f"loader_w{t}/floor_copy_t{t}"] = round(s[f"loader_w{t}"] / s[f"floor_copy_t{t}"], 2)
        if f"loader_petastorm_w{t}" in s:
            ratios[f"loader_w{t}/petastorm_w{t}"] = round(
                s[f"loader_w{t}"] / s[f"loader_petastorm_w{t}"], 2
            )
    if "converter" in s:
        ratios["loader_w1/converter"] = round(s["loader_w1"] / s["converter"], 2)
    for k, v in paths.items():
        v["x_best_floor"] = round(s[k] / best_floor, 2)
    slope = raw["memory_mib"]["slope_per_epoch"]
    at = [t for t in TARGET_THREADS if t in threads]
    return {
        "paths": paths,
        "ratios": ratios,
        "meets_floor_target": all(ratios[f"loader_w{t}/floor_t{t}"] >= TARGET_FLOOR for t in at),
        "meets_petastorm_target": all(
            ratios.get(f"loader_w{t}/petastorm_w{t}", 1) >= 1 for t in at
        ),
        "meets_rss_target": abs(slope) <= TARGET_RSS_SLOPE,
        "meets_converter_target": (
            ratios["loader_w1/converter"] >= TARGET_CONVERTER if "converter" in s else None
        ),
        "petastorm_within_10_percent_w1": s.get("loader_petastorm_w1", 0) / s["loader_w1"]
        >= AUTO_MARGIN,
    }


def markdown(kind: str, manifest: dict, summary: dict, raw: dict) -> str:
    """One kind's results as a Markdown table: one row per thread count."""
    gib = manifest["bytes_on_disk"] / 2**30
    p = summary["paths"]
    lines = [
        f"**{kind}** ({manifest['rows']:,} rows, x {manifest['x_len']} float32, "
        f"{manifest['files']} files / {manifest['row_groups']} row groups, {gib:.2f} GiB on disk)",
        "",
        "| threads | floor | floor + one copy | loader | ÷ floor | ÷ floor + copy "
        "| Petastorm backend | loader ÷ Petastorm | CPU µs/row: floor, + copy, loader "
        "| cores busy: floor, loader |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    threads = sorted(int(k.removeprefix("floor_t")) for k in p if k.startswith("floor_t"))
    for t in threads:
        floor, copy, ours = (
            p[f"{k}{t}"]["samples_per_s"] for k in ("floor_t", "floor_copy_t", "loader_w")
        )
        peta = p.get(f"loader_petastorm_w{t}", {}).get("samples_per_s")
        peta_cells = f"{peta:,} | {ours / peta:.2f}" if peta else "– | –"
        cpu = ", ".join(
            str(p[f"{k}{t}"].get("cpu_us_per_row", "–"))
            for k in ("floor_t", "floor_copy_t", "loader_w")
        )
        cores = ", ".join(str(p[f"{k}{t}"].get("cores", "–")) for k in ("floor_t", "loader_w"))
        lines.append(
            f"| {t} | {floor:,} | {copy:,} | {ours:,} | **{ours / floor:.2f}** "
            f"| {ours / copy:.2f} | {peta_cells} | {cpu} | {cores} |"
        )
    if "converter" in raw:
        c, rate_ = raw["converter"], p["converter"]["samples_per_s"]
        cap = f"capped at {c['rows']:,} rows, " if c["capped"] else ""
        lines.append(
            f"\nconverter: {rate_:,} samples/s ({cap}materialization {c['materialize_s']} s, "
            f"not in its rate); loader, 1 thread ÷ converter: "
            f"{summary['ratios']['loader_w1/converter']}"
        )
    m = raw["memory_mib"]
    held = m["arrow_allocated_bytes_after_epoch"]
    lines.append(
        f"RSS over {len(m['per_epoch'])} loader epochs (median per epoch, MiB): first "
        f"{m['first']}, last {m['last']}, max {m['max']}, growth {m['growth']}, trend "
        f"{m['slope_per_epoch']}/epoch; Arrow bytes held after each epoch (MB): "
        f"{min(held) / MB:.1f}..{max(held) / MB:.1f}"
    )
    met = {k: v for k, v in summary.items() if k.startswith("meets_")}
    marks = {True: "✓", False: "✗", None: "not measured"}
    lines.append("targets: " + ", ".join(f"{k[6:]} {marks[v]}" for k, v in met.items()))
    return "\n".join(lines)


def spark_session(cache: str) -> object:
    """local[2] from conf/base.yaml's profile, with Petastorm's converter cache in ``cache``."""
    from deepspark.config import load_config
    from deepspark.spark import build_session

    cfg = load_config(ROOT / "conf" / "digits.yaml", ["mlflow.enabled=false"])
    spark = build_session(cfg.spark, app_name="deepspark-bench-loader")
    spark.conf.set("petastorm.spark.converter.parentCacheDirUrl", Path(cache).as_uri())
    return spark


def main(argv: list[str] | None = None) -> int:
    """Command line: benchmark the loader on one or both kinds of synthetic features."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--kind", choices=["sequence", "image", "both"], default="sequence")
    p.add_argument("--rows", type=int, help="rows per kind (default 500k sequence, 160k image)")
    p.add_argument("--files", type=int, default=8)
    p.add_argument("--row-group-mb", type=int, default=16)
    p.add_argument("--epochs", type=int, default=10, help="FeatureLoader epochs (RSS per epoch)")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--prefetch", type=int, default=4, help="Prefetcher depth (train.loader)")
    p.add_argument("--converter-rows", type=int, default=100_000, help="cap; 0 = all rows")
    p.add_argument("--no-converter", action="store_true", help="skip Petastorm's converter")
    p.add_argument(
        "--threads", type=lambda v: [int(t) for t in v.split(",")],
        default=list(range(1, min(os.cpu_count() or 1, 16) + 1)),
        help="reader thread counts, comma-separated (default 1..cores, at most 16)",
    )  # fmt: skip
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--root", type=Path, default=Path("/tmp/deepspark-bench/features"))
    p.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results")
    args = p.parse_args(argv)
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    kinds = ["sequence", "image"] if args.kind == "both" else [args.kind]
    report: dict = {"command": " ".join(["python", *sys.argv]), "machine": machine()}
    report.update(code_sha=code_hash(), args={k: str(v) for k, v in vars(args).items()}, kinds={})
    path = args.results / f"loader-{dt.date.today().isoformat()}.json"
    runs = json.loads(path.read_text())["runs"] if path.exists() else []  # one entry per command
    for kind in kinds:
        rows = args.rows or DEFAULT_ROWS[kind]
        manifest = datagen.generate(args.root, kind, rows, args.files, args.row_group_mb, args.seed)
        split = datagen.split_dir(args.root, kind, rows) / "train"
        print(f"{kind}: measuring floor and FeatureLoader", file=sys.stderr, flush=True)
        report["kinds"][kind] = {"manifest": manifest, "split": str(split)}
        report["kinds"][kind]["raw"] = bench_local(manifest, split, args)
    if not args.no_converter:
        with tempfile.TemporaryDirectory(prefix="petastorm-cache-") as cache:
            spark = spark_session(cache)
            for kind, k in report["kinds"].items():
                print(f"{kind}: measuring Petastorm's converter", file=sys.stderr, flush=True)
                k["raw"]["converter"] = bench_converter(spark, Path(k["split"]), args)
            report["spark"] = spark.version
            spark.stop()
    for kind, k in report["kinds"].items():
        row_bytes = k["manifest"]["x_len"] * 4 + 4
        k["summary"] = summarize(k["raw"], row_bytes)
        print(markdown(kind, k["manifest"], k["summary"], k["raw"]) + "\n", flush=True)
    args.results.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"runs": [*runs, report]}, indent=2) + "\n")
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
