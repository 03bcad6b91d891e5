"""What a reviewer sees in the MLflow UI: a real ``mlflow server`` over a store deepspark wrote.

The store is built by the pipeline's own code (parent run, nested stage runs, two trained and
registered flights models, both challengers of the real gate), then served by the
``mlflow server`` the README tells reviewers to start. One test reads it through the REST API
only (plain HTTP, as the UI does, so a store the Python client can read but the server cannot
serve still fails here); the others render pages in headless Chromium (the train run's page;
its System metrics tab, the experiment's Models tab and a logged model's page) and keep
screenshots in ``work/test-artifacts/``.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from deepspark import tracking
from deepspark.train import launch
from deepspark.train.job import prepare
from tests.synthetic import tracked_config, write_features

ROOT = Path(__file__).resolve().parents[1]
# Gitignored (work/): CI can upload it, a reviewer can open it after a local run.
SCREENSHOT = ROOT / "work" / "test-artifacts" / "mlflow-run.png"
SPLITS = {"train": [300, 300], "validation": [100, 100], "test": [100, 100]}
EPOCHS = 3
# The server boots in ~10 s on two idle cores (during the training, so it is usually up by the
# end of it) and ~30 s when another job holds them; a server that exits fails at once.
SERVER_START_S = 90
# The UI has a GenAI and a "Model training" mode; this query parameter picks the latter, whose
# sidebar (Runs, Models, Model registry) is the one the README describes.
ML_MODE = "workflowType=machine_learning"


@dataclass
class Store:
    """The served store: where it lives, its server, and the runs the pipeline code logged."""

    tmp: Path
    url: str
    server: subprocess.Popen
    log: Path
    parents: list[str] = field(default_factory=list)
    summaries: list[dict] = field(default_factory=list)

    def server_log(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:]) or "(empty)"


def config(tmp: Path, *extra: str):
    return tracked_config(tmp, "sequence", *extra)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(tmp: Path, port: int, log: Path) -> subprocess.Popen:
    mlflow_cli = Path(sys.executable).with_name("mlflow")
    cmd = [
        str(mlflow_cli), "server",
        "--backend-store-uri", f"sqlite:///{tmp / 'mlflow.db'}",
        # Runs were logged straight to a local folder, so their artifact URIs are file:// and the
        # server reads them as they are: no artifact flag is needed to serve them. This only
        # keeps anything created through the server (none here) out of ./mlartifacts.
        "--artifacts-destination", str(tmp / "served-artifacts"),
        "--host", "127.0.0.1", "--port", str(port),
        "--workers", "1",
    ]  # fmt: skip
    env = {
        **os.environ,
        # The server otherwise starts a job runner and three Huey consumers (GenAI evaluation
        # jobs) that only compete for the CPU here.
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    }
    with log.open("wb") as out:
        # Its own session: the CLI forks uvicorn, and teardown must end the whole group.
        return subprocess.Popen(
            cmd, cwd=tmp, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def stop_server(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    for sig, wait_s in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait_s)
            return
        except subprocess.TimeoutExpired:
            continue


def wait_healthy(store: Store) -> None:
    deadline = time.monotonic() + SERVER_START_S
    last = "no answer yet"
    while time.monotonic() < deadline:
        if store.server.poll() is not None:
            pytest.fail(
                f"mlflow server exited with status {store.server.returncode} before answering "
                f"/health; its output:\n{store.server_log()}"
            )
        try:
            with urllib.request.urlopen(f"{store.url}/health", timeout=5) as resp:
                if resp.status == 200:
                    return
                last = f"HTTP {resp.status}"
        except (urllib.error.URLError, OSError) as e:
            last = str(getattr(e, "reason", e))
        time.sleep(0.5)
    pytest.fail(
        f"mlflow server did not answer {store.url}/health within {SERVER_START_S}s ({last}); "
        f"its output:\n{store.server_log()}"
    )


def train_under(cfg, parent_run_id: str) -> dict:
    """Train as the pipeline's train stage does, nested under ``parent_run_id``.

    In the pipeline, TorchDistributor runs the worker in another process, which opens its own
    run with the pipeline run as parent. ``train_stage.run(cfg, None)`` cannot do that under an
    active run in the same thread (MLflow refuses a second non-nested active run), so the worker
    runs here in a thread: MLflow's active-run stack is per thread, like a separate process's.
    These are the two calls ``train_stage.run`` makes.
    """
    result: dict = {}

    def work() -> None:
        try:
            result["summary"] = launch.in_process(prepare(cfg, parent_run_id=parent_run_id))
        except BaseException as e:  # re-raised in the calling thread below
            result["error"] = e

    worker = threading.Thread(target=work, name="train-worker")
    worker.start()
    worker.join()
    if "error" in result:
        raise result["error"]
    return result["summary"]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("mlflow-ui")
    write_features(tmp / "data", "flights", "sequence", SPLITS)
    # Sampled often enough that a few seconds of training draw a system metrics curve.
    first = config(tmp, f"pipeline.train.epochs={EPOCHS}", "mlflow.system_metrics_s=0.5")
    # A worse second model: one epoch from another seed. Neither beats the linear baseline (the
    # target is linear in the inputs), so the real gate makes each one challenger.
    second = config(tmp, "pipeline.train.epochs=1", "pipeline.train.seed=5")
    # Create the store (tables, experiment) before the server opens it; the server then boots
    # while the models train, as it would when a reviewer keeps the UI open during a run.
    tracking.setup(first.mlflow)
    port = free_port()
    log = tmp / "mlflow-server.log"
    s = Store(tmp, f"http://127.0.0.1:{port}", start_server(tmp, port, log), log)
    try:
        for cfg in (first, second):
            tracker = tracking.Tracking()
            with tracker.pipeline_run(cfg) as parent:
                with tracker.stage_run(cfg, "features"):
                    tracking.log_metrics({"rows_in": 1000.0, "rows_out": 1000.0})
                s.summaries.append(train_under(cfg, parent.info.run_id))
                s.parents.append(parent.info.run_id)
        wait_healthy(s)
        yield s
    finally:
        stop_server(s.server)


def call(store: Store, endpoint: str, body: dict | None = None, /, **query: str) -> dict:
    """One REST call (GET with a query, or POST with a JSON body); failures show the server."""
    url = f"{store.url}{endpoint}"
    if query:
        url += "?" + urllib.parse.urlencode(query)
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as e:
        detail = e.read().decode(errors="replace")[:2000]
        pytest.fail(f"{req.get_method()} {url}: HTTP {e.code}: {detail}\n{store.server_log()}")
    except (urllib.error.URLError, OSError) as e:
        pytest.fail(f"{req.get_method()} {url}: {e}\nserver output:\n{store.server_log()}")


def fetch(store: Store, endpoint: str, /, **query: str) -> bytes:
    url = f"{store.url}{endpoint}?{urllib.parse.urlencode(query)}"
    try:
        with urllib.request.urlopen(url, timeout=30) as resp:
            return resp.read()
    except urllib.error.HTTPError as e:
        pytest.fail(f"GET {url}: HTTP {e.code}: {e.read()[:500]!r}\n{store.server_log()}")


def tags(entity: dict) -> dict[str, str]:
    return {t["key"]: t["value"] for t in entity.get("tags", [])}


def test_rest_api_serves_runs_metrics_artifacts_and_registry(store):
    api = "/api/2.0/mlflow"
    good, worse = store.summaries
    # Check the training's own outcome first, so a gate change reads as such, not as a UI bug.
    outcome = (good["registry_alias"], worse["registry_alias"])
    assert outcome == ("challenger", "challenger"), f"the gate itself changed: {good}\n{worse}"

    experiment = call(store, f"{api}/experiments/get-by-name", experiment_name="deepspark")
    exp_id = experiment["experiment"]["experiment_id"]
    runs = call(store, f"{api}/runs/search", {"experiment_ids": [exp_id], "max_results": 100})
    by_id = {r["info"]["run_id"]: r for r in runs["runs"]}
    children: dict[str | None, set[str]] = {}
    for run_id, run in by_id.items():
        children.setdefault(tags(run["data"]).get("mlflow.parentRunId"), set()).add(run_id)
    assert children.get(None) == set(store.parents), "only the pipeline runs are top-level"
    for parent, summary in zip(store.parents, store.summaries, strict=True):
        assert by_id[parent]["info"]["run_name"] == "flights-pipeline"
        nested = {by_id[r]["info"]["run_name"]: r for r in children.get(parent, set())}
        assert set(nested) == {"flights-features", "flights-train"}, nested
        assert nested["flights-train"] == summary["run_id"]

    run_id = good["run_id"]
    run = call(store, f"{api}/runs/get", run_id=run_id)["run"]
    assert run["info"]["status"] == "FINISHED"
    assert tags(run["data"])["deepspark.registered"] == "flights v1 (challenger)"
    params = {p["key"]: p["value"] for p in run["data"]["params"]}
    assert params["train.epochs"] == str(EPOCHS)
    latest = {m["key"]: m["value"] for m in run["data"]["metrics"]}
    for key in ("test.mae", "test.rmse", "test.mae_common", "baseline.linear.mae"):
        assert latest[key] == pytest.approx(good[key]), key

    # One point per epoch, step = epoch: what the Model metrics charts draw.
    for key in ("train_loss", "val_loss", "val_mae"):
        history = call(store, f"{api}/metrics/get-history", run_id=run_id, metric_key=key)
        assert [m["step"] for m in history["metrics"]] == list(range(good["epochs"])), key
    assert good["epochs"] == EPOCHS
    # What the System metrics tab draws: rank 0's samples, one per step.
    for key in ("system/cpu_utilization_percentage", "system/system_memory_usage_megabytes"):
        history = call(store, f"{api}/metrics/get-history", run_id=run_id, metric_key=key)
        steps = [m["step"] for m in history["metrics"]]
        assert len(steps) >= 2 and steps == list(range(len(steps))), (key, steps)

    listed = call(store, f"{api}/artifacts/list", run_id=run_id)
    assert {f["path"] for f in listed["files"]} >= {"config.yaml", "plots"}, listed
    plots = call(store, f"{api}/artifacts/list", run_id=run_id, path="plots")
    assert {f["path"] for f in plots["files"]} == {"plots/loss.png", "plots/val_mae.png"}
    # The bytes the UI's Artifacts tab shows come from /get-artifact, not from the REST API.
    png = fetch(store, "/get-artifact", path="plots/loss.png", run_uuid=run_id)
    assert png.startswith(b"\x89PNG"), png[:40]

    # MLflow 3 logs a model as a LoggedModel beside the run (not under its artifacts): the run
    # lists it as an output, and the model's own artifact listing holds MLmodel and the example
    # (artifacts/ holds the torch module the pyfunc wrapper loads).
    outputs = run["outputs"]["model_outputs"]
    assert len(outputs) == 1, outputs
    model_id = outputs[0]["model_id"]
    logged = call(store, f"{api}/logged-models/{model_id}")["model"]
    model = logged["info"]
    assert model["source_run_id"] == run_id and model["status"] == "LOGGED_MODEL_READY"
    # The test metrics and baselines are the model's own (what the Models tab compares), on the
    # test split; none of the run's curves or system samples are.
    on_model = {m["key"]: m for m in logged["data"]["metrics"]}
    assert set(on_model) == {k for k, v in good.items() if k.startswith(("test.", "baseline."))} | {
        "epochs", "best_epoch",
    }, sorted(on_model)  # fmt: skip
    for key in ("test.mae", "test.rmse", "test.mae_common", "baseline.linear.mae"):
        assert on_model[key]["value"] == pytest.approx(good[key]), key
        assert on_model[key]["dataset_name"] == "flights/features/test", on_model[key]
    files = call(store, f"{api}/logged-models/{model_id}/artifacts/directories")
    assert {f["path"] for f in files["files"]} >= {
        "MLmodel", "input_example.json", "requirements.txt", "code", "artifacts",
    }  # fmt: skip
    # The UI reads a logged model's files through this route (it has no /api/ twin).
    mlmodel = fetch(
        store, f"/ajax-api/2.0/mlflow/logged-models/{model_id}/artifacts/files",
        artifact_file_path="MLmodel",
    ).decode()  # fmt: skip
    assert "signature:" in mlmodel and "saved_input_example_info:" in mlmodel, mlmodel

    registered = call(store, f"{api}/registered-models/get", name="flights")["registered_model"]
    aliases = {a["alias"]: a["version"] for a in registered["aliases"]}
    assert aliases == {"challenger": "2"}  # the alias moved to the newer refused version
    versions = call(store, f"{api}/model-versions/search", filter="name='flights'")
    by_version = {v["version"]: v for v in versions["model_versions"]}
    assert set(by_version) == {"1", "2"}
    for version, summary in (("1", good), ("2", worse)):
        assert by_version[version]["run_id"] == summary["run_id"]
    assert by_version["1"]["source"] == f"models:/{model_id}"
    challenger = call(store, f"{api}/registered-models/alias", name="flights", alias="challenger")
    assert challenger["model_version"]["version"] == "2"
    first = call(store, f"{api}/model-versions/get", name="flights", version="1")
    assert first["model_version"].get("aliases", []) == []  # the REST API omits an empty list
    for version, summary in ((first, good), (challenger, worse)):
        assert tags(version["model_version"])["deepspark.gate"].startswith(
            f"mae {summary['test.mae_common']:.6g} does not beat baseline ("
        )


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def browse(browser: str, store: Store, url: str, *args: str) -> subprocess.CompletedProcess:
    cmd = [
        browser,
        "--headless=new",
        "--disable-gpu",
        # Root in a container has no usable sandbox; CI's /dev/shm may be tiny.
        "--no-sandbox",
        "--disable-dev-shm-usage",
        # A profile of its own: no state from (or into) a developer's browser.
        f"--user-data-dir={store.tmp / 'chromium-profile'}",
        # The page is a React app: give its fetches virtual time to finish before the dump.
        "--virtual-time-budget=15000",
        *args,
        url,
    ]
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"{browser} did not finish in 120 s on {url}: {(e.stderr or '')[-2000:]}")


def visible_text(dom: str) -> str:
    dom = re.sub(r"<(script|style)\b.*?</\1>", " ", dom, flags=re.S | re.I)
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", dom))).strip()


def required_browser() -> str:
    """The headless browser, or a skip (a failure in CI, which sets DEEPSPARK_REQUIRE_CHROMIUM)."""
    browser = chromium()
    if browser is None:
        message = "no chromium or chromium-browser on PATH (Debian: apt-get install -y chromium)"
        # CI sets this so a missing browser fails there instead of passing as a skip.
        if os.environ.get("DEEPSPARK_REQUIRE_CHROMIUM") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return browser


def experiment_id(store) -> str:  # noqa: ANN001
    found = call(store, "/api/2.0/mlflow/experiments/get-by-name", experiment_name="deepspark")
    return found["experiment"]["experiment_id"]


def test_run_page_renders_the_training_run(store):
    browser = required_browser()
    good = store.summaries[0]
    exp_id = experiment_id(store)
    # The UI routes in the URL's fragment (a hash router), its query string included.
    url = f"{store.url}/#/experiments/{exp_id}/runs/{good['run_id']}?{ML_MODE}"

    shot = store.tmp / "run.png"
    # Tall enough that the Metrics table (below the run's details) is in the picture.
    size = "--window-size=1400,1800"
    browse(browser, store, url, f"--screenshot={shot}", size, "--hide-scrollbars")
    if shot.exists():
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, SCREENSHOT)

    done = browse(browser, store, url, "--dump-dom")
    text = visible_text(done.stdout)
    # The Overview tab lists every metric of the run with its latest value, the parent run,
    # the tags (with the gate's reason) and the registered model version.
    expected = [
        "flights-train", "flights-pipeline", "val_loss", "test.mae", "baseline.linear.mae",
        "deepspark.gate", "Registered models",
    ]  # fmt: skip
    missing = [word for word in expected if word not in text]
    assert not missing, (
        f"{url} rendered without {missing}.\nVisible text (first 3000 chars): {text[:3000]!r}\n"
        f"chromium exit {done.returncode}, stderr tail: {done.stderr[-1500:]}\n"
        f"server output:\n{store.server_log()}"
    )
    assert shot.exists() and shot.read_bytes().startswith(b"\x89PNG"), "no screenshot"


# Charts and table cells are drawn when they scroll into view; without this flag headless
# Chromium often dumps the page before it has (seen on the System metrics tab: 1 run in 2).
DRAW = "--run-all-compositor-stages-before-draw"


def render(browser: str, store: Store, url: str, expected: list[str], *args: str) -> str:
    """The page's visible text; the test fails unless it shows every string in ``expected``."""
    done = browse(browser, store, url, "--dump-dom", DRAW, *args)
    text = visible_text(done.stdout)
    missing = [word for word in expected if word not in text]
    assert not missing, (
        f"{url} rendered without {missing}.\nVisible text (first 3000 chars): {text[:3000]!r}\n"
        f"chromium exit {done.returncode}, stderr tail: {done.stderr[-1500:]}\n"
        f"server output:\n{store.server_log()}"
    )
    return text


