"""Faults on the standalone cluster: a worker killed mid-stage, a training job killed mid-epoch,
a corrupt input file. Each job runs through ./spark-submit.sh exactly as a user would run it."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import time
import urllib.request

import psutil
import pytest

from tests.cluster.jobs import KEY, bare_executor_cluster, fingerprint, start, submit
from tests.cluster.standalone import LOOPBACK, free_port
from tests.realdata import slice_overrides


@pytest.fixture(scope="module")
def prepared(local_run, slice_raw, tmp_path_factory):
    """The local-mode pipeline run's outputs: the inputs of each fault, and the reference."""
    return {"tmp": tmp_path_factory.mktemp("faults"), "raw": slice_raw, "ref": local_run}


def _cluster_args(cluster, raw, work, *extra):
    return (
        *("-c", "conf/flights.yaml", "--cluster", "standalone", "--master", cluster.master_url),
        *slice_overrides(raw, work, *extra),
    )


def _rest(port: int, path: str):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/{path}", timeout=5) as resp:
        return json.load(resp)


def _completed_stages(port: int) -> int:
    try:
        (app,) = _rest(port, "applications")
        return len(_rest(port, f"applications/{app['id']}/stages?status=complete"))
    except (OSError, ValueError):
        return 0  # the driver's UI is not up yet


def test_worker_killed_mid_stage_the_stage_finishes_and_reconciles_exactly(
    spark, cluster, prepared
):
    tmp, ref = prepared["tmp"], prepared["ref"]
    work = tmp / "kill-worker"
    shutil.copytree(ref / "data" / "bronze", work / "data" / "bronze")
    events, ui = work / "events", free_port()
    events.mkdir()
    job = start(
        "jobs/clean.py",
        *_cluster_args(
            cluster, prepared["raw"], work,
            f"spark.settings.spark.ui.port={ui}",
            "spark.settings.spark.eventLog.enabled=true",
            "spark.settings.spark.eventLog.compress=false",
            f"spark.settings.spark.eventLog.dir=file://{events}",
        ),
        log=work / "clean.log",
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 300
        while _completed_stages(ui) < 2 and job.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert job.poll() is None, "the clean stage ended before the worker could be killed"
        listening = cluster.listening()
        cluster.kill_worker("worker-2")
        assert job.wait(timeout=600) == 0, (work / "clean.log").read_text()[-3000:]
    finally:
        if job.poll() is None:
            os.killpg(job.pid, signal.SIGKILL)
        cluster.restart_worker("worker-2")

    # The fault really hit the running application: Spark lost an executor and its tasks.
    # Spark 4 writes a rolling event log: a folder of files.
    log = "".join(p.read_text() for p in sorted(events.rglob("events_*")))
    kinds = [json.loads(line)["Event"] for line in log.splitlines() if line.startswith("{")]
    assert "SparkListenerExecutorRemoved" in kinds
    assert kinds.index("SparkListenerExecutorRemoved") < len(kinds) - kinds[::-1].index(
        "SparkListenerJobEnd"
    )
    # ... and the output is exactly the undisturbed local run's: no row lost, none doubled.
    for table in ("silver/flights/flights", "silver/flights/weather"):
        assert fingerprint(spark, work / "data" / table) == fingerprint(spark, ref / "data" / table)
    for table in ("flights", "weather"):
        q = f"quarantine/flights/clean/{table}"
        assert fingerprint(spark, work / "data" / q) == fingerprint(spark, ref / "data" / q)
    # Every service the cluster started listened on the loopback interface only.
    assert listening and {addr for addr, _ in listening} <= LOOPBACK
    assert KEY not in log and KEY.encode().hex() not in log


def test_training_killed_mid_epoch_resumes_from_its_last_checkpoint(cluster, prepared):
    """Also on executors without deepspark installed, as on YARN or Kubernetes (--py-files only)."""
    tmp, ref = prepared["tmp"], prepared["ref"]
    work = tmp / "kill-train"
    args = (
        *("-c", "conf/flights.yaml", "--cluster", str(bare_executor_cluster(tmp))),
        *("--master", cluster.master_url),
        *slice_overrides(
            prepared["raw"], work, f"paths.data={ref / 'data'}", "pipeline.train.epochs=12"
        ),
    )
    killed = start("jobs/train.py", *args, log=work / "killed.log")
    try:
        state = None
        deadline = time.monotonic() + 300
        while killed.poll() is None and time.monotonic() < deadline:
            found = list((work / "checkpoints").rglob("state.json"))
            state = json.loads(found[0].read_text()) if found else None
            if state and state["epoch"] >= 2:
                break
            time.sleep(0.1)
        assert killed.poll() is None, (work / "killed.log").read_text()[-3000:]
        time.sleep(0.5)  # into the next epoch
        os.killpg(killed.pid, signal.SIGKILL)  # the driver, as a lost submitting host would
        # ... and the training processes on the executors with it. Spark stops them too, but only
        # once the master has removed the application and each worker its executor: on a loaded
        # 2-core machine the slice's last epochs finished first (CI, stop 36).
        _kill_training(cluster)
        killed.wait(timeout=60)
    finally:
        if killed.poll() is None:
            os.killpg(killed.pid, signal.SIGKILL)
    _wait_for_no_application(cluster)
    (state_file,) = (work / "checkpoints").rglob("state.json")
    before = json.loads(state_file.read_text())
    assert not before["finished"] and 2 <= before["epoch"] < 12

    rerun = submit("jobs/train.py", *args, log=work / "rerun.log")
    assert rerun.returncode == 0, rerun.stdout[-3000:]
    after = json.loads(state_file.read_text())
    assert after["finished"] and after["epoch"] == 12
    assert after["run_id"] == before["run_id"]  # the same MLflow run carried on
    app = max(cluster.state()["completedapps"], key=lambda a: a["starttime"])
    logs = "".join(
        p.read_text(errors="replace") for p in cluster.root.glob(f"worker-*/{app['id']}/*/std*")
    )
    resumed = re.search(r"resuming \S+ from epoch (\d+) of 12", logs)
    assert resumed and int(resumed.group(1)) >= before["epoch"], logs[-3000:]
    assert "ModuleNotFoundError" not in logs + rerun.stdout


def _kill_training(cluster) -> None:
    """SIGKILL TorchDistributor's launcher on every executor, with torchrun and its ranks."""
    for pid in cluster.pids():
        try:
            proc = psutil.Process(pid)
            if "torch_run_process_wrapper" in " ".join(proc.cmdline()):
                for victim in [proc, *proc.children(recursive=True)]:
                    victim.kill()
        except psutil.NoSuchProcess:
            continue


def _wait_for_no_application(cluster, timeout_s: float = 120) -> None:
    """The master ends a killed driver's application and its executors; wait for that."""
    deadline = time.monotonic() + timeout_s
    while cluster.state()["activeapps"]:
        assert time.monotonic() < deadline, "the killed driver's application is still active"
        time.sleep(0.5)


def test_corrupt_parquet_input_is_an_error_naming_the_file(cluster, prepared):
    tmp, ref = prepared["tmp"], prepared["ref"]
    work = tmp / "corrupt"
    shutil.copytree(ref / "data" / "bronze", work / "data" / "bronze")
    shutil.copytree(ref / "data" / "silver", work / "data" / "silver")
    before = sorted(p.name for p in (work / "data/silver/flights/flights").iterdir())
    # The first table the stage reads: the job fails fast, before any of its output is staged.
    victim = sorted((work / "data/bronze/flights/flights").glob("part-*.parquet"))[0]
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])  # a truncated copy

    proc = submit("jobs/clean.py", *_cluster_args(cluster, prepared["raw"], work), log=work / "log")
    assert proc.returncode == 1
    (error,) = [ln for ln in proc.stdout.splitlines() if ln.startswith("error: ")]
    assert victim.name in error and "corrupt Parquet file" in error, error
    assert "Traceback" not in proc.stdout
    # The previous silver output is untouched.
    assert sorted(p.name for p in (work / "data/silver/flights/flights").iterdir()) == before


