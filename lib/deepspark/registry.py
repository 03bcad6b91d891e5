"""The model registry: one registered model per pipeline, a promotion gate on ``champion``.

Floor 2, beside :mod:`deepspark.tracking`. The gate compares like with like: the current champion
is loaded and scored on the very test rows the new version was scored on, so a change in the
features (new split, new scaling) cannot make an old metric look better or worse than it is.
"""

from __future__ import annotations

import contextlib
import io
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from deepspark import tracking
from deepspark.config import Config
from deepspark.errors import ConfigError, InputError
from deepspark.objectives import HIGHER_IS_BETTER, better

CHAMPION, CHALLENGER = "champion", "challenger"


@dataclass(frozen=True)
class GateResult:
    """Where a new version landed, and why."""

    name: str
    version: int
    alias: str
    reason: str
    metric: str
    value: float
    champion_version: int | None = None
    champion_value: float | None = None


@dataclass(frozen=True)
class BaselineCheck:
    """A new version against the pipeline's baselines, all scored on the same test rows."""

    metric: str  # "mae" for a forecaster, "accuracy" for a classifier
    value: float  # the new version's metric on those rows
    rows: int
    baselines: Mapping[str, float]  # baseline name -> its metric on the same rows

    def lost_to(self) -> dict[str, float]:
        """The baselines the version does not beat (meaningful only without a :meth:`problem`).

        A forecaster must have a strictly lower error (a tie loses: the baseline is free). A
        classifier loses only with a lower accuracy: on ~270 test images ties are common.
        """
        if HIGHER_IS_BETTER[self.metric]:
            return {n: v for n, v in self.baselines.items() if self.value < v}
        return {n: v for n, v in self.baselines.items() if self.value >= v}

    def problem(self) -> str | None:
        """Why this is no real comparison, or None when it is one.

        A comparison with nothing, or with a NaN (every ``<`` and ``>=`` with it is false), would
        otherwise read as beating every baseline.
        """
        if self.rows == 0:
            return f"0 test rows to compare on ({self.metric} {self.value:.6g})"
        if not self.baselines:
            return f"none was computed ({self.metric} {self.value:.6g} on {self.rows} test rows)"
        rows = f"on the same {self.rows} test rows ({self._against(self.baselines)})"
        if not math.isfinite(self.value):
            return f"the version's {self.metric} is {self.value} {rows}"
        if not all(math.isfinite(v) for v in self.baselines.values()):
            return f"a baseline's {self.metric} is not finite {rows}"
        return None

    def passed(self) -> bool:
        """Whether the version beats every baseline, in a real comparison."""
        return self.problem() is None and not self.lost_to()

    def verdict(self) -> str:
        """One line: what the version scored against which baselines."""
        problem = self.problem()
        if problem is not None:
            return f"no real comparison with the baselines: {problem}"
        lost = self.lost_to()
        verb = "does not beat baseline" if lost else "beats every baseline"
        return (
            f"{self.metric} {self.value:.6g} {verb} ({self._against(lost or self.baselines)}) "
            f"on the same {self.rows} test rows"
        )

    @staticmethod
    def _against(baselines: Mapping[str, float]) -> str:
        return ", ".join(f"{n} {v:.6g}" for n, v in baselines.items())


def register_and_gate(
    mlflow: Any,
    *,
    name: str,
    model_uri: str,
    metric: str,
    value: float,
    score: Callable[[str], float],
    baselines: BaselineCheck | None = None,
) -> GateResult:
    """Register ``model_uri`` under ``name``; give it ``champion`` or ``challenger``.

    ``value`` is the new version's ``metric`` on the test rows; ``score(uri)`` computes the same
    metric for another model on the same rows. Ties keep the current champion: a new version has
    to be better, not just as good, to take over production. With ``baselines``, a version that
    loses to any of them, or that no real comparison backs (no baseline, no common rows, a NaN on
    either side), is ``challenger`` whatever else holds, the first version included.
    """
    from mlflow.exceptions import MlflowException

    client = mlflow.MlflowClient()
    # register_model prints "Successfully registered model ..." and "Created version ..." to
    # stderr; the gate's own log line below says that and why.
    with contextlib.redirect_stderr(io.StringIO()):
        version = int(mlflow.register_model(model_uri, name).version)
    try:
        current = client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        current = None
    champion_version = champion_value = None
    if current is not None:
        champion_version = int(current.version)
    if baselines is not None and not baselines.passed():
        alias = CHALLENGER
        why = "without one" if baselines.problem() else "while it loses to a baseline"
        reason = f"{baselines.verdict()}: challenger, never champion {why}"
    elif not math.isfinite(value):  # beat_baselines off: still no champion on a NaN metric
        alias = CHALLENGER
        reason = f"{metric} is {value}: challenger, never champion without a real comparison"
    elif current is None:
        alias, reason = CHAMPION, "first version of the model: champion by default"
        if baselines is not None:
            alias, reason = CHAMPION, f"first version of the model; {baselines.verdict()}"
    else:
        champion_value = float(score(f"models:/{name}/{champion_version}"))
        wins = better(metric, value, champion_value)
        verdict = "beats" if wins else "does not beat"
        alias = CHAMPION if wins else CHALLENGER
        reason = (
            f"{metric} {value:.6g} {verdict} champion v{champion_version} ({champion_value:.6g}) "
            f"on the same test rows"
        )
    client.set_registered_model_alias(name, alias, str(version))
    client.set_model_version_tag(name, str(version), "deepspark.gate", reason)
    client.set_model_version_tag(name, str(version), "deepspark.gate_metric", f"{metric}={value}")
    return GateResult(name, version, alias, reason, metric, value, champion_version, champion_value)