def screenshot(browser: str, store: Store, url: str, name: str, size: str) -> None:
    """Keep a picture of the page in work/test-artifacts/ for a reviewer (not checked)."""
    shot = store.tmp / name
    args = (f"--screenshot={shot}", f"--window-size={size}", "--hide-scrollbars", DRAW)
    browse(browser, store, url, *args)
    if shot.exists():
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, SCREENSHOT.parent / name)


def test_system_metrics_tab_and_models_view_render(store):
    browser = required_browser()
    good = store.summaries[0]
    exp_id = experiment_id(store)
    base = f"{store.url}/#/experiments/{exp_id}"

    # The run's System metrics tab: a chart per system/ metric, drawn from rank 0's samples (the
    # legend names the run and the metric once a chart has its data).
    url = f"{base}/runs/{good['run_id']}/system-metrics?{ML_MODE}"
    expected = [
        "System metrics", "cpu_utilization_percentage",
        "flights-train (system/cpu_utilization_percentage)",
    ]  # fmt: skip
    render(browser, store, url, expected, "--window-size=1400,1800")
    screenshot(browser, store, url, "mlflow-system-metrics.png", "1400,1800")

    # The experiment's Models tab: a row per logged model, its metrics grouped by the dataset they
    # were computed on, and the registered version it became. The table draws only the columns
    # in view: a wide window shows the first metrics.
    url = f"{base}/models?{ML_MODE}"
    expected = ["Dataset: flights/features/test", "test.mae", "flights v1", "flights v2"]
    render(browser, store, url, expected, "--window-size=3000,1200")
    screenshot(browser, store, url, "mlflow-models.png", "3000,1200")

    # One logged model's page: every metric it carries (test metrics and baselines), the run
    # they came from, and its registered version.
    run = call(store, "/api/2.0/mlflow/runs/get", run_id=good["run_id"])["run"]
    model_id = run["outputs"]["model_outputs"][0]["model_id"]
    url = f"{base}/models/{model_id}?{ML_MODE}"
    on_model = sorted(k for k in good if k.startswith(("test.", "baseline.")))
    expected = [f"Metrics ({len(on_model) + 2})", *on_model, "flights-train", "flights v1"]
    text = render(browser, store, url, expected, "--window-size=1400,1800")
    assert "system/" not in text and "val_loss" not in text, text[:3000]
