"""The logged model: an MLflow pyfunc that answers labels and probabilities, or forecasts.

Floor 2, beside :mod:`deepspark.registry`. ``mlflow models serve``, ``mlflow.pyfunc.spark_udf``
in the score stage and the registry gate all call this one ``predict``, so they cannot disagree;
the evaluate stage takes the torch module itself (:func:`module`, for gradients), whose arg-max
is the same label. The answer, per input row of ``x`` values (float32):

- a classifier: a DataFrame with ``label`` (int64, the class index, i.e. the position in the
  features manifest's ``classes``) and ``probability`` (the softmax over the classes, float64,
  summing to 1; ``label`` is its arg-max). Served as JSON: ``{"predictions": [{"label": 3,
  "probability": [...]}, ...]}``; on Spark: ``struct<label: bigint, probability: array<double>>``.
- a regressor: a float32 array, the forecast in the target's units (the module's ``y_mean`` and
  ``y_std`` buffers undo the standardization it learned on).

The serving process runs this module from the model's own copy of the deepspark package, and
imports only numpy, pandas, torch and mlflow here: the model's requirements name nothing of the
Spark side (no pyspark, petastorm or pyarrow pins).
"""

from __future__ import annotations

import importlib.metadata
from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd

LABEL, PROBABILITY = "label", "probability"
ARTIFACT = "module"  # the artifact key of the torch.save'd nn.Module
METADATA_KEY = "deepspark"  # the MLmodel metadata entry: {"task": ..., "classes": k}
# The code MLflow runs to build the wrapper (models from code: no pickled Python object besides
# the torch module), a file of this package.
ENTRY = "pyfunc_model.py"
# What inference needs: torch runs the module, pandas carries the classifier's answer. PyYAML,
# which deepspark.config needs when the module's class is imported, comes with mlflow.
REQUIREMENTS = ("mlflow", "torch", "numpy", "pandas")


def requirements() -> list[str]:
    """The installed versions of :data:`REQUIREMENTS` as pins, without local version labels.

    ``torch==2.13.0+cpu`` becomes ``torch==2.13.0``: a local label names one wheel index's build,
    so the pin would resolve nowhere else (a CUDA machine, PyPI); ``==2.13.0`` matches any build.
    """
    return [f"{p}=={importlib.metadata.version(p).split('+', 1)[0]}" for p in REQUIREMENTS]


