"""A forecaster on the test windows: errors next to the baselines, plots, IG, importance."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from deepspark import baselines
from deepspark.config.evaluate import EvaluateConfig
from deepspark.evaluate import figures
from deepspark.evaluate.attribution import (
    completeness_error,
    integrated_gradients,
    permutation_importance,
)
from deepspark.evaluate.inference import predict
from deepspark.evaluate.metrics import forecast_metrics, mape

NAIVE = {"persistence": "baseline_persistence", "seasonal": "baseline_seasonal"}
MAX_SERIES_PLOTS = 12  # one PNG per series key; beyond this many they stop being looked at
log = logging.getLogger("deepspark")


def evaluate_forecaster(
    model: torch.nn.Module,
    test: dict[str, np.ndarray],
    linear: np.ndarray,
    *,
    x_shape: tuple[int, ...],
    inputs: list[str],
    cfg: EvaluateConfig,
    out: Path,
    title: str,
    target: str = "y",
    key: str | None = None,
    time: str | None = None,
) -> dict[str, float]:
    """Score ``model`` and the baselines on the test windows; write tables and plots to ``out``.

    Errors are compared on the rows where every naive baseline exists (one that is null on every
    row, e.g. a season no longer than the horizon, is left out); those rows are counted.

    Args:
        model: Maps flat windows to forecasts in target units.
        test: ``x``, ``y`` and the ``baseline_*`` columns; ``key`` and ``time`` when given.
        linear: The linear baseline's forecast of every test row.
        x_shape: ``(steps, inputs)`` of one window.
        inputs: The name of each input.
        cfg: MAPE threshold, attribution rows, IG steps, permutation repeats, seed.
        out: Folder for the files.
        title: Names the model in plot titles (e.g. ``flights v3``).
        target: The target's name, for axis labels.
        key: The series key column (one forecast plot per key), if the split has it.
        time: The column to plot against (the target's time), if the split has it.

    Returns:
        ``mae, rmse, mape`` (model) and ``baseline.<name>.<metric>`` on the common rows; row
        counts; ``ig.completeness_error``; ``importance.<input>`` (MAE increase when shuffled).
    """
    x, y = test["x"], np.asarray(test["y"], dtype=np.float64)
    pred = predict(model, x)
    rows, common = _compare(_forecasts(test, pred, linear), y, cfg.mape_min_abs)
    metrics = _error_metrics(rows, pred, y, common, cfg.mape_min_abs)

    out.mkdir(parents=True, exist_ok=True)
    _write_errors(rows, common, cfg.mape_min_abs, out)
    figures.residual_plot(
        pred, y - pred, out / "residuals.png", f"{title}: residuals on {len(y):,} test windows"
    )
    if key and time:
        _series_plots(test, pred, key, time, out, title, target)

    steps, n_inputs = x_shape
    names = list(inputs) if len(inputs) == n_inputs else [f"input_{j}" for j in range(n_inputs)]
    heat, metrics["ig.completeness_error"] = _attribution(model, x, x_shape, names, cfg, out, title)
    windows = x.reshape(len(x), steps, n_inputs)
    metrics.update(_importance(model, windows, y, heat, names, cfg, out, title))
    return metrics


def _forecasts(
    test: dict[str, np.ndarray], pred: np.ndarray, linear: np.ndarray
) -> dict[str, np.ndarray]:
    """The model's forecast first, then each baseline that exists on some test row."""
    forecasts = {"model": pred}
    for name, column in NAIVE.items():
        values = np.asarray(test[column], dtype=np.float64)
        if np.isnan(values).all():
            log.info("evaluate: %s is null on every test row; left out of the comparison", name)
            continue
        forecasts[name] = values
    forecasts["linear"] = np.asarray(linear, dtype=np.float64)
    return forecasts


def _compare(
    forecasts: dict[str, np.ndarray], y: np.ndarray, mape_min_abs: float
) -> tuple[dict[str, dict[str, float]], np.ndarray]:
    """Each method's errors on the rows where every forecast exists, and those rows."""
    common = np.logical_and.reduce([~np.isnan(f) for f in forecasts.values()])
    rows = {
        n: forecast_metrics(f[common], y[common], mape_min_abs=mape_min_abs)
        for n, f in forecasts.items()
    }
    return rows, common


def _error_metrics(
    rows: dict[str, dict[str, float]],
    pred: np.ndarray,
    y: np.ndarray,
    common: np.ndarray,
    mape_min_abs: float,
) -> dict[str, float]:
    """Row counts, the model's errors unprefixed, each baseline's as ``baseline.<name>.*``."""
    metrics = {
        "rows": float(len(y)),
        "rows_common": float(common.sum()),
        "rows_excluded": float(len(y) - common.sum()),
        "mape_rows": float(mape(pred[common], y[common], min_abs=mape_min_abs)[1]),
    }
    for name, values in rows.items():
        prefix = "" if name == "model" else f"baseline.{name}."
        metrics.update({f"{prefix}{k}": v for k, v in values.items()})
    return metrics


def _write_errors(
    rows: dict[str, dict[str, float]], common: np.ndarray, mape_min_abs: float, out: Path
) -> None:
    """``forecast_metrics.csv`` (one row per method) and ``.json`` (with the row counts)."""
    table = pd.DataFrame([{"method": n, **v} for n, v in rows.items()])
    table.to_csv(out / "forecast_metrics.csv", index=False)
    (out / "forecast_metrics.json").write_text(json.dumps(
        {"rows_common": int(common.sum()), "rows_excluded": int(len(common) - common.sum()),
         "mape_min_abs": mape_min_abs, "methods": table.to_dict("records")}, indent=2,
    ))  # fmt: skip


def _attribution(
    model: torch.nn.Module,
    x: np.ndarray,
    x_shape: tuple[int, ...],
    names: list[str],
    cfg: EvaluateConfig,
    out: Path,
    title: str,
) -> tuple[np.ndarray, float]:
    """Mean |integrated gradients| per (step, input) on seeded test windows, and its IG gap.

    Writes ``attribution.csv`` and ``attribution.png``; the heat is ``(steps, inputs)``.
    """
    steps, n_inputs = x_shape
    rng = np.random.default_rng(cfg.seed)
    picked = np.sort(rng.choice(len(x), size=min(cfg.attribution_rows, len(x)), replace=False))
    attr, delta = integrated_gradients(model, x[picked], steps=cfg.ig_steps)
    heat = np.abs(attr.reshape(len(picked), steps, n_inputs)).mean(0)
    lags = [f"t-{steps - 1 - i}" if i < steps - 1 else "t" for i in range(steps)]
    pd.DataFrame(heat, index=lags, columns=names).to_csv(
        out / "attribution.csv", index_label="step"
    )
    figures.matrix_heatmap(
        heat, lags, names, out / "attribution.png",
        f"{title}: mean |integrated gradients| over {len(picked):,} test windows "
        f"(zero baseline = training means)", "mean |attribution| (target units)",
    )  # fmt: skip
    return heat, completeness_error(attr, delta)


def _importance(
    model: torch.nn.Module,
    windows: np.ndarray,
    y: np.ndarray,
    heat: np.ndarray,
    names: list[str],
    cfg: EvaluateConfig,
    out: Path,
    title: str,
) -> dict[str, float]:
    """``importance.<input>``: the MAE increase when that input is shuffled across windows.

    Writes ``permutation_importance.csv`` (beside each input's summed IG heat) and ``.png``.
    """
    base, increase = permutation_importance(
        lambda w: predict(model, w.reshape(len(w), -1)), windows, y,
        score=baselines.mae, repeats=cfg.permutation_repeats, seed=cfg.seed,
    )  # fmt: skip
    importance = pd.DataFrame(
        {
            "input": names,
            "mae_increase": increase.mean(1),
            "mae_increase_std": increase.std(1),
            "ig_mean_abs": heat.sum(0),
        }
    ).sort_values("mae_increase", ascending=False)
    importance.to_csv(out / "permutation_importance.csv", index=False)
    figures.importance_chart(
        {r.input: (r.mae_increase, r.mae_increase_std) for r in importance.itertuples()},
        out / "permutation_importance.png",
        f"{title}: permutation importance ({cfg.permutation_repeats} shuffles; MAE {base:.3g} "
        f"on all {len(y):,} test windows)",
        "MAE increase when the input is shuffled",
    )  # fmt: skip
    return {f"importance.{r.input}": float(r.mae_increase) for r in importance.itertuples()}


def _series_plots(
    test: dict[str, np.ndarray],
    pred: np.ndarray,
    key: str,
    time: str,
    out: Path,
    title: str,
    target: str,
) -> None:
    frame = pd.DataFrame(
        {
            "key": test[key],
            "time": test[time],
            "actual": test["y"],
            "model": pred,
            "persistence": test["baseline_persistence"],
        }
    )
    keys = frame["key"].value_counts().index[:MAX_SERIES_PLOTS]
    if len(keys) < frame["key"].nunique():
        log.info("evaluate: forecast plots for the %d largest of %d series", len(keys),
                 frame["key"].nunique())  # fmt: skip
    for value in sorted(keys, key=str):
        part = frame[frame["key"] == value].sort_values("time").drop(columns="key")
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", str(value))
        figures.forecast_plot(
            part, out / f"forecast_{safe}.png",
            f"{title}: {key} {value}, forecast vs actual over the test period", target,
        )  # fmt: skip
