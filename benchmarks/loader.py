"""Loader benchmark: deepspark's FeatureLoader against pyarrow's floor and Petastorm's converter.

    python benchmarks/loader.py [--kind sequence|image|both] [--rows N] [--epochs 10] [--repeat 3]

Per kind: write (or reuse) a synthetic feature split with pyarrow (datagen_features.py), then in
THIS process measure samples/s and MB/s (decoded float32 x + y) of: the floor (pyarrow reading the
same row groups into the same (B, L) float32 arrays and torch tensors, 1 and 2 reader threads);
FeatureLoader(shuffle=True, steps=one epoch) in a Prefetcher with to_tensors over ``--epochs``
epochs (arrow, 1 thread; RSS sampled after each); the two backends side by side (arrow and
petastorm, 1 and 2 threads, ``--repeat`` runs each, interleaved); and last, once Spark is up,
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
import pyarrow.parquet as pq

import datagen_features as datagen
from etl import code_hash, machine

# The floor hands torch Arrow's read-only buffers (zero copy); torch warns once, harmlessly.
warnings.filterwarnings("ignore", message="The given NumPy array is not writable")

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_ROWS = {"sequence": 500_000, "image": 160_000}  # ~530 / ~500 MB of decoded floats
TARGET_FLOOR, TARGET_CONVERTER = 0.8, 3.0
BACKEND_PATHS = {  # result key -> (loader.backend, loader.workers)
    "loader_w1": ("arrow", 1),
    "loader_petastorm_w1": ("petastorm", 1),
    "loader_w2": ("arrow", 2),
    "loader_petastorm_w2": ("petastorm", 2),
}
BACKEND_KEYS = {1: ("loader_w1", "loader_petastorm_w1"), 2: ("loader_w2", "loader_petastorm_w2")}
AUTO_MARGIN = 0.9  # auto may pick Petastorm only at >= 0.9x arrow's samples/s (backend.py)
MB = 1e6


class RssSampler(threading.Thread):
    """This process's resident memory: the peak sampled every 0.05 s, and a sample on demand."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak, self.done, self._me = 0, threading.Event(), psutil.Process()

    def now(self) -> int:
        rss = self._me.memory_info().rss
        self.peak = max(self.peak, rss)
        return rss

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
    started = time.perf_counter()
    rows = fn()
    return {"rows": rows, "seconds": round(time.perf_counter() - started, 4)}


def bench_local(manifest: dict, split: Path, args: argparse.Namespace) -> dict:
    """Floor and FeatureLoader, all in this process (no Spark yet)."""
    import torch

    from deepspark.data import FeatureLoader, Prefetcher, to_url
    from deepspark.train.loop import to_tensors

    task = "classification" if manifest["kind"] == "image" else "regression"
    convert = to_tensors(torch.device("cpu"), task)
    files, length, b = sorted(split.glob("*.parquet")), manifest["x_len"], args.batch_size
    steps = manifest["rows"] // b
    out: dict = {"first_batch": {}}
    consume(map(convert, floor_batches(files, length, b, 2, seed=99)))  # warm-up, not measured
    for threads in (1, 2):
        runs, seen = [], out["first_batch"].setdefault(f"floor_t{threads}", {})
        for r in range(args.repeat):
            batches = floor_batches(files, length, b, threads, seed=r)
            runs.append(timed(lambda bs=batches, seen=seen: consume(map(convert, bs), seen)))
        out[f"floor_t{threads}"] = runs

    def loader(workers: int, backend: str = "arrow") -> FeatureLoader:
        return FeatureLoader(
            to_url(str(split)), ["x", "y"], batch_size=b, shuffle=True, seed=0, steps=steps,
            workers=workers, backend=backend,
        )  # fmt: skip

    def epoch(fl: FeatureLoader, e: int, seen: dict) -> dict:
        return timed(lambda: consume(Prefetcher(fl.epoch(e), args.prefetch, convert), seen))

    fl, rss = loader(1), []
    mem = RssSampler()
    mem.start()
    before = mem.now()
    for e in range(max(1, args.epochs)):  # memory over many epochs: arrow, 1 thread
        seconds = epoch(fl, e, {})["seconds"]
        rss.append(mem.now() / 2**20)
        print(f"  loader w1 epoch {e}: {seconds:.2f}s", file=sys.stderr)
    mem.done.set()
    slope = float(np.polyfit(np.arange(len(rss)), rss, 1)[0]) if len(rss) > 1 else 0.0
    out["memory_mib"] = {  # this process, after each epoch; max = sampled every 0.05 s
        "before": round(before / 2**20, 1),
        "after_epoch": [round(r, 1) for r in rss],
        **{k: round(v, 1) for k, v in [("first", rss[0]), ("last", rss[-1])]},
        "max": round(mem.peak / 2**20, 1),
        "growth": round(rss[-1] - rss[0], 1),
        "slope_per_epoch": round(slope, 2),
    }
    # The backends side by side (backend: arrow | petastorm), 1 and 2 threads, interleaved run
    # by run so that drift on a shared machine hits both alike.
    for key in BACKEND_PATHS:
        out[key] = []
    for r in range(args.repeat):
        for key, (backend, workers) in BACKEND_PATHS.items():
            seen = out["first_batch"].setdefault(key, {})
            out[key].append(epoch(loader(workers, backend), r, seen))
            print(f"  {key} run {r}: {out[key][-1]['seconds']:.2f}s", file=sys.stderr)
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
    """Median samples/s and MB/s of the runs."""
    per_s = statistics.median(r["rows"] / r["seconds"] for r in runs)
    return {"samples_per_s": round(per_s), "mb_per_s": round(per_s * row_bytes / MB, 1)}


