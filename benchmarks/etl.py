"""ETL benchmark: each stage against Spark's floor (read its input, write it as Parquet).

    python benchmarks/etl.py [--sizes 1m,10m] [--repeat 1m=3,10m=1] [--duckdb 10m]

Per size: generate the data (or reuse it when its manifest matches), then run every stage and its
floor in ONE fresh Spark process built from conf/flights.yaml's base profile (local[2], 2g driver),
repeating each measurement; clean is also measured against the hand-written reference
(reference_clean.py) in the same process, run by run. Before measuring, the worker runs every
stage, floor and the reference once, unmeasured, on the 1M data (``--warmup``), so that a single
run at a large size is not a cold JVM's. The peak resident memory of that process
tree (Python + JVM) is sampled every 0.2 s, and the disk each stage's outputs take is measured.
At the sizes given to ``--duckdb`` the same clean runs in DuckDB afterwards (context, not a
target). Results go to benchmarks/results/etl-<date>.json and a Markdown table to stdout.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import hashlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

import generate
from duckdb_clean import run_duckdb
from reference_clean import NAMES, run_reference
from synth import Defects

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("ingest", "clean", "aggregate", "features")
DEFAULT_REPEAT = {"1m": 3, "10m": 1}
BENCH_KEY = "benchmark-only-key-0123456789abcdef"
# Issue 11's bar: ratio to the floor, to the hand-written clean, or seconds.
TARGETS = {
    "ingest": ("floor", 2.0),
    "clean": ("hand", 1.3),
    "aggregate": ("floor", 1.5),
    "features": ("seconds", 3.0),
}
SMALL_TABLE = ("airlines", 0.5)  # a table of <= 100 rows: seconds per stage (ingest, clean)
STAGE_OUTPUTS = {
    "ingest": ("bronze", "quarantine/flights/ingest"),
    "clean": ("silver", "quarantine/flights/clean"),
    "aggregate": ("gold",),
    "features": ("features",),
}


class PeakMemory:
    """Samples the RSS of this process and all its descendants (the JVM) in a thread."""

    def __init__(self, interval: float = 0.2) -> None:
        self.interval, self.peak, self.phase_peak = interval, 0, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        me = psutil.Process()
        while not self._stop.is_set():
            total = 0
            for p in [me, *me.children(recursive=True)]:
                with contextlib.suppress(psutil.Error):  # a process that just ended
                    total += p.memory_info().rss
            self.peak, self.phase_peak = max(self.peak, total), max(self.phase_peak, total)
            self._stop.wait(self.interval)

    def phase(self) -> int:
        """The peak since the last call, and start a new phase."""
        peak, self.phase_peak = self.phase_peak, 0
        return peak

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _floor(stage: str, cfg, spark, scratch: str) -> None:  # noqa: ANN001
    """Read the stage's inputs and write them back as Parquet, with no transform."""
    from deepspark.io import PACKAGE_SCHEME
    from deepspark.layout import Layout
    from deepspark.schema import struct_from_config

    layout, p = Layout(cfg.paths, cfg.pipeline.name), cfg.pipeline
    if stage == "ingest":
        for name, src in p.sources.items():
            # Packaged sources are read where ingest landed them (the raw zone), as it does.
            path = layout.path("raw", name) if src.uri.startswith(PACKAGE_SCHEME) else src.uri
            opts = {
                k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in src.options.items()
            }
            df = spark.read.schema(struct_from_config(src.schema)).options(**opts).csv(path)
            df.write.mode("overwrite").parquet(f"{scratch}/{name}")
        return
    if stage == "clean":
        inputs = [layout.path("bronze", t) for t in p.clean]
    elif stage == "aggregate":
        used = {a.source for a in p.aggregates.values()}
        used |= {a.join.source for a in p.aggregates.values() if a.join}
        inputs = [layout.path("silver", t) for t in sorted(used)]
    else:
        spec = p.features.sequence or p.features.image
        layer = "gold" if spec.source in p.aggregates else "silver"
        inputs = [layout.path(layer, spec.source)]
    for path in inputs:
        spark.read.parquet(path).write.mode("overwrite").parquet(f"{scratch}/{Path(path).name}")


def _reference(cfg, spark, scratch: str) -> dict:  # noqa: ANN001
    """The hand-written clean of the same bronze tables (reference_clean.py)."""
    from deepspark.layout import Layout

    layout = Layout(cfg.paths, cfg.pipeline.name)
    bronze = {t: layout.path("bronze", t) for t in cfg.pipeline.clean}
    return run_reference(spark, bronze, scratch, os.environ["DEEPSPARK_PSEUDONYM_KEY"].encode())


def _du(path: Path) -> int:
    """Bytes under ``path`` (its files; 0 when missing)."""
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.exists() else 0


