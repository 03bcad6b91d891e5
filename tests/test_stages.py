"""The stage table (config/stages.py) is the one place a stage is declared.

The command line, the pipeline's order and skip rule, `pipeline.stages` and `jobs/` all follow it:
these tests fail when any of them names a stage the table does not, or misses one it does.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from deepspark.cli import jobs
from deepspark.config import STAGES, load_config
from deepspark.config.pipeline import LAYERS
from deepspark.config.stages import ALIASES, BY_NAME, PIPELINE_ORDER, TABLE
from deepspark.errors import ConfigError
from deepspark.stages import pipeline

ROOT = Path(__file__).resolve().parents[1]
# What a stage may read or write besides the layers: sources, checkpoints, the MLflow store.
OUTSIDE = {"sources", "checkpoints", "mlflow", "every layer"}


@pytest.mark.parametrize("stage", [*TABLE, jobs.PIPELINE], ids=lambda s: s.name)
def test_each_declared_module_is_that_stage_and_runs_cfg_and_spark(stage):
    module = importlib.import_module(stage.module)
    assert stage.load() is module.run
    assert list(module.run.__code__.co_varnames[:2]) == ["cfg", "spark"]
    if stage is not jobs.PIPELINE:
        assert stage.name == module.STAGE
    assert set(stage.reads) | set(stage.writes) <= set(LAYERS) | OUTSIDE


def test_the_pipeline_runs_the_table_s_stages_in_its_order():
    assert STAGES == PIPELINE_ORDER == tuple(s.name for s in TABLE if s.in_pipeline)
    assert "tune" in BY_NAME and "tune" not in STAGES  # a study runs on its own


def test_every_job_file_runs_a_job_of_the_table():
    # A stage needs no file of its own: `./spark-submit.sh STAGE` and `deepspark run STAGE` take
    # any name in the table. The files are for clusters that submit a path.
    stems = {p.stem for p in (ROOT / "jobs").glob("*.py")}
    assert stems <= set(jobs.JOBS) | set(ALIASES)
    for stem in stems:
        assert jobs.lookup(stem).name == ALIASES.get(stem, stem)


def test_a_stage_the_table_does_not_declare_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError) as e:
        load_config(ROOT / "conf" / "flights.yaml", ["pipeline.stages=[ingest, reticulate]"])
    assert "stages: unknown stage 'reticulate' (expected one of" in str(e.value)


def test_the_skip_rule_is_each_stage_s_own():
    digits = load_config(ROOT / "conf" / "digits.yaml")
    untracked = load_config(ROOT / "conf" / "digits.yaml", ["mlflow.enabled=false"])
    assert pipeline.applicable(digits) == [
        s for s in digits.pipeline.stages if BY_NAME[s].applies(digits)
    ]
    assert "score" in pipeline.applicable(digits)
    assert "score" not in pipeline.applicable(untracked)  # no registry: nothing to load
    assert "aggregate" not in pipeline.applicable(digits)  # digits declares no aggregate
