"""Rank 0's last steps of training: the logged model and the model registry's gate.

The model is logged as the :class:`deepspark.serving.FeatureModel` pyfunc (labels and
probabilities, or forecasts in the target's units) with its signature, an input example, the
pins inference needs (:func:`deepspark.serving.requirements`) and the deepspark source (the
module's class lives there); the Reporter then logs the test metrics onto it (:func:`model_id`),
and when the config asks for it, the logged model is registered and gated as champion or
challenger. Each step goes through the
:class:`~deepspark.train.report.Reporter`'s guard, so a tracking server that stopped answering
costs neither the training nor a stall, and a rerun does only the steps that did not reach MLflow.
"""

from __future__ import annotations

import logging
import os
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from deepspark.train.job import TrainJob

if TYPE_CHECKING:
    from deepspark.config.train import RegistryConfig
    from deepspark.registry import BaselineCheck
    from deepspark.train.state import Logged

log = logging.getLogger("deepspark.train")
# The step the model is logged at. MLflow links to a new LoggedModel every metric the run holds
# at the model's step (default 0: epoch 0's curves and a system sample), which would read as
# the model's own; no metric is logged at -1, so the model carries only the test metrics and
# baselines the Reporter logs with its id.
MODEL_STEP = -1


@dataclass(frozen=True)
class GuardedRun:
    """What the steps here need of rank 0's Reporter: its MLflow run, behind its guard.

    Attributes:
        call: the Reporter's guard, ``call(what, fn, *args) -> (whether it ran, its result)``.
        mlflow: the MLflow module, with the job's run active.
        job: the training job.
        done: what has reached the run; each step updates its own entry.
    """

    call: Callable[..., tuple[bool, Any]]
    mlflow: Any
    job: TrainJob
    done: Logged


def publish_model(run: GuardedRun, net: Any, test: dict) -> None:
    """Log the model, unless ``run.done`` says it already was; its URI goes to ``done.model``.

    Args:
        run: the Reporter's run and guard.
        net: the trained model.
        test: the test split's arrays ("x" gives the input example).
    """
    job, done = run.job, run.done
    if not done.model:
        example = test["x"][:5].astype(np.float32)
        classes = job.n_out if job.task == "classification" else None
        logged = run.call("model", _log_model, run.mlflow, net, example, classes, job.train.model)
        done.model = logged[1] or ""


def run_gate(run: GuardedRun, summary: dict, test: dict) -> None:
    """Register the logged model and run the registry gate, if configured and not done yet.

    Args:
        run: the Reporter's run and guard (the job's config says whether and under what name
            to register; the outcome goes to ``run.done.registry``).
        summary: the test metrics; the registry's outcome is added to it.
        test: the test split's arrays ("x", "y").
    """
    job, done = run.job, run.done
    if job.train.register.enabled:
        if not done.registry:
            outcome = run.call(
                "registry gate", _register, run.mlflow, job, done.model, summary, test
            )
            done.registry = outcome[1] or {}
        summary.update(done.registry)


def _register(
    mlflow: Any, job: TrainJob, model_uri: str, summary: dict, test: dict
) -> dict[str, Any]:
    from deepspark import registry, serving

    reg = job.train.register
    metric = reg.metric  # resolved at preflight: accuracy or mae unless set

    def score(uri: str) -> float:
        model = mlflow.pyfunc.load_model(uri)
        return _metric(
            metric, serving.point(model.predict(test["x"].astype(np.float32))), test["y"]
        )

    name = reg.name or job.config.pipeline.name
    gate = registry.register_and_gate(
        mlflow, name=name, model_uri=model_uri, metric=metric,
        value=summary[f"test.{metric}"], score=score,
        baselines=baseline_check(job.task, reg, summary),
    )  # fmt: skip
    mlflow.set_tags(
        {
            "deepspark.registered": f"{name} v{gate.version} ({gate.alias})",
            "deepspark.gate": gate.reason,
        }
    )
    log.info("registered %s v%d as %s: %s", name, gate.version, gate.alias, gate.reason)
    return {
        "registry.version": float(gate.version),
        "registry.champion": float(gate.alias == registry.CHAMPION),
        "registered_model": name,
        "registry_alias": gate.alias,
    }