def code_hash() -> str:
    """A hash of the library and configs measured (the stages change under active development)."""
    h = hashlib.sha256()
    for p in sorted([*(ROOT / "lib" / "deepspark").rglob("*.py"), *(ROOT / "conf").glob("*.yaml")]):
        h.update(str(p.relative_to(ROOT)).encode() + b"\0" + p.read_bytes())
    return h.hexdigest()[:12]


def _config(data: Path, settings: list[str]):  # noqa: ANN202
    from deepspark.config import load_config

    overrides = [
        f"pipeline.sources.flights.uri={data / 'flights'}",
        f"pipeline.sources.weather.uri={data / 'weather'}",
        f"paths.data={data / 'work'}",
        "mlflow.enabled=false",
        *settings,
    ]
    return load_config(ROOT / "conf" / "flights.yaml", overrides)


def _warm_up(data: Path, settings: list[str], spark) -> float:  # noqa: ANN001
    """Every stage, its floor and the reference once on ``data``, unmeasured: the JIT compiles
    the code paths first, so one measured run at a large size is not a cold run."""
    from deepspark.stages.pipeline import stage_runner

    cfg, started = _config(data, settings), time.perf_counter()
    for stage in STAGES:
        stage_runner(stage)(cfg, spark)
        _floor(stage, cfg, spark, str(data / "floor" / stage))
        if stage == "clean":
            _reference(cfg, spark, str(data / "reference"))
    return round(time.perf_counter() - started, 1)


def worker(data: Path, repeat: int, settings: list[str], warmup: Path | None = None) -> dict:
    """Run in a fresh process: every stage and its floor, ``repeat`` times each."""
    os.environ.setdefault("DEEPSPARK_PSEUDONYM_KEY", BENCH_KEY)
    from deepspark.spark import build_session
    from deepspark.stages.pipeline import stage_runner

    cfg = _config(data, settings)
    with PeakMemory() as mem:
        started = time.perf_counter()
        delta = cfg.paths.format == "delta"  # --set paths.format=delta: Delta tables
        spark = build_session(cfg.spark, app_name="deepspark-bench-etl", delta=delta)
        jvm = spark.sparkContext._jvm  # noqa: SLF001
        out = {
            "spark": {
                "version": spark.version,
                "master": spark.sparkContext.master,
                "driver_memory": spark.conf.get("spark.driver.memory"),
                "max_heap_mb": jvm.java.lang.Runtime.getRuntime().maxMemory() // 2**20,
                "java": jvm.java.lang.System.getProperty("java.version"),
            },
            "startup_s": round(time.perf_counter() - started, 2),
            "code_sha": code_hash(),
            "stages": {},
        }
        if warmup is not None:
            out["warmup"] = {"data": str(warmup), "seconds": _warm_up(warmup, settings, spark)}
        mem.phase()
        for stage in STAGES:
            run = stage_runner(stage)
            times, floors, hands, metrics, peaks, reference = [], [], [], {}, [], {}
            for _ in range(repeat):
                t = time.perf_counter()
                metrics = dict(run(cfg, spark).metrics)
                times.append(time.perf_counter() - t)
                peaks.append(mem.phase())
                t = time.perf_counter()
                _floor(stage, cfg, spark, str(data / "floor" / stage))
                floors.append(time.perf_counter() - t)
                peaks.append(mem.phase())
                if stage == "clean":
                    reference = _reference(cfg, spark, str(data / "reference"))
                    hands.append(sum(r["seconds"] for r in reference.values()))
            out["stages"][stage] = {
                "seconds": [round(s, 3) for s in times],
                "floor_seconds": [round(s, 3) for s in floors],
                "peak_rss_bytes": max(peaks),
                "disk_bytes": sum(_du(data / "work" / d) for d in STAGE_OUTPUTS[stage]),
                "metrics": metrics,
            }
            if hands:
                out["stages"][stage]["hand_seconds"] = [round(s, 3) for s in hands]
                out["stages"][stage]["reference"] = reference
            print(f"{stage}: {times} floor {floors} hand {hands}", file=sys.stderr, flush=True)
        spark.stop()
    out["peak_rss_bytes"] = mem.peak
    return out