def answer(scores: np.ndarray, classes: int | None) -> pd.DataFrame | np.ndarray:
    """The served answer for a module's raw outputs.

    Args:
        scores: ``(n, classes)`` logits of a classifier, or ``(n,)`` forecasts.
        classes: The number of classes; ``None`` for a regressor.

    Returns:
        ``label`` and ``probability`` columns for a classifier, float32 forecasts otherwise.

    Raises:
        ValueError: ``scores`` do not have the shape ``classes`` implies.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if classes is None:
        if scores.ndim != 1:
            raise ValueError(f"regressor output: expected (rows,), found {scores.shape}")
        return scores.astype(np.float32)
    if scores.ndim != 2 or scores.shape[1] != classes:
        raise ValueError(f"classifier output: expected (rows, {classes}), found {scores.shape}")
    # float64 softmax of the logits: distinct float32 logits stay distinct probabilities, so the
    # arg-max of the probabilities is the arg-max of the logits the test metrics used.
    shifted = np.exp(scores - scores.max(axis=1, keepdims=True))
    prob = shifted / shifted.sum(axis=1, keepdims=True)
    return pd.DataFrame({LABEL: prob.argmax(1).astype(np.int64), PROBABILITY: list(prob)})


def signature(length: int, classes: int | None) -> Any:
    """The logged signature: rows of ``length`` float32 values in, :func:`answer`'s format out.

    Written out rather than inferred from an example: the output schema is the contract the score
    stage's Spark type and every client rely on, so it must not depend on a sample's dtypes.
    """
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, DataType, Schema, TensorSpec
    from mlflow.types.schema import Array

    inputs = Schema([TensorSpec(np.dtype(np.float32), (-1, length))])
    if classes is None:
        return ModelSignature(inputs, Schema([TensorSpec(np.dtype(np.float32), (-1,))]))
    out = [ColSpec(DataType.long, LABEL), ColSpec(Array(DataType.double), PROBABILITY)]
    return ModelSignature(inputs, Schema(out))


def metadata(classes: int | None) -> dict[str, Any]:
    """The MLmodel metadata entry: the task and the class count.

    A signature's arrays have no length, and the score and evaluate stages check the count
    against the features.
    """
    task = "regression" if classes is None else "classification"
    return {METADATA_KEY: {"task": task, "classes": classes}}


def point(output: Any) -> np.ndarray:
    """The point answers in a pyfunc's output: labels of a classifier, forecasts of a regressor.

    Versions logged before this wrapper answered raw class scores ``(rows, classes)``; their
    arg-max is the label, so the registry gate can still re-score such a champion.
    """
    if isinstance(output, pd.DataFrame):
        if LABEL not in output.columns:
            raise ValueError(f"model output: expected a {LABEL!r} column, found {list(output)}")
        return output[LABEL].to_numpy()
    out = np.asarray(output)
    return out.argmax(1) if out.ndim == 2 else out


def model_config(classes: int | None) -> dict[str, Any]:
    """The ``model_config`` the wrapper reads when it loads: the number of classes."""
    return {"classes": classes}


class FeatureModel(mlflow.pyfunc.PythonModel):
    """A :class:`~deepspark.models.net.FeatureNet` behind :func:`answer`.

    Built by :data:`ENTRY` when MLflow loads the model; :meth:`load_context` reads the module
    and the class count (:func:`model_config`).
    """

    def __init__(self) -> None:
        self.classes: int | None = None
        self.net: Any = None

    def load_context(self, context: Any) -> None:
        """Load the ``torch.save``'d module (its class comes from the shipped deepspark)."""
        import torch

        self.classes = context.model_config["classes"]
        # A whole pickled nn.Module (not weights only): its class is deepspark's FeatureNet, and
        # the file is trusted as much as any logged model's code.
        self.net = torch.load(context.artifacts[ARTIFACT], map_location="cpu", weights_only=False)
        self.net.eval()

    def predict(
        self, context: Any, model_input: np.ndarray, params: dict[str, Any] | None = None
    ) -> pd.DataFrame | np.ndarray:
        """Labels and probabilities, or forecasts, for rows of ``x`` values."""
        from deepspark.evaluate.inference import predict

        return answer(predict(self.net, _rows(model_input)), self.classes)


def _rows(model_input: Any) -> np.ndarray:
    """``model_input`` as ``(rows, values)`` float32.

    The signature makes MLflow pass a float32 array; a DataFrame of one ``x`` column is stacked,
    so the wrapper also answers when called without schema enforcement.
    """
    if isinstance(model_input, pd.DataFrame):
        if model_input.shape[1] != 1:
            raise ValueError(
                f"expected one column of x arrays, found columns {list(model_input.columns)}"
            )
        model_input = np.stack(model_input.iloc[:, 0].to_numpy())
    x = np.asarray(model_input, dtype=np.float32)
    if x.ndim != 2:
        raise ValueError(f"expected rows of x values (rows, values), found shape {x.shape}")
    return x


def module(uri: str) -> Any:
    """The logged torch module of the model at ``uri``, on the CPU in eval mode.

    Attributions need the module itself (gradients), not the pyfunc's answers. Versions logged
    before the pyfunc wrapper carry the ``pytorch`` flavor instead; they load through it.
    """
    info = mlflow.models.get_model_info(uri)
    if "pytorch" in info.flavors:
        from mlflow import pytorch

        return pytorch.load_model(uri, map_location="cpu")
    wrapper = mlflow.pyfunc.load_model(uri).unwrap_python_model()
    if not isinstance(wrapper, FeatureModel):
        raise TypeError(f"{uri}: expected a deepspark FeatureModel, found {type(wrapper).__name__}")
    return wrapper.net
