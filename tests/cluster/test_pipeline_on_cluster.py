"""The whole flights pipeline through ./spark-submit.sh on a 2-worker standalone cluster, against
the same pipeline in local mode: the same tables row for row, models within tolerance."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from tests.cluster.jobs import KEY, fingerprint, tables

# Model outputs (and k-means labels, fitted by a distributed algorithm) are compared by rows here
# and by metrics below; everything else must match exactly.
MODEL_TABLES = ("predictions/", "gold/flights/airport_hourly_clusters")


@pytest.fixture(scope="module")
def runs(cluster, local_run, cluster_run):
    return {"local": local_run, "cluster": cluster_run, "standalone": cluster}


def test_the_cluster_ran_the_application_on_both_workers(runs):
    apps = runs["standalone"].state()["completedapps"]
    (app,) = [a for a in apps if a["name"] == "deepspark-pipeline"]
    assert app["cores"] == 2  # one executor on each worker, as the cluster asks
    for worker in ("worker-1", "worker-2"):
        work = runs["standalone"].root / worker / app["id"]
        assert any(work.iterdir()), f"{worker} ran no executor for {app['id']}"


def test_training_ran_as_two_barrier_tasks_across_the_workers(runs):
    logs = sorted((runs["standalone"].root).glob("worker-*/app-*/*/stderr"))
    synced = {p.parts[-4] for p in logs if "finished global sync" in p.read_text(errors="replace")}
    assert synced == {"worker-1", "worker-2"}  # TorchDistributor's barrier stage, one per worker


def test_every_table_matches_local_mode(spark, runs):
    local, remote = runs["local"] / "data", runs["cluster"] / "data"
    assert tables(remote) == tables(local)
    assert len(tables(local)) >= 25
    for table in tables(local):
        a, b = fingerprint(spark, local / table), fingerprint(spark, remote / table)
        if table.startswith(MODEL_TABLES):
            assert a[0] == b[0], table
        else:
            assert a == b, table


def _train_run(work: Path, table: str) -> dict[str, str]:
    with sqlite3.connect(work / "mlflow.db") as db:
        return dict(
            db.execute(
                f"SELECT x.key, x.value FROM {table} x JOIN tags t ON t.run_uuid = x.run_uuid "
                "WHERE t.key = 'deepspark.stage' AND t.value = 'train'"
            ).fetchall()
        )


def test_model_metrics_match_local_mode_within_tolerance(runs):
    local, remote = (_train_run(runs[r], "latest_metrics") for r in ("local", "cluster"))
    assert remote["epochs"] == local["epochs"] == 2
    for key in ("train_loss", "val_mae", "test.mae", "test.rmse"):
        assert remote[key] == pytest.approx(local[key], rel=0.05), key
    for run in ("local", "cluster"):
        params = _train_run(runs[run], "params")
        assert params["train.world_size"] == "2", run
    assert _train_run(runs["cluster"], "params")["train.local_mode"] == "False"


def test_both_registered_the_model_and_the_gate_decided_alike(runs):
    # The slice's config scores v1 by number: two epochs on ten days need not be a champion.
    states = [
        json.loads(next((runs[run] / "checkpoints").rglob("state.json")).read_text())
        for run in ("local", "cluster")
    ]
    assert [s["registry.version"] for s in states] == [1.0, 1.0]
    assert states[0]["registry.champion"] == states[1]["registry.champion"]


def test_no_secret_in_anything_the_runs_or_the_cluster_kept(runs):
    """The key was in the submitting shell's environment only: not in any file either run wrote,
    nor in the workers' logs and directories (shipped configs, library zip, executor output)."""
    needles = [KEY.encode(), KEY.encode().hex().encode()]
    roots = [runs["local"], runs["cluster"], runs["standalone"].root]
    files = [p for root in roots for p in root.rglob("*") if p.is_file()]
    assert len(files) > 100
    leaks = [str(p) for p in files if any(n in p.read_bytes() for n in needles)]
    assert not leaks