def summarize(rows: int, raw: dict) -> dict:
    """Medians, rows/s, cost per row, the floor (and hand) ratios and the target of each stage."""
    table = {}
    for stage, r in raw["stages"].items():
        med, floor = statistics.median(r["seconds"]), statistics.median(r["floor_seconds"])
        s = table[stage] = {
            "median_s": round(med, 2),
            "floor_median_s": round(floor, 2),
            "ratio": round(med / floor, 2),
            "rows_per_s": round(rows / med),
            "us_per_row": round(med / rows * 1e6, 3),
            "peak_rss_gib": round(r["peak_rss_bytes"] / 2**30, 2),
            "disk_gib": round(r.get("disk_bytes", 0) / 2**30, 3),
        }
        if "hand_seconds" in r:
            hand = statistics.median(r["hand_seconds"])
            s.update(hand_median_s=round(hand, 2), ratio_to_hand=round(med / hand, 2))
        kind, bar = TARGETS[stage]
        value = {"floor": s["ratio"], "hand": s.get("ratio_to_hand"), "seconds": med}[kind]
        s["target"] = f"<= {bar}{'x ' + kind if kind != 'seconds' else ' s'}"
        s["meets_target"] = value is not None and value <= bar
        small = r["metrics"].get(f"{SMALL_TABLE[0]}.seconds")
        if small is not None:
            s["small_table_s"] = small
            s["small_table_meets_target"] = small <= SMALL_TABLE[1]
    return table


def checks(manifest: dict, raw: dict) -> list[dict]:
    """Stage row counts against the defects the generator measured in its files."""
    f, w = manifest["flights"], manifest["weather"]
    ingest, clean = raw["stages"]["ingest"]["metrics"], raw["stages"]["clean"]["metrics"]
    expected = [
        ("ingest flights.rows_in", f["rows"], ingest.get("flights.rows_in")),
        ("ingest flights.rows_quarantined", f["defects"]["unparseable"],
         ingest.get("flights.rows_quarantined")),
        ("clean weather.rows_quarantined", w["defects"]["wind_speed_out_of_range"],
         clean.get("weather.rows_quarantined")),
        ("clean flights.rows_quarantined",
         f["natural_key_duplicates"] + f["defects"]["dep_delay_out_of_range"],
         clean.get("flights.rows_quarantined")),
    ]  # fmt: skip
    reference = raw["stages"]["clean"].get("reference", {})
    for table, r in reference.items():
        for k in ("rows_out", "rows_quarantined"):
            expected.append((f"hand clean {table}.{k}", clean.get(f"{table}.{k}"), r[k]))
    for table, r in raw.get("duckdb", {}).get("tables", {}).items():
        for k in ("rows_out", "rows_quarantined"):
            expected.append((f"duckdb clean {table}.{k}", clean.get(f"{table}.{k}"), r[k]))
    return [{"check": n, "expected": e, "actual": a, "ok": e == a} for n, e, a in expected]


def markdown(label: str, rows: int, summary: dict, raw: dict) -> str:
    """One size's results as a Markdown table."""
    lines = [
        f"**{label}** ({rows:,} flight rows; peak RSS of the process tree "
        f"{raw['peak_rss_bytes'] / 2**30:.2f} GiB)",
        "",
        "| stage | median s | floor s | ÷ floor | hand s | ÷ hand | target | met | µs/row "
        "| airlines s | peak RSS GiB | disk GiB | runs |",
        "|---|---:|---:|---:|---:|---:|---|---|---:|---:|---:|---:|---:|",
    ]
    for stage, s in summary.items():
        runs = len(raw["stages"][stage]["seconds"])
        hand = (
            f"{s['hand_median_s']:.2f} | {s['ratio_to_hand']:.2f}" if "hand_median_s" in s else "|"
        )
        small = f"{s['small_table_s']:.2f}" if "small_table_s" in s else ""
        lines.append(
            f"| {stage} | {s['median_s']:.2f} | {s['floor_median_s']:.2f} | {s['ratio']:.2f} "
            f"| {hand} | {s['target']} | {'yes' if s['meets_target'] else '**no**'} "
            f"| {s['us_per_row']:.2f} | {small} | {s['peak_rss_gib']:.2f} | {s['disk_gib']:.2f} "
            f"| {runs} |"
        )
    if "duckdb" in raw:
        d = raw["duckdb"]
        lines += ["", f"DuckDB {d['version']} ({d['threads']} threads), same clean: "
                  f"{d['seconds']:.2f} s (stage ÷ DuckDB "
                  f"{summary['clean']['median_s'] / d['seconds']:.2f})."]  # fmt: skip
    return "\n".join(lines)


def machine() -> dict:
    """Where the numbers were taken."""
    java = subprocess.run(["java", "-version"], capture_output=True, text=True).stderr
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "java": java.splitlines()[0] if java else None,
    }


def _data(label: str, root: Path, seed: int) -> tuple[Path, dict]:
    """One size's data and manifest, generated unless a matching one is there."""
    rows, data = generate.parse_rows(label), root / label
    wanted = generate.params(rows, seed, ("EWR", "JFK", "LGA"), Defects())
    if generate.reusable(data, wanted) is None:
        cmd = [sys.executable, str(Path(__file__).with_name("generate.py"))]
        subprocess.run(
            [*cmd, "--rows", str(rows), "--out", str(data), "--seed", str(seed)], check=True
        )
    return data, generate.reusable(data, wanted)