def summarize(raw: dict, row_bytes: int) -> dict:
    """Rates per path and the ratios the targets are about."""
    paths = {k: rate(v, row_bytes) for k, v in raw.items() if k.startswith(("floor", "loader"))}
    if "converter" in raw:
        paths["converter"] = rate(raw["converter"]["runs"], row_bytes)
    s = {k: v["samples_per_s"] for k, v in paths.items()}
    best_loader, best_floor = max(s["loader_w1"], s["loader_w2"]), max(s["floor_t1"], s["floor_t2"])
    ratios = {
        "loader_w1/floor_t1": round(s["loader_w1"] / s["floor_t1"], 2),
        "loader_w2/floor_t2": round(s["loader_w2"] / s["floor_t2"], 2),
        "best_loader/best_floor": round(best_loader / best_floor, 2),
        "loader_petastorm_w1/floor_t1": round(s["loader_petastorm_w1"] / s["floor_t1"], 2),
        "petastorm_w1/arrow_w1": round(s["loader_petastorm_w1"] / s["loader_w1"], 2),
        "petastorm_w2/arrow_w2": round(s["loader_petastorm_w2"] / s["loader_w2"], 2),
    }
    if "converter" in s:
        ratios["loader_w1/converter"] = round(s["loader_w1"] / s["converter"], 2)
    for k, v in paths.items():
        v["x_best_floor"] = round(s[k] / best_floor, 2)
    return {
        "paths": paths,
        "ratios": ratios,
        "meets_floor_target": ratios["best_loader/best_floor"] >= TARGET_FLOOR,
        "meets_converter_target": ratios.get("loader_w1/converter", 0) >= TARGET_CONVERTER,
        "petastorm_within_10_percent_w1": ratios["petastorm_w1/arrow_w1"] >= AUTO_MARGIN,
    }


def markdown(kind: str, manifest: dict, summary: dict, raw: dict) -> str:
    """One kind's results as a Markdown table."""
    gib = manifest["bytes_on_disk"] / 2**30
    lines = [
        f"**{kind}** ({manifest['rows']:,} rows, x {manifest['x_len']} float32, "
        f"{manifest['files']} files / {manifest['row_groups']} row groups, {gib:.2f} GiB on disk)",
        "",
        "| path | samples/s | MB/s | x best floor | runs |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, p in summary["paths"].items():
        runs = raw["converter"]["runs"] if name == "converter" else raw[name]
        lines.append(
            f"| {name} | {p['samples_per_s']:,} | {p['mb_per_s']:,} | {p['x_best_floor']} "
            f"| {len(runs)} |"
        )
    lines += [
        "",
        "| backend side by side | arrow | petastorm | petastorm / arrow |",
        "|---|---:|---:|---:|",
    ]
    for t in (1, 2):
        arrow, peta = (summary["paths"][k]["samples_per_s"] for k in BACKEND_KEYS[t])
        lines.append(f"| {t} thread(s) | {arrow:,} | {peta:,} | {peta / arrow:.2f} |")
    if "converter" in raw:
        c = raw["converter"]
        cap = f"capped at {c['rows']:,} rows, " if c["capped"] else ""
        lines.append(f"\nconverter: {cap}materialization {c['materialize_s']} s (not in its rate)")
    r, m = summary["ratios"], raw["memory_mib"]
    lines.append(
        "ratios: " + ", ".join(f"{k} {v}" for k, v in r.items())
        + f" (targets: loader/floor >= {TARGET_FLOOR}, loader/converter >= {TARGET_CONVERTER})"
    )  # fmt: skip
    lines.append(
        f"RSS over {len(m['after_epoch'])} loader epochs (MiB): first {m['first']}, last "
        f"{m['last']}, max {m['max']}, growth {m['growth']}, trend {m['slope_per_epoch']}/epoch"
    )
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
