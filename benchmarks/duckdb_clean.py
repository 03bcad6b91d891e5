"""The same hand-written clean in DuckDB, on one node: context for the Spark figures, not a target.

Same five bronze tables, rules, dedupe (one ``row_number`` window) and two Parquet outputs per
table as reference_clean.py. Each table is marked once into a temporary table (DuckDB's persist)
and written twice. DuckDB runs with the threads it is given (2 here, like ``local[2]``).
"""

from __future__ import annotations

import time
from pathlib import Path

from reference_clean import RULES

NY = "America/New_York"


# DuckDB's %z does not take "Z"; its ISO 8601 cast does (and is a little more lenient).
TIMESTAMPS = {
    "time_hour": "TRY_CAST(time_hour AS TIMESTAMPTZ)",
    "sched_dep_utc": (
        "timezone('" + NY + "', try(make_timestamp(year, month, day, "
        "(sched_dep_time // 100)::BIGINT, (sched_dep_time % 100)::BIGINT, 0)))"
    ),
}


def _rules(spec: dict) -> list[tuple[str, str]]:
    """(rule, SQL condition) in the stage's order, from reference_clean.RULES."""
    out = [(f"required:{c}", f"{c} IS NULL") for c in spec["required"]]
    out += [(f"timestamp:{n}", f"_ts_{n} IS NULL") for n in spec.get("timestamps", ())]
    for column, (lo, hi) in spec.get("ranges", {}).items():
        parts = [f"isnan({column}::DOUBLE)"]
        parts += [f"{column} < {lo}"] if lo is not None else []
        parts += [f"{column} > {hi}"] if hi is not None else []
        out.append((f"range:{column}", " OR ".join(parts)))
    return out


def _marked_sql(path: str, columns: list[str], spec: dict, pads: tuple[bytes, bytes]) -> str:
    ipad, opad = (f"unhex('{p.hex()}')" for p in pads)
    hashed, stamps = spec.get("hashed", ()), spec.get("timestamps", ())
    select = [
        f"sha256({opad} || unhex(sha256({ipad} || {c}::BLOB))) AS {c}" if c in hashed else c
        for c in columns
    ]
    select += [f"{TIMESTAMPS[name]} AS _ts_{name}" for name in stamps]
    first = " ".join(f"WHEN {cond} THEN '{name}'" for name, cond in _rules(spec))
    every = [*columns, *(f"_ts_{n}" for n in stamps)]
    others = [c for c in every if c not in spec["key"]]
    window = f"PARTITION BY rule IS NULL, {', '.join(spec['key'])} ORDER BY {', '.join(others)}"
    return f"""
        WITH parsed AS (SELECT {", ".join(select)} FROM read_parquet('{path}/*.parquet')),
        ruled AS (SELECT *, CASE {first} END AS rule FROM parsed)
        SELECT * REPLACE (
            CASE WHEN rule IS NULL AND row_number() OVER ({window}) > 1 THEN 'duplicate'
                 ELSE rule END AS rule)
        FROM ruled"""


def run_duckdb(bronze: dict[str, str], scratch: str, key: bytes, threads: int = 2) -> dict:
    """Clean every table with DuckDB; per-table seconds and counts."""
    import duckdb

    from deepspark.etl.clean import key_pads

    pads = key_pads(key)
    con = duckdb.connect()
    con.execute(f"SET threads = {threads}")
    con.execute("SET enable_progress_bar = false")
    out: dict[str, dict] = {}
    for name, spec in RULES.items():
        target = Path(scratch) / name
        target.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        columns = [
            r[0]
            for r in con.execute(
                f"DESCRIBE SELECT * FROM read_parquet('{bronze[name]}/*.parquet')"
            ).fetchall()
        ]
        marked = _marked_sql(bronze[name], columns, spec, pads)
        con.execute(f"CREATE OR REPLACE TEMP TABLE marked AS {marked}")
        stamps = spec.get("timestamps", ())
        timestamps = [f"_ts_{n} AS {n}" for n in stamps]
        kept = [c for c in columns if c not in stamps]
        con.execute(
            f"COPY (SELECT {', '.join([*kept, *timestamps])} FROM marked WHERE rule IS NULL) "
            f"TO '{target}/clean.parquet' (FORMAT parquet)"
        )
        record = "to_json(struct_pack(" + ", ".join(f"{c} := {c}" for c in columns) + "))"
        con.execute(
            f"COPY (SELECT '{name}' AS source, 'clean' AS stage, rule, rule AS reason, "
            f"{record} AS record FROM marked WHERE rule IS NOT NULL) "
            f"TO '{target}/quarantine.parquet' (FORMAT parquet)"
        )
        seconds = time.perf_counter() - started
        counts = con.execute(
            "SELECT count(*) FILTER (WHERE rule IS NULL), count(*) FILTER (WHERE rule IS NOT NULL) "
            "FROM marked"
        ).fetchone()
        out[name] = {"seconds": seconds, "rows_out": counts[0], "rows_quarantined": counts[1]}
    con.close()
    return out
