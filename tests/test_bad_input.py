"""The bad-delivery corpus: each real-looking case and its exact outcome under one policy.

- Unreadable or structurally wrong input fails in one line naming the file and what was expected.
- Row-level defects are quarantined with their reason; ``rows_in`` = clean + quarantined.
- Distribution and coverage anomalies (against the last good run) warn by default, and fail
  where the config says so; a failure leaves the previous outputs as they were.

Every case starts from the same last good run (a station's readings for 4 days, ingested and
cleaned), then delivers the next 4 days with one defect and runs ingest and clean again.
"""

from __future__ import annotations

import base64
import json
import math
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from deepspark.config import load_config
from deepspark.errors import DeepsparkError
from deepspark.layout import Layout
from deepspark.stages import clean, ingest

PIPELINE = """
pipeline:
  name: corpus
  sources:
    t:
      uri: {uri}
      format: {fmt}
      options: {{header: true}}
      schema: {{id: int, ts: string, station: string, temp: double}}
      max_quarantine_fraction: 0.2
  clean:
    t:
      dedupe: [id]
      required: [id, ts]
      timestamps:
        ts: {{column: ts, format: "yyyy-MM-dd'T'HH:mm:ssX"}}
  checks:
    tables:
      silver/t:
        categorical: [station]
        time: {{column: ts, unit: day}}
        ignore_drift: [id]              # each delivery has new ids
"""
HEADER = "id,ts,station,temp"


def readings(first_day: int, days: int = 4, stations: tuple[str, ...] = ("A", "B")) -> list[list]:
    """Daytime readings (06:00-17:00 UTC, hourly) of each station: a smooth daily curve."""
    rows = []
    for d in range(first_day, first_day + days):
        for h in range(6, 18):
            for s in stations:
                rid = d * 1000 + h * 10 + ord(s) - ord("A")
                temp = 10 + 8 * math.sin(math.pi * (h - 6) / 12) + 2 * (s == "B")
                rows.append(
                    [rid, f"2024-03-{d:02d}T{h:02d}:00:00Z", s, round(temp + rid % 7 / 7, 2)]
                )
    return rows


def text(rows: list[list], header: str = HEADER) -> bytes:
    return ("\n".join([header, *(",".join("" if v is None else str(v) for v in r) for r in rows)])
            + "\n").encode()  # fmt: skip


def with_temp(rows: list[list], f) -> list[list]:  # noqa: ANN001
    return [[*r[:3], f(r)] for r in rows]


NEXT = readings(5)  # the delivery every case starts from: days 5-8, 96 rows


@dataclass(frozen=True)
class Case:
    name: str
    data: bytes | pd.DataFrame
    error: str | None = None  # the exact one-line error ({path}: the delivered file)
    counts: dict = field(default_factory=dict)  # stage -> (rows_in, clean, quarantined)
    findings: frozenset = frozenset()  # (stage, table, check, column, severity)
    quarantine: tuple = ()  # (stage, rule, reason) of every quarantined row, sorted
    validation: str = ""  # extra YAML under checks.tables.silver/t


OK = {"ingest": (96, 96, 0), "clean": (96, 96, 0)}


def W(stage: str, table: str, check: str, column: str | None, severity: str = "warn") -> tuple:
    return (stage, table, check, column, severity)


def _latin1_line() -> bytes:
    return "5061,2024-03-05T06:00:00Z,Zürich,9.5\n".encode("latin-1")


def _garbage_with_bytes() -> bytes:
    return b"5062,\xff\xfe2024,A\n"


