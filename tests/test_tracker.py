"""One Tracking per job, made at the entry point and handed down: no tracking state is global."""

from __future__ import annotations

import logging
import re
from pathlib import Path

from deepspark import tracking
from deepspark.config import load_config
from deepspark.tracking import Tracking

ROOT = Path(__file__).resolve().parents[1]
LIB = ROOT / "lib" / "deepspark"
# Floor 2 of docs/ARCHITECTURE.md: the services.
SERVICES = ("envpack.py", "io", "privacy.py", "pyfunc_model.py", "registry.py", "serving.py",
            "spark.py", "tracking")  # fmt: skip


def _config(tmp_path: Path):
    return load_config(
        ROOT / "conf" / "digits.yaml",
        [f"mlflow.tracking_uri=sqlite:///{tmp_path / 'mlflow.db'}",
         f"mlflow.artifact_root={tmp_path / 'artifacts'}", "mlflow.experiment=tracker"],
    )  # fmt: skip


def test_stage_runs_name_their_job_s_pipeline_run_as_parent(tmp_path):
    cfg = _config(tmp_path)
    tracker = Tracking()
    with tracker.pipeline_run(cfg) as parent:
        assert tracker.parent == parent.info.run_id
        with tracker.stage_run(cfg, "features") as stage:
            pass
    assert tracker.parent is None  # closed with the pipeline run
    with Tracking().stage_run(cfg, "profile") as alone:  # another job: a top-level run
        pass
    client = tracking.setup(cfg.mlflow).MlflowClient()
    nested, top = client.get_run(stage.info.run_id), client.get_run(alone.info.run_id)
    assert nested.data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert "mlflow.parentRunId" not in top.data.tags
    # A stage run alone records the config; one under a pipeline run leaves that to the parent.
    assert "pipeline" in top.data.params and "pipeline" not in nested.data.params


def test_each_job_says_its_warnings_once_and_jobs_do_not_share_them(monkeypatch, caplog):
    monkeypatch.setattr(tracking.tracker, "installed", lambda: False)
    cfg = load_config(ROOT / "conf" / "digits.yaml", ["mlflow.enabled=true"])
    first, second = Tracking(), Tracking()
    with caplog.at_level(logging.WARNING, logger="deepspark.tracking"):
        for tracker in (first, first, second):
            assert not tracker.usable(cfg, optional=True).mlflow.enabled
    assert len(caplog.records) == 2  # once for each job, not once per process


def test_no_service_keeps_module_state_it_rebinds():
    found = [
        f"{p.relative_to(LIB)}:{n}: {line.strip()}"
        for name in SERVICES
        for p in sorted((LIB / name).rglob("*.py") if (LIB / name).is_dir() else [LIB / name])
        for n, line in enumerate(p.read_text().splitlines(), 1)
        if re.match(r"\s*global\s", line)
    ]
    assert found == []


def test_the_store_s_uri_is_read_without_creating_anything(tmp_path):
    cfg = _config(tmp_path / "not-yet").mlflow
    assert tracking.tracking_uri(cfg) == f"sqlite:///{tmp_path / 'not-yet' / 'mlflow.db'}"
    assert not (tmp_path / "not-yet").exists()
    tracking.create_store_folder(cfg)
    assert (tmp_path / "not-yet").is_dir()
