"""The LSTM on the full real flights features beats every baseline by 5 %, in 3 seeds (slow tier).

Runs the whole flights pipeline on all 336,776 flights and trains the configured LSTM with
TorchDistributor (2 processes), exactly as ``./spark-submit.sh jobs/pipeline.py`` does.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from deepspark.config import load_config
from deepspark.stages import pipeline, tune

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def full(spark, tmp_path_factory):
    """The flights pipeline on all the data, through training: the config maker and its results."""
    tmp = tmp_path_factory.mktemp("full-flights")

    def config(*extra: str):
        return load_config(
            ROOT / "conf" / "flights.yaml",
            [
                f"paths.data={tmp / 'data'}",
                f"paths.checkpoints={tmp / 'checkpoints'}",
                f"mlflow.tracking_uri=sqlite:///{tmp / 'mlflow.db'}",
                f"mlflow.artifact_root={tmp / 'artifacts'}",
                *extra,
            ],
        )

    stages = "pipeline.stages=[ingest, clean, aggregate, features, train]"
    return config, pipeline.run(config(stages), spark)


@pytest.mark.slow
def test_lstm_beats_every_baseline_by_5_percent_in_3_seeds(spark, full):
    config, results = full
    m = results["train"].metrics
    assert m["test.rows_common"] > 2000  # Nov 15 - Dec 31, three airports
    for baseline in ("persistence", "seasonal", "linear"):
        assert m["test.mae_common"] < m[f"baseline.{baseline}.mae"], baseline
    # The margin (issue 12): >= 5 % below the best baseline on the same rows, seed after seed
    # (MODELS.md: 5.7-6.3 % over seeds 0-4). Seeds 1 and 2 retrain on the same features.
    best = min(m[f"baseline.{b}.mae"] for b in ("persistence", "seasonal", "linear"))
    maes = [m["test.mae_common"]]
    for seed in (1, 2):
        again = config("pipeline.stages=[train]", f"pipeline.train.seed={seed}")
        maes.append(pipeline.run(again, spark)["train"].metrics["test.mae_common"])
    assert all(mae <= 0.95 * best for mae in maes), (maes, best)


@pytest.mark.slow
def test_a_study_of_8_trials_searches_the_full_features(spark, full):
    # conf/flights.yaml's space and pruner, 8 trials two at a time (the benchmark runs 20).
    config, _ = full
    result = tune.run(config("pipeline.tune.trials=8"), spark)
    m = result.metrics
    assert m["trials_run"] == 8 and m["trials_complete"] + m["trials_pruned"] == 8
    assert m["trials_fail"] == 0 and math.isfinite(m["best_val_mae"])
    best = load_config(result.outputs["best_config"])
    space = best.pipeline.tune.space
    assert space["lr"].low <= best.pipeline.train.lr <= space["lr"].high