CASES = [
    Case("normal delivery", text(NEXT), counts=OK),
    Case("zero-byte file", b"", error="{path}: the file is empty; expected a CSV header line "
         "with id, ts, station, temp"),  # fmt: skip
    Case("header only", text([]), error="{path}: no rows (the file holds only a header line)"),
    Case("renamed column", text(NEXT, "id,time,station,temp"),
         error="{path} (CSV header): missing column(s) ts; available: id, time, station, temp"),
    Case("missing column", text([r[:3] for r in NEXT], "id,ts,station"),
         error="{path} (CSV header): missing column(s) temp; available: id, ts, station"),
    Case("reordered columns", text([[r[0], r[2], r[1], r[3]] for r in NEXT], "id,station,ts,temp"),
         error="{path} (CSV header): columns are id, station, ts, temp; expected, in this order: "
         "id, ts, station, temp"),
    Case("extra column", text([[*r, 1] for r in NEXT], HEADER + ",humidity"),
         error="{path} (CSV header): columns are id, ts, station, temp, humidity; expected, "
         "in this order: id, ts, station, temp"),
    Case("parquet with another schema",
         pd.DataFrame({"id": pd.Series([1], dtype="int32"), "ts": ["x"], "station": ["A"],
                       "temp": ["warm"]}),
         error="{path}: wrong column type(s): temp is string, expected double"),
    Case("parquet without a column",
         pd.DataFrame({"id": pd.Series([1], dtype="int32"), "ts": ["x"], "temp": [1.0]}),
         error="{path}: missing column(s) station; available: id, ts, temp"),
    Case("duplicates re-delivered", text(NEXT + NEXT[:48]),
         counts={"ingest": (144, 144, 0), "clean": (144, 96, 48)},
         quarantine=(("clean", "duplicate", 48),)),
    Case("garbage lines", text(NEXT) + b"<html>502 Bad Gateway</html>\n;;;\n",
         counts={"ingest": (98, 96, 2), "clean": (96, 96, 0)},
         quarantine=(("ingest", "parse", 2),)),
    Case("mixed encodings", text(NEXT[1:]) + _latin1_line(),
         counts={"ingest": (96, 95, 1), "clean": (95, 95, 0)},
         quarantine=(("ingest", "encoding", 1),)),
    Case("undecodable bytes in a broken line", text(NEXT) + _garbage_with_bytes(),
         counts={"ingest": (97, 96, 1), "clean": (96, 96, 0)},
         quarantine=(("ingest", "parse", 1),)),
    Case("types too wide", text([[3_000_000_000 + i, *r[1:]] for i, r in enumerate(NEXT[:2])]
                                + NEXT[2:]),
         counts={"ingest": (96, 94, 2), "clean": (94, 94, 0)},
         quarantine=(("ingest", "parse", 2),)),
    Case("truncated file", text(NEXT)[:-9],
         counts={"ingest": (96, 95, 1), "clean": (95, 95, 0)},
         quarantine=(("ingest", "parse", 1),)),
    Case("too many broken lines", text(NEXT[:10]) + b"x\n" * 5,
         error="{path}: 5 of 15 rows do not parse against the declared schema (at most 20.0% "
         "allowed); first: expected 4 fields, found 1"),
    Case("all-null column", text(with_temp(NEXT, lambda r: None)), counts=OK,
         findings=frozenset({W("ingest", "bronze/t", "all_null", "temp"),
                             W("clean", "silver/t", "all_null", "temp")})),
    Case("all-null column under an expectation", text(with_temp(NEXT, lambda r: None)),
         validation="columns: {temp: {max_null_fraction: 0.1}}",
         error="silver/t: temp: 100.0% null, expected at most 10.0% [expect.nulls]"),
    Case("constant column", text(with_temp(NEXT, lambda r: 20.0)), counts=OK,
         findings=frozenset({W("ingest", "bronze/t", "constant", "temp"),
                             W("clean", "silver/t", "constant", "temp"),
                             W("clean", "silver/t", "drift", "temp")})),
    # One reading in 24 (station A at 10:00) is 10,000 times too large.
    Case("exploding column", text(with_temp(NEXT, lambda r: r[3] * (1e4 if r[0] % 100 == 0
                                                                   else 1))), counts=OK,
         findings=frozenset({W("clean", "silver/t", "spread", "temp")})),
    Case("null fraction jump", text(with_temp(NEXT, lambda r: None if r[0] % 3 else r[3])),
         counts=OK,
         findings=frozenset({W("ingest", "bronze/t", "nulls", "temp"),
                             W("clean", "silver/t", "nulls", "temp")})),
    Case("units changed (Fahrenheit)", text(with_temp(NEXT, lambda r: round(r[3] * 1.8 + 32, 2))),
         counts=OK,
         findings=frozenset({W("clean", "silver/t", "drift", "temp")})),
    Case("a new station", text(NEXT + readings(5, stations=("C",))),
         counts={"ingest": (144, 144, 0), "clean": (144, 144, 0)},
         findings=frozenset({W("clean", "silver/t", "categories", "station")})),
    Case("a day of data missing", text([r for r in NEXT if "-06T" not in r[1]]),
         counts={"ingest": (72, 72, 0), "clean": (72, 72, 0)},
         findings=frozenset({W("clean", "silver/t", "gaps", "ts")})),
    # Local times (UTC-5) labelled as UTC: every reading 5 hours early.
    Case("time zone shift", text([[r[0], r[1][:11] + f"{int(r[1][11:13]) - 5:02d}" + r[1][13:],
                                   *r[2:]] for r in NEXT]),
         counts=OK, findings=frozenset({W("clean", "silver/t", "hours", "ts")})),
    Case("a short delivery", text(readings(5, days=1)),
         counts={"ingest": (24, 24, 0), "clean": (24, 24, 0)},
         findings=frozenset({W("ingest", "bronze/t", "rows", None),
                             W("clean", "silver/t", "rows", None)})),
    Case("a short delivery that must fail", text(readings(5, days=1)),
         validation="rows: {min: 50}",
         error="silver/t: 24 rows, expected [50, inf] [expect.rows]"),
]  # fmt: skip


