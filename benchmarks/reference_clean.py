"""The clean stage written by hand: the reference that benchmarks/etl.py times it against.

The same five tables, the same rules (conf/flights.yaml's ``clean:`` section, spelled out here
as plain Spark) and the same two outputs: clean rows, and quarantined rows with their rule, reason
and record. Written the way a competent user would, with nothing generic and nothing slow on
purpose: per table one ``when`` chain for the first broken rule, one ``row_number`` window for the
dedupe, one persist and two writes. Its counts are checked against the stage's in the benchmark.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

NY = "America/New_York"
ISO = "yyyy-MM-dd'T'HH:mm:ssX"


@dataclass(frozen=True)
class Table:
    """One table's hand-written clean: parsed timestamps, (rule, broken, reason), the key."""

    timestamps: dict[str, Column] = field(default_factory=dict)
    rules: list[tuple[str, Column, Column]] = field(default_factory=list)
    key: list[str] = field(default_factory=list)
    hashed: list[str] = field(default_factory=list)


def required(*columns: str) -> list[tuple[str, Column, Column]]:
    return [(f"required:{c}", F.col(c).isNull(), F.lit(f"{c} is null")) for c in columns]


def between(column: str, lo: float | None, hi: float | None) -> tuple[str, Column, Column]:
    c = F.col(column)
    # NaN compares above every number, so a min-only range needs it spelled out.
    broken = F.isnan(c) | (c < lo if lo is not None else F.lit(False))
    broken = broken | (c > hi if hi is not None else F.lit(False))
    reason = F.concat(F.lit(f"{column}="), c.cast("string"), F.lit(f" outside [{lo}, {hi}]"))
    return f"range:{column}", broken, reason


def parsed(column: str) -> tuple[str, Column, Column]:
    broken = F.col(column).isNotNull() & F.col(f"_ts_{column}").isNull()
    return f"timestamp:{column}", broken, F.concat(F.col(column), F.lit(" is not " + ISO))


def _sched_dep_utc() -> Column:
    hhmm = F.col("sched_dep_time")
    ts = F.try_make_timestamp(
        "year", "month", "day", F.floor(hhmm / 100).cast("int"), (hhmm % 100).cast("int"),
        F.lit(0), F.lit(NY),
    )  # fmt: skip
    return ts


NAMES = ("flights", "weather", "airports", "planes", "airlines")


def tables() -> dict[str, Table]:
    """The five tables' rules (Columns need a live session, so they are built on call)."""
    flights = Table(
        timestamps={
            "sched_dep_utc": _sched_dep_utc(),
            "time_hour": F.try_to_timestamp(F.col("time_hour"), F.lit(ISO)),
        },
        rules=[
            *required(
                "year",
                "month",
                "day",
                "sched_dep_time",
                "carrier",
                "flight",
                "origin",
                "dest",
                "time_hour",
            ),
            (
                "timestamp:sched_dep_utc",
                F.col("_ts_sched_dep_utc").isNull(),
                F.lit("bad local time"),
            ),
            parsed("time_hour"),
            between("month", 1, 12),
            between("day", 1, 31),
            between("sched_dep_time", 0, 2359),
            between("dep_time", 0, 2400),
            between("dep_delay", -180, 1800),
            between("distance", 0, None),
        ],  # fmt: skip
        key=["carrier", "flight", "origin", "_ts_time_hour"],
        hashed=["tailnum"],
    )
    weather = Table(
        timestamps={"time_hour": F.try_to_timestamp(F.col("time_hour"), F.lit(ISO))},
        rules=[
            *required("origin", "time_hour"),
            parsed("time_hour"),
            between("temp", -40, 130),
            between("humid", 0, 100),
            between("wind_speed", 0, 200),
            between("wind_gust", 0, 250),
            between("precip", 0, 10),
            between("pressure", 900, 1100),
            between("visib", 0, 10),
        ],
        key=["origin", "_ts_time_hour"],
    )
    return {
        "flights": flights,
        "weather": weather,
        "airports": Table(rules=required("faa"), key=["faa"]),
        "planes": Table(rules=required("tailnum"), key=["tailnum"], hashed=["tailnum"]),
        "airlines": Table(rules=required("carrier"), key=["carrier"]),
    }


def hmac(column: str, ipad: bytes, opad: bytes) -> Column:
    """HMAC-SHA256 as two native hashes (the key is a literal: fine for a benchmark)."""
    inner = F.unhex(F.sha2(F.concat(F.lit(ipad), F.col(column).cast("binary")), 256))
    return F.sha2(F.concat(F.lit(opad), inner), 256)


def clean(df: DataFrame, t: Table, pads: tuple[bytes, bytes]) -> DataFrame:
    """Every row with ``rule``/``reason`` of its first broken rule (null when clean)."""
    df = df.withColumns({c: hmac(c, *pads) for c in t.hashed})
    df = df.withColumns({f"_ts_{k}": v for k, v in t.timestamps.items()})
    rule, reason = F.lit(None).cast("string"), F.lit(None).cast("string")
    for r, broken, why in reversed(t.rules):
        rule = F.when(broken, F.lit(r)).otherwise(rule)
        reason = F.when(broken, why).otherwise(reason)
    df = df.withColumns({"rule": rule, "reason": reason})
    others = sorted(c for c in df.columns if c not in t.key and c not in ("rule", "reason"))
    window = Window.partitionBy(F.col("rule").isNull(), *t.key).orderBy(*others)
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
    for name, t in tables().items():
        started = time.perf_counter()
        df = spark.read.parquet(bronze[name])
        # DISK_ONLY: a memory level ran the 2g driver out of heap on 10M rows (see the stage).
        marked = clean(df, t, pads).persist(StorageLevel.DISK_ONLY)
        parsed_ts = {k: F.col(f"_ts_{k}") for k in t.timestamps}
        good = marked.filter(F.col("rule").isNull()).withColumns(parsed_ts)
        good = good.select(*df.columns, *(k for k in t.timestamps if k not in df.columns))
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