def test_tracking_server_down_mid_run_keeps_checkpoints_and_names_what_was_not_logged(
    cluster, prepared, tmp_path
):
    from tests.test_tracking_outage import kill, serve

    ref, port = prepared["ref"], free_port()
    work = tmp_path / "work"
    args = _cluster_args(
        cluster, prepared["raw"], work,
        f"paths.data={ref / 'data'}", "pipeline.train.epochs=4",
        f"mlflow.tracking_uri=http://127.0.0.1:{port}",
    )  # fmt: skip
    store = serve(tmp_path, port, "server")
    job = start("jobs/train.py", *args, log=work / "down.log")
    try:
        deadline = time.monotonic() + 300
        while job.poll() is None and time.monotonic() < deadline:
            found = list((work / "checkpoints").rglob("state.json"))
            if found and json.loads(found[0].read_text())["epoch"] >= 1:
                break
            time.sleep(0.1)
        kill(store)  # between epochs: the next epoch's metrics are the first to fail
        assert job.wait(timeout=600) == 1
    finally:
        if job.poll() is None:
            os.killpg(job.pid, signal.SIGKILL)
        if store.server.poll() is None:
            kill(store)
    out = (work / "down.log").read_text()
    (error,) = [ln for ln in out.splitlines() if ln.startswith("error: ")]
    assert re.fullmatch(
        r"error: MLflow logging failed mid-run \(epochs? [\d-]+ metrics, .*model.*; first error: "
        r".*\); training finished and its checkpoints are kept in (\S+); rerun the same command "
        r"with the server up to log the results to run [0-9a-f]{32}",
        error,
    ), error
    (state_file,) = (work / "checkpoints").rglob("state.json")
    state = json.loads(state_file.read_text())
    assert state["finished"] and state["epoch"] == 4
    assert {p.name for p in state_file.parent.iterdir()} >= {"last.pt", "best.pt", "state.json"}

    store = serve(tmp_path, port, "server-again")
    try:
        rerun = submit("jobs/train.py", *args, log=work / "rerun.log")
    finally:
        kill(store)
    assert rerun.returncode == 0, rerun.stdout[-3000:]
    assert not json.loads(state_file.read_text()).get("mlflow_failed")
