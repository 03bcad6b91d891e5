"""Scoring transforms: which rows a model can take, and its raw output -> prediction columns."""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from deepspark.etl.quality import Rule

X = "x"
RAW = "_model_output"


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
    """Replace ``x`` and the raw output with ``prediction`` (+ ``confidence`` for classes).

    For a classifier the raw output is the logits: the prediction is the arg-max class and the
    confidence its softmax probability, ``1 / sum(exp(logit - max))``, all native expressions.
    """
    raw = F.col(RAW)
    if classes:
        top = F.array_max(raw)
        columns: dict[str, Column] = {
            "prediction": (F.array_position(raw, top) - 1).cast("int"),
            "confidence": (
                F.lit(1.0) / F.aggregate(raw, F.lit(0.0), lambda acc, v: acc + F.exp(v - top))
            ).cast("float"),
        }
    else:
        columns = {"prediction": raw.cast("float")}
    columns.update(model_name=F.lit(name), model_version=F.lit(version).cast("int"))
    return scored.withColumns(columns).drop(X, RAW)