def resolve(mlflow: Any, name: str, ref: str) -> tuple[str, int]:
    """``champion`` / ``challenger`` / ``3`` -> (a models:/ URI pinned to the version, version)."""
    client = mlflow.MlflowClient()
    version = (
        int(ref) if ref.isdigit() else int(client.get_model_version_by_alias(name, ref).version)
    )
    return f"models:/{name}/{version}", version


def registered_model(cfg: Config, ref: str | int, purpose: str) -> tuple[Any, str, str, int]:
    """(mlflow, name, pinned URI, version) of the pipeline's model ``ref``, or one clear error.

    ``purpose`` names the job in the error ("scoring", "evaluation").
    """
    where = cfg.where
    if not cfg.mlflow.enabled:
        raise ConfigError(
            f"{where}: {purpose} loads the model from the MLflow registry; mlflow.enabled is false"
        )
    name = model_name(cfg)
    mlflow = tracking.setup(cfg.mlflow)
    from mlflow.exceptions import MlflowException

    try:
        uri, version = resolve(mlflow, name, str(ref))
        mlflow.MlflowClient().get_model_version(name, str(version))  # a number may not exist
    except MlflowException as e:
        gap = _no_alias(mlflow, name, str(ref))
        if gap is not None:
            raise InputError(gap.why) from e
        raise InputError(
            f"registered model {name!r} has no version or alias {ref}; train it first "
            f"(./spark-submit.sh jobs/train.py -c {where})"
        ) from e
    return mlflow, name, uri, version


def model_name(cfg: Config) -> str:
    """The pipeline's registered model: ``pipeline.train.register.name``, else the pipeline's."""
    train = cfg.pipeline.train
    return (train.register.name if train else None) or cfg.pipeline.name


@dataclass(frozen=True)
class NoAlias:
    """An alias that names no version of a model that has versions.

    ``champion`` when the gate refused every version; ``challenger`` when every version won.
    """

    name: str  # the registered model
    alias: str
    newest: int  # the newest version registered
    why: str  # one line: the model has no such alias, and the gate's last decision


def missing_alias(cfg: Config, ref: str | int) -> NoAlias | None:
    """Why the alias ``ref`` names no version of the pipeline's model, which has versions.

    None for a version number, an alias that names a version, a model with no version at all
    or tracking off (the stage's own error then says to train first, or to turn tracking on).
    """
    if str(ref).isdigit() or not cfg.mlflow.enabled:  # the stage's own error says what is wrong
        return None
    mlflow = tracking.setup(cfg.mlflow)
    from mlflow.exceptions import MlflowException

    name = model_name(cfg)
    try:
        mlflow.MlflowClient().get_model_version_by_alias(name, str(ref))
        return None
    except MlflowException:
        return _no_alias(mlflow, name, str(ref))


def _no_alias(mlflow: Any, name: str, alias: str) -> NoAlias | None:
    from mlflow.exceptions import MlflowException

    if alias.isdigit():
        return None
    try:
        versions = mlflow.MlflowClient().search_model_versions(f"name = '{name}'")
    except MlflowException:
        return None
    if not versions:
        return None
    newest = max(versions, key=lambda v: int(v.version))
    why = f"registered model {name!r} has no {alias}"
    tagged = [v for v in versions if v.tags.get("deepspark.gate")]
    if tagged:
        last = max(tagged, key=lambda v: int(v.version))
        why += f": the gate's last decision, on v{last.version}: {last.tags['deepspark.gate']}"
    return NoAlias(name, alias, int(newest.version), why)


class ModelIO(NamedTuple):
    """What a logged model takes and answers, from its signature and metadata."""

    length: int  # values per input row
    classes: int | None  # classes of a classifier; None for a forecast
    legacy: bool  # logged before deepspark.serving: a classifier answers raw class scores


def model_io(info: Any) -> ModelIO | None:
    """What the logged model ``info`` takes and answers, or None without a signature.

    Read from the logged signature and metadata, not from the model object: loading it costs
    the module, and the stages check the features against it before they load anything.

    Raises:
        InputError: The signature is not one deepspark logs.
    """
    from deepspark import serving

    signature = info.signature
    if signature is None:
        return None
    (inp,) = signature.inputs.inputs
    length = int(inp.shape[-1])
    outputs = signature.outputs.inputs
    ours = (info.metadata or {}).get(serving.METADATA_KEY)
    if ours is not None:
        names = [getattr(o, "name", None) for o in outputs]
        if ours["classes"] is not None and names != [serving.LABEL, serving.PROBABILITY]:
            raise InputError(
                f"{info.model_uri}: a classifier's output should be {serving.LABEL!r} and "
                f"{serving.PROBABILITY!r}, its signature has {names}"
            )
        return ModelIO(length, ours["classes"], legacy=False)
    (out,) = outputs  # a torch module's raw output: class scores (rows, k) or forecasts (rows,)
    classes = int(out.shape[-1]) if len(out.shape) == 2 and out.shape[-1] > 1 else None
    return ModelIO(length, classes, legacy=True)
