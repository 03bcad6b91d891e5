"""Threads benchmark: a training process's OpenMP waits when another process wants the cores.

    python benchmarks/threads.py [--steps 300] [--repeat 3] [--busy 1]

The flights LSTM (conf/flights.yaml: LSTM 64 -> LSTM 32 -> dense 1, 24-step windows, batch 64) is
trained for ``--steps`` AdamW steps on random data, in a fresh process, with as many torch threads
as a training process takes alone on this host (``os.cpu_count()``) under each OpenMP wait
policy (``unset``: libgomp's default, which spins a while before it sleeps; ``ACTIVE``: spins;
``PASSIVE``: sleeps at once), and with one thread (no barrier to wait at). Each runs alone, then
beside ``--busy`` processes that each keep one core busy, as the other CI lane or a neighbour's
Spark tasks do. Medians of ``--repeat``, in steps per second; the ratio is beside / alone.
``DEEPSPARK_TORCH_THREADS`` (deepspark/environ.py) is the setting this measures for.

Results go to benchmarks/results/threads-<date>.json and a Markdown table to stdout.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from etl import code_hash, machine

ROOT = Path(__file__).resolve().parents[1]
POLICIES = ("unset", "ACTIVE", "PASSIVE", "1 thread")

TRAIN = """
import sys, time, torch
from deepspark.config.architectures import RNNConfig
from deepspark.models.net import RNN
steps = int(sys.argv[1])
torch.manual_seed(0)
torch.set_num_threads(int(sys.argv[2]))
net = RNN(RNNConfig(), (24, 9), 1)
opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
x, y = torch.randn(64, 24, 9), torch.randn(64, 1)
for i in range(steps + 20):
    if i == 20:  # the first steps warm the allocator and the thread pool
        t0 = time.perf_counter()
    loss = torch.nn.functional.mse_loss(net(x), y)
    opt.zero_grad()
    loss.backward()
    opt.step()
print(steps / (time.perf_counter() - t0))
"""


def one(policy: str, busy: int, steps: int) -> float:
    """Steps per second of one training process beside ``busy`` spinning processes."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "lib")}
    env.pop("OMP_WAIT_POLICY", None)
    threads = os.cpu_count() or 1
    if policy == "1 thread":  # no barrier to wait at: the floor of what threads can lose
        threads = 1
    elif policy != "unset":
        env["OMP_WAIT_POLICY"] = policy
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(busy)]
    try:
        out = subprocess.run(
            [sys.executable, "-c", TRAIN, str(steps), str(threads)],
            env=env, capture_output=True, text=True, check=True, timeout=1800,
        )  # fmt: skip
    finally:
        for p in spinners:
            p.kill()
            p.wait()
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--busy", type=int, default=1, help="spinning processes beside training")
    args = ap.parse_args()
    rates: dict[str, list[float]] = {}
    for _ in range(args.repeat):  # interleaved, so that drift in the machine hits every cell
        for busy in (0, args.busy):
            for policy in POLICIES:
                rates.setdefault(f"{policy}/{busy}", []).append(one(policy, busy, args.steps))
                print(f"{policy:8s} busy={busy}: {rates[f'{policy}/{busy}'][-1]:.1f} steps/s",
                      file=sys.stderr)  # fmt: skip
    medians = {k: statistics.median(v) for k, v in rates.items()}
    ref = medians["unset/0"]
    result = {
        "date": dt.date.today().isoformat(),
        "machine": machine(),
        "code": code_hash(),
        "threads": os.cpu_count(),
        "steps": args.steps,
        "steps_per_s": rates,
        "median_steps_per_s": {k: round(v, 2) for k, v in medians.items()},
        "ratio_to_unset_alone": {k: round(v / ref, 3) for k, v in medians.items()},
    }
    out = ROOT / "benchmarks" / "results" / f"threads-{result['date']}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"| OMP_WAIT_POLICY | alone (steps/s) | beside {args.busy} busy (steps/s) | ratio |")
    print("|---|---:|---:|---:|")
    for p in POLICIES:
        alone, loaded = medians[f"{p}/0"], medians[f"{p}/{args.busy}"]
        print(f"| {p} | {alone:.1f} | {loaded:.1f} | {loaded / alone:.2f} |")
    print(f"\n{out.relative_to(ROOT)}; {args.repeat} repeats, medians; ratio: beside / alone")


if __name__ == "__main__":
    main()
