"""A model the registry gate refuses is an outcome, not a failure.

The whole ``deepspark run pipeline`` command (its exit status included) over synthetic features
whose target is linear in the inputs: one epoch of an RNN cannot beat the linear baseline, so the
real gate refuses the only version. The pipeline then evaluates that newest version, saying it is
not the champion, skips scoring with the gate's reason, and exits 0; ``score`` on its own still
fails in one line.
"""

from __future__ import annotations

import subprocess
import sys

import mlflow
import pytest

from deepspark.config import load_config
from deepspark.errors import InputError
from deepspark.stages import score as score_stage
from tests.synthetic import ROOT, conf_file, tracked_overrides, write_features

SPLITS = {"train": [300, 300], "validation": [100, 100], "test": [100, 100]}


@pytest.fixture
def refused(tmp_path):
    write_features(tmp_path / "data", "flights", "sequence", SPLITS)
    overrides = tracked_overrides(
        tmp_path, "sequence", "pipeline.stages=[train, evaluate, score]",
        "pipeline.train.epochs=1", "pipeline.evaluate.samples=4", "pipeline.evaluate.ig_steps=8",
        "pipeline.evaluate.attribution_rows=64", "pipeline.evaluate.permutation_repeats=1",
        "spark.settings.spark.ui.enabled=false",
    )  # fmt: skip
    cmd = [
        sys.executable,
        "-m",
        "deepspark.cli",
        "run",
        "pipeline",
        "-c",
        str(conf_file("sequence")),
    ]
    proc = subprocess.run(
        [*cmd, *overrides], cwd=ROOT, capture_output=True, text=True, timeout=540, check=False
    )
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    yield {"proc": proc, "client": client, "tmp": tmp_path, "overrides": overrides}
    mlflow.set_tracking_uri(None)


def test_a_refused_model_is_evaluated_and_not_scored_and_the_pipeline_exits_0(refused):
    proc, client = refused["proc"], refused["client"]
    assert proc.returncode == 0, proc.stderr[-3000:]
    version = client.get_model_version("flights", "1")
    reason = version.tags["deepspark.gate"]
    assert version.aliases == ["challenger"], reason
    assert reason.endswith(": challenger, never champion while it loses to a baseline"), reason
    no_champion = (
        f"registered model 'flights' has no champion: the gate's last decision, on v1: {reason}"
    )
    lines = proc.stderr.splitlines()
    said = [ln.split(": ", 1)[1] for ln in lines if "has no champion" in ln and " INFO " in ln]
    assert said == [
        "evaluate: registered model 'flights' has no champion; evaluating its newest version, v1",
        f"score skipped: {no_champion}",  # one line, with the gate's reason
    ]
    # The summary table says it in the score row, in place of its counts.
    assert "  score     not scored: no champion" in lines, proc.stderr[-3000:]

    experiment = client.get_experiment_by_name("deepspark")
    stages = {
        r.data.tags["deepspark.stage"]: r
        for r in client.search_runs([experiment.experiment_id])
        if "deepspark.stage" in r.data.tags
    }
    assert set(stages) == {"train", "evaluate"}  # no score run: nothing was scored
    evaluated = stages["evaluate"].data
    assert evaluated.params["evaluate.model"] == "1"
    assert evaluated.tags["deepspark.evaluated"] == "flights v1 (challenger, not the champion)"
    assert evaluated.tags["deepspark.gate"] == reason
    assert "eval.mae" in evaluated.metrics
    assert not (refused["tmp"] / "data" / "predictions").exists()

    # `deepspark run score` alone still fails, in one line that quotes the gate.
    with pytest.raises(InputError) as e:
        score_stage.run(load_config(conf_file("sequence"), refused["overrides"]), None)
    assert str(e.value) == no_champion
