"""The benchmark generator: nycflights13's layout, and a manifest that matches its files.

The defect counts are re-counted here with Python's csv module, independently of the Spark code
that wrote the manifest.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import generate  # noqa: E402
from synth import FLIGHT_COLUMNS, WEATHER_COLUMNS, Defects  # noqa: E402

ROWS = 20_000
# Raised rates, so that each kind of defect occurs often enough at 20k rows to be counted.
RATES = Defects(unparseable=0.004, duplicate=0.004, dep_delay_out_of_range=0.002)


@pytest.fixture(scope="module")
def data(spark, tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "20k"
    manifest = generate.generate(spark, ROWS, out, seed=3, rates=RATES)
    return out, manifest


def _lines(folder: Path) -> tuple[list[str], list[str]]:
    """(header of every file, data lines of all files)."""
    headers, rows = [], []
    for path in sorted(folder.glob("*.csv")):
        head, *body = path.read_text().splitlines()
        headers.append(head)
        rows.extend(body)
    return headers, rows


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def test_headers_match_the_config_schemas(data):
    from deepspark.config import load_config

    out, manifest = data
    sources = load_config(ROOT / "conf" / "flights.yaml").pipeline.sources
    assert list(sources["flights"].schema) == FLIGHT_COLUMNS
    assert list(sources["weather"].schema) == WEATHER_COLUMNS
    headers, _ = _lines(out / "flights")
    assert headers == [",".join(FLIGHT_COLUMNS)] * manifest["flights"]["files"]
    assert manifest["flights"]["files"] >= 2  # several files, so ingest reads in parallel
    headers, _ = _lines(out / "weather")
    assert set(headers) == {",".join(WEATHER_COLUMNS)}


def test_csv_parses_with_the_flights_schema(spark, data):
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    from deepspark.config import load_config
    from deepspark.schema import struct_from_config

    out, manifest = data
    src = load_config(ROOT / "conf" / "flights.yaml").pipeline.sources["flights"]
    schema = struct_from_config(src.schema)
    read = T.StructType([*schema.fields, T.StructField("_corrupt_record", T.StringType())])
    df = (
        spark.read.schema(read)
        .options(
            **{k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in src.options.items()}
        )
        .option("mode", "PERMISSIVE")
        .csv(str(out / "flights"))
        .cache()  # Spark reads the corrupt-record column alone only from a cached frame
    )
    bad = df.filter(F.col("_corrupt_record").isNotNull()).count()
    assert df.count() == ROWS == manifest["flights"]["rows"]
    assert bad == manifest["flights"]["defects"]["unparseable"] > 0
    good = df.filter(F.col("_corrupt_record").isNull())
    required = ["year", "month", "day", "sched_dep_time", "carrier", "flight", "origin", "dest"]
    assert good.filter(" OR ".join(f"{c} IS NULL" for c in required)).count() == 0
    # time_hour is the scheduled local hour as a UTC instant.
    local = F.make_timestamp("year", "month", "day", "hour", F.lit(0), F.lit(0))
    utc = F.date_format(F.to_utc_timestamp(local, "America/New_York"), "yyyy-MM-dd'T'HH:mm:ss'Z'")
    assert good.filter(utc != F.col("time_hour")).count() == 0
    df.unpersist()


def test_manifest_counts_match_the_files(data):
    out, manifest = data
    _, lines = _lines(out / "flights")
    unparseable = cancelled = no_tail = out_of_range = 0
    for fields in csv.reader(lines):
        row = dict(zip(FLIGHT_COLUMNS, fields, strict=False))
        numeric = [c for c in ("dep_delay", "dep_time", "arr_time", "flight") if c in row]
        if len(fields) != len(FLIGHT_COLUMNS) or any(
            row[c] != "NA" and not _number(row[c]) for c in numeric
        ):
            unparseable += 1
            continue
        cancelled += row["dep_time"] == "NA"
        no_tail += row["tailnum"] == "NA"
        out_of_range += row["dep_delay"] != "NA" and float(row["dep_delay"]) > 1800
        if row["dep_time"] != "NA":  # dep_time = sched + delay, on the local clock
            sched = int(row["sched_dep_time"])
            dep = (sched // 100 * 60 + sched % 100 + int(row["dep_delay"])) % 1440
            assert int(row["dep_time"]) % 2400 == dep // 60 * 100 + dep % 60
    found = {
        "cancelled": cancelled,
        "missing_tailnum": no_tail,
        "unparseable": unparseable,
        "dep_delay_out_of_range": out_of_range,
        "duplicate": len(lines) - len(set(lines)),
    }
    assert manifest["flights"]["defects"] == found
    assert all(n > 0 for n in found.values())
    assert 0.015 < cancelled / ROWS < 0.035  # intended 2.5%
    assert json.loads((out / "manifest.json").read_text()) == manifest


def test_weather_is_hourly_per_origin_with_its_defects(data):
    out, manifest = data
    _, lines = _lines(out / "weather")
    rows = [dict(zip(WEATHER_COLUMNS, f, strict=True)) for f in csv.reader(lines)]
    assert len(rows) == 365 * 24 * 3 == manifest["weather"]["rows"]
    assert len({(r["origin"], r["time_hour"]) for r in rows}) == len(rows)
    speeds = [float(r["wind_speed"]) for r in rows]
    assert manifest["weather"]["defects"] == {
        "wind_speed_out_of_range": sum(s > 200 or s < 0 for s in speeds),
        "missing_pressure": sum(r["pressure"] == "NA" for r in rows),
    }


def test_reuse_needs_the_same_parameters(data):
    out, manifest = data
    same = generate.params(ROWS, 3, ("EWR", "JFK", "LGA"), RATES)
    assert generate.reusable(out, same) == manifest
    assert generate.reusable(out, {**same, "seed": 4}) is None
    assert generate.parse_rows("1m") == 1_000_000 and generate.parse_rows("20k") == 20_000
