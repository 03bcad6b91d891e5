"""The clean stage written by hand: the reference that benchmarks/etl.py times it against.

The same five tables, the same rules (conf/flights.yaml's ``clean:`` section, spelled out here
as plain Spark) and the same two outputs: clean rows, and quarantined rows with their rule, reason
and record. Written the way a competent user would, with nothing generic and nothing slow on
purpose: per table one ``when`` chain for the first broken rule, one ``row_number`` window for the
dedupe, one persist and two writes. Its counts are checked against the stage's in the benchmark.
"""

from __future__ import annotations

import time

from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

NY = "America/New_York"
ISO = "yyyy-MM-dd'T'HH:mm:ssX"


# conf/flights.yaml's clean rules as plain data, for this file and duckdb_clean.py. Per table:
# required columns, parsed timestamps (in rule order), ranges, the dedupe key, hashed identifiers.
RULES: dict[str, dict] = {
    "flights": {
        "required": ("year", "month", "day", "sched_dep_time", "carrier", "flight", "origin",
                     "dest", "time_hour"),
        "timestamps": ("sched_dep_utc", "time_hour"),
        "ranges": {"month": (1, 12), "day": (1, 31), "sched_dep_time": (0, 2359),
                   "dep_time": (0, 2400), "dep_delay": (-180, 1800), "distance": (0, None)},
        "key": ("carrier", "flight", "origin", "_ts_time_hour"),
        "hashed": ("tailnum",),
    },
    "weather": {
        "required": ("origin", "time_hour"),
        "timestamps": ("time_hour",),
        "ranges": {"temp": (-40, 130), "humid": (0, 100), "wind_speed": (0, 200),
                   "wind_gust": (0, 250), "precip": (0, 10), "pressure": (900, 1100),
                   "visib": (0, 10)},
        "key": ("origin", "_ts_time_hour"),
    },
    "airports": {"required": ("faa",), "key": ("faa",)},
    "planes": {"required": ("tailnum",), "key": ("tailnum",), "hashed": ("tailnum",)},
    "airlines": {"required": ("carrier",), "key": ("carrier",)},
}  # fmt: skip
NAMES = tuple(RULES)


def _timestamps() -> dict[str, Column]:
    hhmm = F.col("sched_dep_time")
    return {
        "sched_dep_utc": F.try_make_timestamp(
            "year", "month", "day", F.floor(hhmm / 100).cast("int"), (hhmm % 100).cast("int"),
            F.lit(0), F.lit(NY),
        ),
        "time_hour": F.try_to_timestamp(F.col("time_hour"), F.lit(ISO)),
    }  # fmt: skip


def rules(spec: dict) -> list[tuple[str, Column, Column]]:
    """(rule, broken, reason) in the stage's order: required, timestamps, ranges."""
    out = [(f"required:{c}", F.col(c).isNull(), F.lit(f"{c} is null")) for c in spec["required"]]
    for name in spec.get("timestamps", ()):
        # The raw fields are required above, so a null parse is a bad value.
        out.append((f"timestamp:{name}", F.col(f"_ts_{name}").isNull(), F.lit("does not parse")))
    for column, (lo, hi) in spec.get("ranges", {}).items():
        c = F.col(column)
        # NaN compares above every number, so a min-only range needs it spelled out.
        broken = F.isnan(c) | (c < lo if lo is not None else F.lit(False))
        broken = broken | (c > hi if hi is not None else F.lit(False))
        reason = F.concat(F.lit(f"{column}="), c.cast("string"), F.lit(f" outside [{lo}, {hi}]"))
        out.append((f"range:{column}", broken, reason))
    return out


def hmac(column: str, ipad: bytes, opad: bytes) -> Column:
    """HMAC-SHA256 as two native hashes (the key is a literal: fine for a benchmark)."""
    inner = F.unhex(F.sha2(F.concat(F.lit(ipad), F.col(column).cast("binary")), 256))
    return F.sha2(F.concat(F.lit(opad), inner), 256)


def clean(df: DataFrame, spec: dict, pads: tuple[bytes, bytes]) -> DataFrame:
    """Every row with ``rule``/``reason`` of its first broken rule (null when clean)."""
    df = df.withColumns({c: hmac(c, *pads) for c in spec.get("hashed", ())})
    parse = _timestamps()
    df = df.withColumns({f"_ts_{k}": parse[k] for k in spec.get("timestamps", ())})
    rule, reason = F.lit(None).cast("string"), F.lit(None).cast("string")
    for r, broken, why in reversed(rules(spec)):
        rule = F.when(broken, F.lit(r)).otherwise(rule)
        reason = F.when(broken, why).otherwise(reason)
    df = df.withColumns({"rule": rule, "reason": reason})
    key = spec["key"]
    others = sorted(c for c in df.columns if c not in key and c not in ("rule", "reason"))
    window = Window.partitionBy(F.col("rule").isNull(), *key).orderBy(*others)
    dup = F.col("rule").isNull() & (F.row_number().over(window) > 1)
    df = df.withColumns(
        {
            "rule": F.when(dup, F.lit("duplicate")).otherwise(F.col("rule")),
            "reason": F.when(dup, F.lit("duplicate key")).otherwise(F.col("reason")),
        }
    )
    return df


def run_reference(spark: SparkSession, bronze: dict[str, str], scratch: str, key: bytes) -> dict:
    """Clean every table from ``bronze`` into ``scratch``; per-table seconds and counts."""
    from deepspark.etl.clean import key_pads

    pads = key_pads(key)
    out: dict[str, dict] = {}
    for name, spec in RULES.items():
        started = time.perf_counter()
        df = spark.read.parquet(bronze[name])
        # DISK_ONLY: a memory level ran the 2g driver out of heap on 10M rows (see the stage).
        marked = clean(df, spec, pads).persist(StorageLevel.DISK_ONLY)
        stamps = spec.get("timestamps", ())
        good = marked.filter(F.col("rule").isNull()).withColumns(
            {k: F.col(f"_ts_{k}") for k in stamps}
        )
        good = good.select(*df.columns, *(k for k in stamps if k not in df.columns))
        good.write.mode("overwrite").parquet(f"{scratch}/{name}/clean")
        bad = marked.filter(F.col("rule").isNotNull()).select(
            F.lit(name).alias("source"),
            F.lit("clean").alias("stage"),
            "rule",
            "reason",
            F.to_json(F.struct(*df.columns)).alias("record"),
        )
        bad.write.mode("overwrite").parquet(f"{scratch}/{name}/quarantine")
        seconds = time.perf_counter() - started
        marked.unpersist()
        out[name] = {
            "seconds": seconds,
            "rows_out": spark.read.parquet(f"{scratch}/{name}/clean").count(),
            "rows_quarantined": spark.read.parquet(f"{scratch}/{name}/quarantine").count(),
        }
    return out
