"""Scoring transforms: which rows a model can take, and its answer -> prediction columns."""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from deepspark.etl.quality import Rule

X = "x"
RAW = "_model_output"
# The fields of a classifier's answer (deepspark.serving.LABEL / PROBABILITY; this floor cannot
# import that module, tests/test_served_model.py checks they agree).
LABEL, PROBABILITY = "label", "probability"


def result_type(classes: bool) -> T.DataType:
    """The Spark type of the logged model's answer, for ``mlflow.pyfunc.spark_udf``.

    A classifier answers ``struct<label, probability>``, a regressor one float forecast.
    """
    if classes:
        return T.StructType(
            [
                T.StructField(LABEL, T.LongType()),
                T.StructField(PROBABILITY, T.ArrayType(T.DoubleType())),
            ]
        )
    return T.FloatType()


def scoreable_rule(length: int) -> Rule:
    """``x`` must hold exactly ``length`` finite values: the model's input signature."""
    x = F.col(X)
    bad_value = F.exists(x, lambda v: v.isNull() | F.isnan(v))
    reason = (
        F.when(x.isNull(), F.lit("x is null"))
        .when(
            F.size(x) != length,
            F.concat(
                F.lit("x has "),
                F.size(x).cast("string"),
                F.lit(f" values, the model takes {length}"),
            ),
        )  # fmt: skip
        .otherwise(F.lit("x has a null or NaN value"))
    )
    return Rule("scoreable", x.isNull() | (F.size(x) != length) | bad_value, reason)


def predictions(scored: DataFrame, *, classes: bool, name: str, version: int) -> DataFrame:
    """Replace ``x`` and the model's answer with the prediction columns.

    A classifier's answer (:func:`result_type`) becomes ``prediction`` (the label), ``confidence``
    (its probability, the largest) and ``probability`` (per class); a regressor's is
    ``prediction``. Both get ``model_name`` and ``model_version``.
    """
    raw = F.col(RAW)
    if classes:
        prob = raw.getField(PROBABILITY)
        columns: dict[str, Column] = {
            "prediction": raw.getField(LABEL).cast("int"),
            "confidence": F.array_max(prob).cast("float"),
            "probability": prob.cast(T.ArrayType(T.FloatType())),
        }
    else:
        columns = {"prediction": raw.cast("float")}
    columns.update(model_name=F.lit(name), model_version=F.lit(version).cast("int"))
    return scored.withColumns(columns).drop(X, RAW)