def bench_size(
    label: str,
    root: Path,
    repeat: int,
    seed: int,
    settings: list[str],
    duckdb: bool = False,
    warmup: str = "",
) -> dict:
    """Generate (or reuse) one size's data, then measure it in a fresh worker process."""
    data, manifest = _data(label, root, seed)
    warm = ["--warmup-data", str(_data(warmup, root, seed)[0])] if warmup else []
    with tempfile.NamedTemporaryFile(suffix=".json") as tmp:
        cmd = [sys.executable, __file__, "--worker", str(data), "--repeat", str(repeat), *warm]
        subprocess.run([*cmd, "--json", tmp.name, *(f"--set={s}" for s in settings)], check=True)
        raw = json.loads(Path(tmp.name).read_text())
    if duckdb:
        raw["duckdb"] = _duckdb(data)
    rows = manifest["flights"]["rows"]
    summary = summarize(rows, raw)
    print(markdown(label, rows, summary, raw), flush=True)
    return {
        "command": " ".join(["python", *sys.argv]),
        "rows": rows,
        "data": str(data),
        "repeat": repeat,
        "settings": settings,
        "summary": summary,
        "checks": checks(manifest, raw),
        "raw": raw,
        "manifest": manifest,
    }


def _duckdb(data: Path, threads: int = 2) -> dict:
    """The same clean in DuckDB on the bronze tables the worker left, after Spark has stopped."""
    import duckdb

    bronze = {t: str(data / "work" / "bronze" / "flights" / t) for t in NAMES}
    tables = run_duckdb(bronze, str(data / "duckdb"), BENCH_KEY.encode(), threads=threads)
    seconds = sum(t["seconds"] for t in tables.values())
    print(f"duckdb clean: {seconds:.2f} s", file=sys.stderr, flush=True)
    return {"version": duckdb.__version__, "threads": threads, "seconds": seconds, "tables": tables}


def main(argv: list[str] | None = None) -> int:
    """Command line: benchmark the given sizes, or (internal) be one size's worker process."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="1m,10m")
    p.add_argument("--repeat", default="", help="per size, e.g. 1m=3,10m=2 (default 3 / 1)")
    p.add_argument("--root", type=Path, default=Path("/tmp/deepspark-bench"))
    p.add_argument("--seed", type=int, default=7)
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a config override for the measured session (e.g. spark.settings.X=Y)",
    )
    p.add_argument("--duckdb", default="10m", help="sizes that also run the clean in DuckDB")
    p.add_argument(
        "--warmup",
        default="1m",
        help="size whose data every worker runs once, unmeasured, before measuring ('' for none)",
    )
    p.add_argument("--tag", default="", help="name of this variant in the results (with --set)")
    p.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results")
    p.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--warmup-data", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--json", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    if args.worker:
        raw = worker(args.worker, int(args.repeat or 1), args.set, args.warmup_data)
        args.json.write_text(json.dumps(raw))
        return 0
    repeat = {**DEFAULT_REPEAT, **dict(kv.split("=") for kv in args.repeat.split(",") if kv)}
    today = dt.date.today().isoformat()
    path = args.results / f"etl-{today}.json"
    report = json.loads(path.read_text()) if path.exists() else {"date": today, "sizes": {}}
    report["machine"] = machine()
    for label in args.sizes.split(","):
        duck = label in args.duckdb.split(",")
        result = bench_size(
            label, args.root, int(repeat.get(label, 1)), args.seed, args.set, duck, args.warmup
        )
        report["sizes"][f"{label}@{args.tag}" if args.tag else label] = result
        for c in result["checks"]:
            if not c["ok"]:
                print(f"check {c['check']}: expected {c['expected']}, got {c['actual']}")
        args.results.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(report, indent=2) + "\n")  # after each size: partial results
    print(flatness(report["sizes"], args.set))
    print(f"results: {path}")
    return 0


def flatness(sizes: dict, settings: list[str]) -> str:
    """Cost per row of each stage at the largest size relative to the smallest (same settings)."""
    same = [s for s in sizes.values() if s.get("settings", []) == settings]
    if len(same) < 2:
        return ""
    by_rows = sorted(same, key=lambda s: s["rows"])
    small, large = by_rows[0]["summary"], by_rows[-1]["summary"]
    parts = [f"{s} x{large[s]['us_per_row'] / small[s]['us_per_row']:.2f}" for s in small]
    return f"µs/row, largest vs smallest size: {', '.join(parts)}"


if __name__ == "__main__":
    raise SystemExit(main())
