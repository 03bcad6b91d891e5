"""The LSTM on the full real flights features beats every baseline by 5 %, in 3 seeds (slow tier).

Runs the whole flights pipeline on all 336,776 flights and trains the configured LSTM with
TorchDistributor (2 processes), exactly as ``./spark-submit.sh jobs/pipeline.py`` does.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from deepspark.config import load_config
from deepspark.stages import pipeline

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_lstm_beats_every_baseline_by_5_percent_in_3_seeds(spark, tmp_path):
    def config(*extra: str):
        return load_config(
            ROOT / "conf" / "flights.yaml",
            [
                f"paths.data={tmp_path / 'data'}",
                f"paths.checkpoints={tmp_path / 'checkpoints'}",
                f"mlflow.tracking_uri=sqlite:///{tmp_path / 'mlflow.db'}",
                f"mlflow.artifact_root={tmp_path / 'artifacts'}",
                *extra,
            ],
        )

    m = pipeline.run(config("pipeline.stages=[ingest, clean, aggregate, features, train]"), spark)
    m = m["train"].metrics
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
