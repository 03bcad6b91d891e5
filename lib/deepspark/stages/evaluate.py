"""Evaluate: the registered model on the test features -> metrics, tables and plots in MLflow.

No Spark: a test split is small enough to hold in memory, and attributions need the torch module
itself (gradients), not a scoring UDF. The model is resolved like the score stage does
(``champion`` unless ``pipeline.evaluate.model`` names another alias or a version; in a pipeline
whose alias names no version, the newest version: :mod:`deepspark.stages.pipeline`) and its torch
module taken from the logged pyfunc (:func:`deepspark.serving.module`; the arg-max of its class
scores is the pyfunc's ``label``). Images get accuracy, macro-F1, a per-class table, the
confusion matrix, the misclassified images and integrated-gradients maps; sequences get
MAE/RMSE/MAPE next to the persistence, same-step-one-season-earlier and linear baselines on the
same rows, forecast and residual plots, a step x input attribution heatmap and permutation
importance. Everything is logged to the stage's MLflow run: metrics as ``eval.*``, files under
``evaluate/``.
"""

from __future__ import annotations

import logging
import math
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from deepspark import baselines, registry, tracking
from deepspark import manifest as features
from deepspark.config import Config, to_plain
from deepspark.config.evaluate import EvaluateConfig
from deepspark.data import SplitInfo, read_split
from deepspark.errors import ConfigError, InputError
from deepspark.evaluate.classify import evaluate_classifier
from deepspark.evaluate.forecast import NAIVE, evaluate_forecaster
from deepspark.layout import MANIFEST, Layout
from deepspark.manifest import FeatureManifest
from deepspark.stages import StageResult
from deepspark.tracking import Tracking

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

STAGE = "evaluate"
log = logging.getLogger("deepspark")


def run(
    cfg: Config, spark: SparkSession | None = None, tracker: Tracking | None = None
) -> StageResult:
    """Evaluate and explain ``pipeline.evaluate.model`` on the pipeline's test features.

    The run's ``deepspark.evaluated`` tag says whether that version is the champion, and the
    plots say so when it is not; ``deepspark.gate`` carries the gate's reason for it.

    Raises:
        ConfigError: MLflow tracking is disabled (the model lives in its registry).
        InputError: No such registered version or alias; features missing or not the model's.
    """
    ecfg = cfg.pipeline.evaluate or EvaluateConfig()
    mlflow, name, uri, version = registry.registered_model(cfg, ecfg.model, "evaluation")
    layout = Layout(cfg.paths, cfg.pipeline.name)
    pinned = cfg.pipeline.train.features_version if cfg.pipeline.train else None
    manifest = features.read(layout.path("features", MANIFEST), pinned)
    kind, x_shape = manifest.kind, manifest.x_shape
    test_info = manifest.inspect("test", layout.path("features", "test"))
    manifest.check_split("test", test_info)

    from deepspark import serving  # attributions need the module, not the pyfunc's answers

    classes = manifest.n_out if kind == "image" else None
    _check_model(mlflow, uri, x_shape, classes, layout.path("features", "test"))
    model = serving.module(uri)
    standing, gate = _standing(mlflow, name, version)
    # The plots say it too when the version is not the champion (a refused model, evaluated).
    title = f"{name} v{version}" + ("" if standing == registry.CHAMPION else f" ({standing})")
    params = {**to_plain(ecfg), "model_uri": uri, "registered_model": name}
    with (
        (tracker or Tracking()).stage_run(cfg, STAGE, params) as run,
        tempfile.TemporaryDirectory() as tmp,
    ):
        mlflow.set_tags({"deepspark.evaluated": f"{name} v{version} ({standing})", **gate})
        out = Path(tmp)
        if kind == "image":
            test = _read(test_info, ["x", "y"])
            found = evaluate_classifier(
                model, test["x"], test["y"], x_shape=x_shape, classes=list(manifest.classes),
                cfg=ecfg, out=out, title=title,
            )  # fmt: skip
        else:
            found = _forecast(cfg, ecfg, model, manifest, layout, test_info, out, title)
        metrics = {f"eval.{k}": float(v) for k, v in found.items()}
        metrics.update(rows_in=float(test_info.rows), model_version=float(version))
        files = sorted(p.name for p in out.iterdir())
        tracking.log_metrics(metrics)
        tracking.log_artifacts(tmp, STAGE)
    outputs = {"model_uri": uri, "mlflow_run": run.info.run_id}
    outputs.update({f"{STAGE}/{f}": f"{run.info.artifact_uri}/{STAGE}/{f}" for f in files})
    headline = {k: v for k, v in metrics.items() if k in _HEADLINE}
    # DEBUG: the training's "test:" line said the same numbers; the plots are what is new here.
    log.debug("evaluated %s on %d test rows: %s", title, test_info.rows,
             ", ".join(f"{k} {v:.4g}" for k, v in headline.items()))  # fmt: skip
    return StageResult(STAGE, metrics, outputs)


