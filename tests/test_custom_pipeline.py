"""A third pipeline, defined only in this test's YAML: a new dataset is a new config, not new code.

JSON sensor readings in Berlin local time, with a malformed line, a duplicate and an out-of-range
value; identifiers pseudonymized; hourly per-device aggregates; 6-hour windows -> next hour.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from deepspark import manifest as features
from deepspark.config import load_config
from deepspark.layout import Layout
from deepspark.stages import pipeline

SENSORS = """
pipeline:
  name: sensors
  sources:
    readings:
      uri: {uri}
      format: json
      schema: {{device: string, ts: string, temp_c: double, humidity: double}}
      max_quarantine_fraction: 0.05
  clean:
    readings:
      dedupe: [device, ts]
      required: [device, ts]
      ranges:
        temp_c: {{min: -30, max: 60}}
        humidity: {{min: 0, max: 100}}
      timestamps:
        ts: {{column: ts, format: "yyyy-MM-dd HH:mm:ss", timezone: Europe/Berlin}}
      pseudonymize: [device]
  aggregates:
    device_hourly:
      source: readings
      keys: [device]
      time: {{column: ts, unit: hour, output: hour}}
      metrics:
        n: {{fn: count}}
        temp_mean: {{fn: mean, column: temp_c}}
        humidity_max: {{fn: max, column: humidity}}
        warm: {{fn: count_if, where: "temp_c > 25"}}
  features:
    sequence:
      source: device_hourly
      series_key: device
      time: hour
      frequency: hour
      inputs: [n, temp_mean, humidity_max]
      fill: {{n: 0}}
      target: temp_mean
      window: 6
      horizon: 1
      split: {{validation_start: "2024-03-03T00:00:00Z", test_start: "2024-03-03T12:00:00Z"}}
    layout: {{files_per_split: 2, row_group_mb: 1, min_row_groups: 1}}
  profile:
    tables: [gold/device_hourly]
"""


def readings(path):
    start = datetime(2024, 3, 1, 0, 0)
    lines = []
    for d, device in enumerate(["sensor-a", "sensor-b"]):
        for i in range(3 * 24 * 3):  # 3 days, every 20 minutes
            t = start + timedelta(minutes=20 * i)
            rec = {
                "device": device,
                "ts": t.strftime("%Y-%m-%d %H:%M:%S"),
                "temp_c": 15 + 10 * d + (i % 9) * 0.5,
                "humidity": 40.0 + i % 7,
            }
            lines.append(json.dumps(rec))
    lines.append(lines[5])  # duplicate
    lines.append(
        '{"device": "sensor-a", "ts": "2024-03-01 00:10:00", "temp_c": 999, "humidity": 1}'
    )
    lines.append('{"device": "sensor-a", "ts": "2024-03-01 00:11:00", "temp_c": "warm"}')
    lines.append('{"device": "sensor-b", "ts": "yesterday", "temp_c": 20, "humidity": 50}')
    lines.append("{not json")
    path.write_text("\n".join(lines) + "\n")
    return len(lines)


@pytest.fixture(scope="module")
def run(spark, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sensors")
    n = readings(tmp / "readings.json")
    conf = tmp / "sensors.yaml"
    conf.write_text(SENSORS.format(uri=tmp / "readings.json"))
    cfg = load_config(
        conf,
        [
            f"paths.data={tmp / 'data'}",
            f"mlflow.tracking_uri=sqlite:///{tmp / 'm.db'}",
            f"mlflow.artifact_root={tmp / 'art'}",
        ],
    )
    return {"n": n, "results": pipeline.run(cfg, spark), "layout": Layout(cfg.paths, "sensors")}


def test_every_line_is_accounted_for(run):
    ingest, clean = run["results"]["ingest"].metrics, run["results"]["clean"].metrics
    assert ingest["rows_in"] == run["n"]
    assert ingest["rows_quarantined"] == 2  # "warm" is not a double; "{not json" is not JSON
    assert clean["rows_in"] == ingest["rows_out"]
    assert clean["rows_in"] == clean["rows_out"] + clean["rows_quarantined"]
    q = pq.read_table(run["layout"].quarantine("clean", "readings")).to_pandas()
    assert sorted(q["rule"]) == ["duplicate", "range:temp_c", "timestamp:ts"]
    reasons = dict(zip(q["rule"], q["reason"], strict=True))
    assert reasons["timestamp:ts"] == "ts=yesterday is not format 'yyyy-MM-dd HH:mm:ss'"


def test_parse_reasons(run):
    q = pq.read_table(run["layout"].quarantine("ingest", "readings")).to_pandas()
    assert sorted(q["reason"]) == [
        "malformed JSON record against the declared schema (0 of 4 fields parsed)",
        "temp_c: warm is not a valid double",
    ]


def test_local_time_becomes_utc_and_devices_are_pseudonymized(run):
    silver = pq.read_table(run["layout"].path("silver", "readings")).to_pandas()
    assert str(silver["ts"].min()) == "2024-02-29 23:00:00+00:00"  # 00:00 CET = 23:00 UTC
    assert not set(silver["device"]) & {"sensor-a", "sensor-b"}
    assert silver["device"].nunique() == 2


def test_hourly_aggregate_and_windows(run):
    gold = pq.read_table(run["layout"].path("gold", "device_hourly")).to_pandas()
    assert len(gold) == 2 * 72 and (gold["n"] == 3).all()
    manifest = json.loads(Path(run["layout"].path("features", "_manifest.json")).read_text())
    assert manifest["x_shape"] == [6, 3]
    rows = {s: manifest["splits"][s]["rows"] for s in ("train", "validation", "test")}
    # 72 hours per device: the first full window ends at hour 5, its target is hour 6.
    assert sum(rows.values()) == 2 * (72 - 6)
    assert rows["validation"] == 2 * 12


def test_profile_ran(run):
    assert "profile" in run["results"]


def test_a_target_that_is_not_an_input_still_has_its_scaling(spark, tmp_path):
    # The forecaster answers in the target's units, so the manifest keeps the target's training
    # mean and std even when only other columns are the model's inputs.
    readings(tmp_path / "readings.json")
    conf = tmp_path / "sensors.yaml"
    text = SENSORS.format(uri=tmp_path / "readings.json")
    conf.write_text(
        text.replace("inputs: [n, temp_mean, humidity_max]", "inputs: [n, humidity_max]")
    )
    cfg = load_config(
        conf,
        [
            f"paths.data={tmp_path / 'data'}",
            "mlflow.enabled=false",
            "pipeline.stages=[ingest, clean, aggregate, features]",
        ],
    )
    pipeline.run(cfg, spark)
    manifest = features.read(Layout(cfg.paths, "sensors").path("features", "_manifest.json"))
    assert manifest.inputs == ("n", "humidity_max") and manifest.x_shape == (6, 2)
    assert set(manifest.scaling) == {"n", "humidity_max", "temp_mean"}
    mean, std = manifest.y_scale
    assert 15 < mean < 29 and std > 0  # sensor a reads 15-19 C, sensor b 25-29 C
