"""The test split's scores: the model's test metrics beside the baselines it has to beat.

Rank 0 computes them once training has ended (:meth:`~deepspark.train.report.Reporter.finish`):
accuracy and the SVC baseline for a classifier; MAE and RMSE for a forecaster, and the
persistence, seasonal and linear baselines' MAE on the rows where every baseline exists.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from deepspark import baselines
from deepspark.train.job import TrainJob


def holdout_metrics(
    job: TrainJob, net: Any, step: Any, test: dict, train: dict | None
) -> dict[str, float]:
    """``test.*`` and ``baseline.*`` metrics of ``net`` on the test split's arrays.

    Args:
        job: The training job (task, manifest, the linear baseline preflight fitted, if any).
        net: The trained module; ``step`` carries its device and loss.
        step: The training step (``device``, ``loss``).
        test: The test split's ``x``, ``y`` (and a forecaster's two naive baselines).
        train: The training split's ``x`` and ``y``, for a baseline fitted here; None when
            the job brought its linear baseline from preflight.
    """
    from deepspark.train.loop import predict

    manifest = job.manifest
    scores = predict(net, test["x"], step.device)
    out: dict[str, float] = {"test.rows": float(len(test["y"]))}
    if job.task == "classification":
        out["test.accuracy"] = float((scores.argmax(1) == test["y"]).mean())
        svc = baselines.svc_accuracy(
            train["x"], train["y"], test["x"], test["y"], pixel_scale=manifest.max_value
        )
        if svc is not None:  # None: no scikit-learn here, the baseline is skipped
            out["baseline.svc.accuracy"] = svc
        return out
    y, pred = test["y"].astype(np.float64), scores.astype(np.float64)
    out["test.mae"] = baselines.mae(pred, y)
    out["test.rmse"] = float(np.sqrt(np.mean((pred - y) ** 2)))
    # The naive forecasts need history the grid may lack (no departures in that hour):
    # compare everything on the rows where every baseline exists.
    common = ~np.isnan(test["baseline_persistence"]) & ~np.isnan(test["baseline_seasonal"])
    # The model's own linear part when it has one: the very baseline it was trained over.
    fit = job.linear
    if fit is None:
        fit = baselines.fit_linear(train["x"], train["y"], y_scale=job.y_scale, loss=step.loss)
    linear = fit.predict(test["x"], job.y_scale)
    out["test.rows_common"] = float(common.sum())
    out["test.mae_common"] = baselines.mae(pred[common], y[common])
    for name, forecast in (
        ("persistence", test["baseline_persistence"]),
        ("seasonal", test["baseline_seasonal"]),
        ("linear", linear),
    ):
        out[f"baseline.{name}.mae"] = baselines.mae(forecast[common], y[common])
    return out
