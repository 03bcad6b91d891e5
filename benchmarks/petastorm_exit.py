"""Exit-abort benchmark: processes that stop a Petastorm reader early, then exit.

    python benchmarks/petastorm_exit.py [--processes 300] [--concurrency 2] [--workers 2]

Writes (or reuses) a synthetic image split (datagen_features.py), then starts ``--processes``
fresh Python processes, ``--concurrency`` at a time. Each builds a ``FeatureLoader(backend=
"petastorm")`` with ``--workers`` reader threads, takes ``--batches`` batches and stops: ``close``
closes the epoch's generator (the reader is stopped and joined), ``abandon`` leaves it open until
the interpreter exits. A process counts as an abort when it exits non-zero, dies of a signal, or
prints ``terminate called`` (the C++ runtime's last words). Results go to
benchmarks/results/petastorm-exit-<date>.json and one summary line to stdout.
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import json
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHILD = """
import sys
from deepspark.data import FeatureLoader
url, workers, batches, mode = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
loader = FeatureLoader(url, ["x", "y"], batch_size=64, shuffle=True, steps=10**6,
                       workers=workers, backend="petastorm")
epoch = loader.epoch(0)
for _, batch in zip(range(batches), epoch):
    pass
if mode == "close":
    epoch.close()
"""


def one_process(url: str, workers: int, batches: int, mode: str, timeout: float) -> dict:
    """Run one child; what it returned and whether that was an abort."""
    cmd = [sys.executable, "-c", CHILD, url, str(workers), str(batches), mode]
    started = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
        rc, stderr = proc.returncode, proc.stderr
    except subprocess.TimeoutExpired as e:  # a hang at exit is as bad as an abort
        rc, stderr = None, (e.stderr or b"").decode(errors="replace") + "\n<timed out>"
    terminate = "terminate called" in stderr
    return {
        "rc": rc,
        "signal": signal.Signals(-rc).name if rc is not None and rc < 0 else None,
        "terminate_called": terminate,
        "aborted": rc != 0 or terminate,
        "seconds": round(time.perf_counter() - started, 2),
        "stderr_tail": stderr.strip().splitlines()[-1:] if rc != 0 or terminate else [],
    }


def count_aborts(
    url: str,
    processes: int,
    *,
    concurrency: int = 2,
    workers: int = 2,
    batches: int = 3,
    mode: str = "close",
    timeout: float = 120.0,
) -> dict:
    """Start ``processes`` children, ``concurrency`` at a time; count the aborts among them."""
    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        runs = list(
            pool.map(lambda _: one_process(url, workers, batches, mode, timeout), range(processes))
        )
    aborted = [r for r in runs if r["aborted"]]
    outcomes = collections.Counter(
        r["signal"] or ("timeout" if r["rc"] is None else f"rc={r['rc']}") for r in aborted
    )
    return {
        "processes": processes,
        "aborts": len(aborted),
        "terminate_called": sum(r["terminate_called"] for r in runs),
        "outcomes": dict(outcomes),
        "examples": [r["stderr_tail"] for r in aborted[:3]],
        "median_process_s": sorted(r["seconds"] for r in runs)[len(runs) // 2],
        "wall_s": round(time.perf_counter() - started, 1),
    }


def main(argv: list[str] | None = None) -> int:
    """Command line: count exit aborts; exit status 1 when there was any."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import datagen_features as datagen
    from etl import code_hash, machine

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--processes", type=int, default=300)
    p.add_argument("--concurrency", type=int, default=2)
    p.add_argument("--workers", type=int, default=2, help="Petastorm reader threads")
    p.add_argument("--batches", type=int, default=3, help="batches taken before stopping")
    p.add_argument("--mode", choices=["close", "abandon"], default="close")
    p.add_argument("--rows", type=int, default=40_000)
    p.add_argument("--files", type=int, default=4)
    p.add_argument("--row-group-mb", type=int, default=16)
    p.add_argument("--tag", default="", help="label of this run in the results file")
    p.add_argument("--root", type=Path, default=Path("/tmp/deepspark-bench/features"))
    p.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results")
    args = p.parse_args(argv)
    datagen.generate(args.root, "image", args.rows, args.files, args.row_group_mb, seed=7)
    url = (datagen.split_dir(args.root, "image", args.rows) / "train").as_uri()
    counts = count_aborts(
        url, args.processes, concurrency=args.concurrency, workers=args.workers,
        batches=args.batches, mode=args.mode,
    )  # fmt: skip
    report = {
        "command": " ".join(["python", *sys.argv]),
        "tag": args.tag,
        "machine": machine(),
        "code_sha": code_hash(),
        "args": {k: str(v) for k, v in vars(args).items()},
        **counts,
    }
    args.results.mkdir(parents=True, exist_ok=True)
    path = args.results / f"petastorm-exit-{dt.date.today().isoformat()}.json"
    runs = json.loads(path.read_text())["runs"] if path.exists() else []
    path.write_text(json.dumps({"runs": [*runs, report]}, indent=2) + "\n")
    print(
        f"{counts['aborts']} aborts in {counts['processes']} processes ({args.mode}, "
        f"{args.workers} reader threads; outcomes {counts['outcomes']}; "
        f"{counts['wall_s']} s); results: {path}"
    )
    return 1 if counts["aborts"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