_HEADLINE = (
    "eval.accuracy", "eval.macro_f1", "eval.mae", "eval.rmse", "eval.mape",
    "eval.baseline.persistence.mae", "eval.baseline.seasonal.mae", "eval.baseline.linear.mae",
)  # fmt: skip


def _forecast(
    cfg: Config,
    ecfg: EvaluateConfig,
    model: Any,
    manifest: FeatureManifest,
    layout: Layout,
    test_info: SplitInfo,
    out: Path,
    title: str,
) -> dict[str, float]:
    missing = [c for c in NAIVE.values() if c not in test_info.columns]
    if missing:
        raise InputError(
            f"{test_info.url}: the test split has no {', '.join(missing)} (the naive baselines); "
            "rebuild the features (./spark-submit.sh jobs/features.py)"
        )
    key = manifest.series_key
    time = "target_time" if "target_time" in test_info.columns else manifest.time
    extra = [c for c in (key, time) if c and c in test_info.columns]
    test = _read(test_info, ["x", "y", *NAIVE.values(), *extra])
    train_info = manifest.inspect("train", layout.path("features", "train"))
    train = _read(train_info, ["x", "y"])
    target = manifest.target or "y"
    tcfg = cfg.pipeline.train
    # The linear baseline is fitted with the loss the model was trained with, as in training.
    try:
        loss = tcfg.resolved(manifest.task).loss if tcfg is not None else "l1"
    except ValueError as e:
        raise ConfigError(f"{cfg.where}: pipeline.train.{e}") from e
    y_scale = manifest.y_scale
    fit = baselines.fit_linear(train["x"], train["y"], y_scale=y_scale, loss=loss, seed=ecfg.seed)
    linear = fit.predict(test["x"], y_scale)
    return evaluate_forecaster(
        model, test, linear, x_shape=manifest.x_shape, inputs=list(manifest.inputs),
        cfg=ecfg, out=out, title=title, target=target,
        key=key if key in extra else None, time=time if time in extra else None,
    )  # fmt: skip


def _standing(mlflow: Any, name: str, version: int) -> tuple[str, dict[str, str]]:
    """("champion" or e.g. "challenger, not the champion", the gate's reason as a run tag)."""
    found = mlflow.MlflowClient().get_model_version(name, str(version))
    aliases = sorted(found.aliases)
    reason = found.tags.get("deepspark.gate")
    gate = {"deepspark.gate": reason} if reason else {}
    if registry.CHAMPION in aliases:
        return registry.CHAMPION, gate
    return ", ".join([*aliases, "not the champion"]), gate


def _check_model(
    mlflow: Any, uri: str, x_shape: tuple[int, ...], classes: int | None, path: str
) -> None:
    """The model's signature must fit the features: row length, and class scores or forecasts.

    See :func:`deepspark.registry.model_io` for why the signature and not the module.
    """
    io = registry.model_io(mlflow.models.get_model_info(uri))
    if io is None:
        raise InputError(f"{uri}: the model has no signature; its input cannot be checked")
    length, width = io.length, io.classes
    if length != math.prod(x_shape):
        raise InputError(
            f"{uri} takes rows of {length} values, the features at {path} have x_shape "
            f"{list(x_shape)} ({math.prod(x_shape)} values); evaluate a version trained on them"
        )
    if width != classes:
        want = f"{classes} class scores" if classes else "one forecast"
        found = f"{width} class scores" if width else "one forecast"
        raise InputError(f"{uri} outputs {found} per row, the features at {path} need {want}")


def _read(info: SplitInfo, columns: list[str]) -> dict[str, np.ndarray]:
    """Every row of a split, in file order (one unshuffled pass of the training loader)."""
    return read_split(info.data, columns, workers=2)
