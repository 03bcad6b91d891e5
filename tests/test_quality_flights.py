"""The LSTM on the full real flights features beats every naive and linear baseline (slow tier).

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
def test_lstm_beats_persistence_seasonal_and_linear_on_the_test_split(spark, tmp_path):
    cfg = load_config(
        ROOT / "conf" / "flights.yaml",
        [
            f"paths.data={tmp_path / 'data'}",
            f"paths.checkpoints={tmp_path / 'checkpoints'}",
            f"mlflow.tracking_uri=sqlite:///{tmp_path / 'mlflow.db'}",
            f"mlflow.artifact_root={tmp_path / 'artifacts'}",
            "pipeline.stages=[ingest, clean, aggregate, features, train]",
        ],
    )
    m = pipeline.run(cfg, spark)["train"].metrics
    assert m["test.rows_common"] > 2000  # Nov 15 - Dec 31, three airports
    for baseline in ("persistence", "seasonal", "linear"):
        assert m["test.mae_common"] < m[f"baseline.{baseline}.mae"], baseline