def config(tmp_path: Path, uri: Path, data: Path, fmt: str = "csv", validation: str = ""):
    yaml = PIPELINE.format(uri=uri, fmt=fmt)
    if validation:
        yaml += f"        {validation}\n"
    path = tmp_path / "corpus.yaml"
    path.write_text(yaml)
    return load_config(path, [f"paths.data={data}", "mlflow.enabled=false"])


def deliver(folder: Path, data: bytes | pd.DataFrame) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    if isinstance(data, pd.DataFrame):
        path = folder / "t.parquet"
        data.to_parquet(path)
    else:
        path = folder / "t.csv"
        path.write_bytes(data)
    return path


@pytest.fixture(scope="module")
def last_good_run(spark, tmp_path_factory) -> Path:
    """Days 1-4, ingested and cleaned: the statistics every case is compared with."""
    root = tmp_path_factory.mktemp("corpus-base")
    cfg = config(root, deliver(root / "in", text(readings(1))), root / "data")
    ingest.run(cfg, spark)
    clean.run(cfg, spark)
    return root / "data"


def findings(data: Path) -> set:
    out = set()
    for stage in ("ingest", "clean"):
        report = data / "checks" / "corpus" / stage / "anomalies.json"
        for f in json.loads(report.read_text()) if report.exists() else []:
            out.add((stage, f["table"], f["check"], f["column"], f["severity"]))
    return out


def stats_files(data: Path) -> dict[str, str]:
    layers = ("bronze", "silver")
    return {p: (data / p / "corpus" / "t" / "_stats.json").read_text() for p in layers}


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_corpus(spark, tmp_path, last_good_run, case):
    data = tmp_path / "data"
    shutil.copytree(last_good_run, data)
    before = stats_files(data)
    path = deliver(tmp_path / "in", case.data)
    fmt = "parquet" if isinstance(case.data, pd.DataFrame) else "csv"
    cfg = config(tmp_path, path, data, fmt, case.validation)
    if case.error is not None:
        failed = "bronze"
        with pytest.raises(DeepsparkError) as e:
            ingest.run(cfg, spark)
            failed = "silver"
            clean.run(cfg, spark)
        assert str(e.value) == case.error.format(path=path)
        # The failed stage's outputs are the last good run's, untouched.
        assert stats_files(data)[failed] == before[failed]
        return
    results = {"ingest": ingest.run(cfg, spark), "clean": clean.run(cfg, spark)}
    counts = {
        s: tuple(int(r.metrics[k]) for k in ("rows_in", "rows_out", "rows_quarantined"))
        for s, r in results.items()
    }
    assert counts == case.counts
    assert findings(data) == set(case.findings)
    layout = Layout(cfg.paths, "corpus")
    rules = []
    for stage in ("ingest", "clean"):
        q = pq.read_table(layout.quarantine(stage, "t")).to_pandas()
        rules += [(stage, rule, n) for rule, n in q.groupby("rule").size().items()]
    assert tuple(sorted(rules)) == case.quarantine


def test_quarantine_keeps_the_bytes_that_are_not_utf8(spark, tmp_path, last_good_run):
    data = tmp_path / "data"
    shutil.copytree(last_good_run, data)
    path = deliver(tmp_path / "in", text(NEXT) + _garbage_with_bytes() + _latin1_line())
    cfg = config(tmp_path, path, data)
    ingest.run(cfg, spark)
    q = pq.read_table(Layout(cfg.paths, "corpus").quarantine("ingest", "t")).to_pandas()
    rows = q.sort_values("rule")[["rule", "reason", "record", "raw_base64"]].to_dict("records")
    assert rows == [
        {
            "rule": "encoding",
            "reason": "station is not valid UTF-8",
            "record": '{"id":5061,"ts":"2024-03-05T06:00:00Z","station":"Z\ufffdrich","temp":9.5}',
            "raw_base64": base64.b64encode(
                '{"id":5061,"ts":"2024-03-05T06:00:00Z","station":"Zürich","temp":9.5}'.encode(
                    "latin-1"
                )
            ).decode(),
        },
        {
            "rule": "parse",
            "reason": "expected 4 fields, found 3",
            "record": "5062,\ufffd\ufffd2024,A",
            "raw_base64": base64.b64encode(b"5062,\xff\xfe2024,A").decode(),
        },
    ]
