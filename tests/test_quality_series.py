"""Two more real series, each a YAML file and nothing else, against their baselines (slow tier).

- ``conf/co2.yaml``: Mauna Loa CO2, weekly, one series (inside statsmodels). The default method
  beats its best baseline (the linear model on the same 52-week window) by 5 % in seeds 0-2.
- ``conf/glucose.yaml``: one person's continuous glucose monitor, hourly means, one series
  (inside bokeh_sampledata). The default method does not beat the linear baseline there
  (MODELS.md has every seed and what was tried): what must hold is that the gate sees it, so no
  seed's model becomes champion over a baseline it loses to.

Both run exactly as ``./spark-submit.sh jobs/pipeline.py -c conf/<name>.yaml`` would, up to
training, on the session's ``local[2]`` Spark.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from deepspark.config import load_config
from deepspark.stages import pipeline

ROOT = Path(__file__).resolve().parents[1]
BASELINES = ("persistence", "seasonal", "linear")


def runner(spark, tmp_path: Path, name: str):
    def train(stages: str, seed: int) -> dict[str, float]:
        cfg = load_config(
            ROOT / "conf" / f"{name}.yaml",
            [
                f"paths.data={tmp_path / 'data'}",
                f"paths.checkpoints={tmp_path / 'checkpoints'}",
                f"mlflow.tracking_uri=sqlite:///{tmp_path / 'mlflow.db'}",
                f"mlflow.artifact_root={tmp_path / 'artifacts'}",
                f"pipeline.stages=[{stages}]",
                f"pipeline.train.seed={seed}",
            ],
        )
        return pipeline.run(cfg, spark)["train"].metrics

    return train


@pytest.mark.slow
def test_co2_beats_every_baseline_by_5_percent_in_3_seeds(spark, tmp_path):
    train = runner(spark, tmp_path, "co2")
    m = [train("ingest, clean, features, train", 0)]
    m += [train("train", seed) for seed in (1, 2)]
    assert m[0]["test.rows_common"] == 313  # 1996-2001, every week with a reading
    best = min(m[0][f"baseline.{b}.mae"] for b in BASELINES)
    assert best == m[0]["baseline.linear.mae"]
    maes = [r["test.mae_common"] for r in m]
    # MODELS.md: 8.3-9.8 % below the linear baseline over seeds 0-4.
    assert all(mae <= 0.95 * best for mae in maes), (maes, best)
    assert m[0]["registry.champion"] == 1.0


@pytest.mark.slow
def test_glucose_models_that_lose_to_a_baseline_are_never_champion(spark, tmp_path):
    train = runner(spark, tmp_path, "glucose")
    runs = [train("ingest, clean, aggregate, features, train", 0), train("train", 1)]
    for m in runs:
        assert m["test.rows_common"] > 800  # September, hours with a full day of history
        best = min(m[f"baseline.{b}.mae"] for b in BASELINES)
        beats = m["test.mae_common"] < best
        # A version that loses stays challenger; the first one that beats them all is champion.
        if not beats:
            assert m["registry.champion"] == 0.0, m
    assert any(m["registry.champion"] == 0.0 for m in runs)  # MODELS.md: it loses in every seed
