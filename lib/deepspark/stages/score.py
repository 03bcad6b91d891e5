"""Score: a registered model over a Parquet table on Spark -> predictions, staged, reconciled.

The model is loaded by ``mlflow.pyfunc.spark_udf`` (an Arrow-based UDF that loads it once per
Python worker); there is no native Spark expression for a neural network, so this is the one
place an Arrow UDF is unavoidable. It runs the model's own pyfunc (:mod:`deepspark.serving`), so
Spark writes exactly what ``mlflow models serve`` answers. Rows the model cannot take go to the
quarantine with a reason.
"""

from __future__ import annotations

import logging

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from deepspark import registry, tracking
from deepspark.config import Config, to_plain
from deepspark.config.score import ScoreConfig
from deepspark.errors import InputError
from deepspark.etl import score as sc
from deepspark.etl.quality import clean_rows, mark_violations, quarantined_rows
from deepspark.io import Layout, read_parquet, staged_outputs
from deepspark.schema import require_columns
from deepspark.stages import StageResult
from deepspark.stages.accounting import log_input, reconcile

STAGE = "score"
log = logging.getLogger("deepspark")


def run(cfg: Config, spark: SparkSession) -> StageResult:
    """Score ``pipeline.score.input`` with the registered model ``pipeline.score.model``."""
    scfg = cfg.pipeline.score or ScoreConfig()
    mlflow, name, uri, version = registry.registered_model(cfg, scfg.model, "scoring")
    info = mlflow.models.get_model_info(uri)
    io = registry.model_io(info)
    if io is None:
        raise InputError(f"{uri}: the model has no signature; it cannot be scored on Spark")
    length, classes = io.length, io.classes is not None
    if classes and io.legacy:
        raise InputError(
            f"{uri} was logged before deepspark served labels and probabilities (it answers raw "
            f"class scores); retrain it to score it (./spark-submit.sh jobs/train.py --conf "
            f"{cfg.files[-1] if cfg.files else 'conf/<pipeline>.yaml'})"
        )
    layout = Layout(cfg.paths, cfg.pipeline.name)
    source = layout.qualified(scfg.input)
    table = scfg.input.split("/", 1)[1]
    target = layout.path("predictions", scfg.output)
    params = {**to_plain(scfg), "model_uri": uri, "registered_model": name}
    with tracking.stage_run(cfg, STAGE, params), staged_outputs(spark) as out:
        df = read_parquet(spark, source)
        require_columns(df.columns, [sc.X], f"{source} (score)")
        marked = mark_violations(df, [sc.scoreable_rule(length)])
        n_bad = out.write_counted(
            quarantined_rows(marked, source=table, stage=STAGE), layout.quarantine(STAGE, table)
        )
        udf = mlflow.pyfunc.spark_udf(
            spark, uri, result_type=sc.result_type(classes), env_manager="local"
        )
        scored = clean_rows(marked).withColumn(sc.RAW, udf(F.col(sc.X)))
        n_out = out.write_counted(
            sc.predictions(scored, classes=classes, name=name, version=version), target
        )
        metrics = {
            "rows_in": float(df.count()),
            "rows_out": float(n_out),
            "rows_quarantined": float(n_bad),
            "model_version": float(version),
        }
        log_input(spark, f"{cfg.pipeline.name}/{scfg.input}", source, df, int(metrics["rows_in"]))
        reconcile(f"{scfg.input} (score)", *(int(metrics[k]) for k in
                  ("rows_in", "rows_out", "rows_quarantined")))  # fmt: skip
        out.commit()
        tracking.log_metrics(metrics)
    log.info("scored %s with %s v%d -> %s", source, name, version, target)
    return StageResult(STAGE, metrics, {"predictions": target, "model_uri": uri})