def baseline_check(task: str, reg: RegistryConfig, summary: dict) -> BaselineCheck | None:
    """The new version against the baselines training computed, on the rows they share.

    None when ``register.beat_baselines`` is off. Forecasters compare MAE on the test rows where
    every naive baseline exists (``test.mae_common``); classifiers compare accuracy with the SVC.
    ``register.baselines`` names a subset; empty means every baseline the run computed.
    """
    if not reg.beat_baselines:
        return None
    wanted = set(reg.baselines)
    if task == "classification":
        metric, value, rows = "accuracy", summary["test.accuracy"], summary["test.rows"]
    else:
        metric, value, rows = "mae", summary["test.mae_common"], summary["test.rows_common"]
    prefix, suffix = "baseline.", f".{metric}"
    found = {
        k[len(prefix) : -len(suffix)]: float(v)
        for k, v in summary.items()
        if k.startswith(prefix) and k.endswith(suffix)
    }
    chosen = {n: v for n, v in found.items() if not wanted or n in wanted}
    from deepspark.registry import BaselineCheck

    return BaselineCheck(metric, float(value), int(rows), chosen)


def _log_model(mlflow: Any, net: Any, example: np.ndarray, classes: int | None, model: str) -> str:
    import sys

    import torch

    import deepspark
    from deepspark import serving
    from deepspark.models import custom

    net = net.to("cpu").eval()
    with tempfile.TemporaryDirectory() as tmp:
        module = os.path.join(tmp, "module.pt")
        torch.save(net, module)
        package = _package_dir(deepspark, tmp)
        code = [package]
        if custom.is_custom(model):  # the core's class is pickled by reference: ship its source
            code.append(_package_dir(sys.modules[custom.top_level(model)], tmp))
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=os.path.join(package, serving.ENTRY),
            model_config=serving.model_config(classes),
            artifacts={serving.ARTIFACT: module},
            signature=serving.signature(example.shape[1], classes),
            input_example=example,
            pip_requirements=serving.requirements(),
            # The module's class lives in deepspark (and a custom core's in the user's package):
            # ship the source so the model loads anywhere.
            code_paths=code,
            metadata=serving.metadata(classes),
            step=MODEL_STEP,
        )
    return info.model_uri


def model_id(model_uri: str) -> str | None:
    """The LoggedModel id in ``models:/<id>``, the URI :func:`publish_model` keeps; else None.

    A checkpoint written before MLflow 3 may hold a ``runs:/`` URI: no LoggedModel to link to.
    """
    prefix = "models:/"
    rest = model_uri[len(prefix) :] if model_uri.startswith(prefix) else ""
    return rest if rest.startswith("m-") and "/" not in rest else None


def _package_dir(package: Any, tmp: str) -> str:
    """A top-level package's source folder, or a top-level module's file.

    Under spark-submit it may be inside a zip (``--py-files``): then it is extracted into ``tmp``.
    """
    paths = list(getattr(package, "__path__", []))  # a namespace package has no __file__
    is_package = bool(paths)
    where = paths[0] if is_package else getattr(package, "__file__", None) or ""
    if os.path.exists(where):
        return where
    archive = getattr(package.__loader__, "archive", None)  # zipimport
    if archive is None:
        raise RuntimeError(f"cannot locate the source of {package.__name__} ({where})")
    name = package.__name__
    with zipfile.ZipFile(archive) as zf:
        wanted = [n for n in zf.namelist() if n.startswith(f"{name}/") or n == f"{name}.py"]
        zf.extractall(tmp, wanted)
    return os.path.join(tmp, name if is_package else f"{name}.py")


def _metric(metric: str, pred: np.ndarray, y: np.ndarray) -> float:
    """``metric`` of the labels or forecasts ``pred`` against ``y``."""
    if metric == "accuracy":
        return float((pred == y).mean())
    err = pred.astype(np.float64).reshape(-1) - y.astype(np.float64)
    return float(np.mean(np.abs(err)) if metric == "mae" else np.sqrt(np.mean(err**2)))
