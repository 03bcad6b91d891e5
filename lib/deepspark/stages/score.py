"""Score: a registered model over a Parquet table on Spark -> predictions, staged, reconciled.

The model is loaded by ``mlflow.pyfunc.spark_udf`` (an Arrow-based UDF that loads it once per
Python worker); there is no native Spark expression for a neural network, so this is the one
place an Arrow UDF is unavoidable. It runs the model's own pyfunc (:mod:`deepspark.serving`), so
Spark writes exactly what ``mlflow models serve`` answers. Rows the model cannot take go to the
quarantine with a reason.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
from collections.abc import Iterator

from pyspark.sql import DataFrame, Observation, SparkSession
from pyspark.sql import functions as F

from deepspark import manifest, registry, tracking
from deepspark.checks import skew
from deepspark.config import Config, to_plain
from deepspark.config.score import ScoreConfig
from deepspark.errors import InputError
from deepspark.etl import score as sc
from deepspark.etl.quality import clean_rows, mark_violations, quarantined_rows
from deepspark.etl.table_stats import percentiles_json, skew_columns
from deepspark.io import read_table, staged_outputs
from deepspark.layout import MANIFEST, Layout
from deepspark.schema import require_columns
from deepspark.stages import StageResult
from deepspark.stages.accounting import log_input, reconcile
from deepspark.stages.checks import judge
from deepspark.tracking import Tracking

STAGE = "score"
log = logging.getLogger("deepspark")


def run(cfg: Config, spark: SparkSession, tracker: Tracking | None = None) -> StageResult:
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
            f"class scores); retrain it to score it (./spark-submit.sh jobs/train.py -c "
            f"{cfg.files[-1] if cfg.files else 'conf/<pipeline>.yaml'})"
        )
    layout = Layout(cfg.paths, cfg.pipeline.name)
    source = layout.qualified(scfg.input)
    table = scfg.input.split("/", 1)[1]
    target = layout.path("predictions", scfg.output)
    params = {**to_plain(scfg), "model_uri": uri, "registered_model": name}
    with (tracker or Tracking()).stage_run(cfg, STAGE, params), staged_outputs(spark) as out:
        df = read_table(spark, source)
        require_columns(df.columns, [sc.X], f"{source} (score)")
        marked = mark_violations(df, [sc.scoreable_rule(length)])
        n_bad = out.write_counted(
            quarantined_rows(marked, source=table, stage=STAGE), layout.quarantine(STAGE, table)
        )
        # env_manager="local" on purpose: executors run this venv (or its packed copy), which
        # the model's pinned requirements came from; MLflow warns about it on every call.
        with _without_env_manager_warning():
            udf = mlflow.pyfunc.spark_udf(
                spark, uri, result_type=sc.result_type(classes), env_manager="local"
            )
        skew = Skew(cfg, layout, scfg.input)
        scored = skew.watch(clean_rows(marked)).withColumn(sc.RAW, udf(F.col(sc.X)))
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
        warnings = skew.check()  # before the commit: a failed check keeps the last predictions
        metrics.update({f"skew.{k}": round(v, 4) for k, v in skew.distances.items()})
        out.commit()
        tracking.log_metrics(metrics)
    log.debug("scored %s with %s v%d -> %s", source, name, version, target)
    return StageResult(STAGE, metrics, {"predictions": target, "model_uri": uri}, tuple(warnings))


class Skew:
    """Train/serve skew: the scored inputs' percentiles against the training split's.

    Observed on the scoring write itself (no extra pass); the training side is in the feature
    manifest. Inputs that are not the pipeline's features (no manifest, or one written before
    it kept distributions) are scored without the check, and the log says so.
    """

    def __init__(self, cfg: Config, layout: Layout, table: str) -> None:
        self.cfg, self.layout, self.table = cfg.pipeline.checks, layout, table
        self.observation: Observation | None = None
        self.train: dict[str, tuple[float, ...]] = {}
        self.distances: dict[str, float] = {}  # KS per input, once checked
        path = layout.path("features", MANIFEST)
        if not table.startswith("features/") or not self.cfg.enabled:
            return
        try:
            self.info = manifest.read(path)
        except InputError:
            log.info("score: no feature manifest at %s; train/serve skew not checked", path)
            return
        self.train = dict(self.info.distributions)
        if not self.train:
            log.info("score: %s has no training distributions (rebuild the features to get "
                     "them); train/serve skew not checked", path)  # fmt: skip

    def watch(self, df: DataFrame) -> DataFrame:
        """``df`` (the rows about to be scored) with its input percentiles observed."""
        if not self.train:
            return df
        columns = skew_columns(
            list(self.train), steps=self.info.inputs, window=self.info.window,
            image=self.info.kind == "image",
        )  # fmt: skip
        self.observation = Observation()
        return df.observe(self.observation, percentiles_json(columns).alias("p"))

    def check(self) -> list[str]:
        """After the write: report each input's drift from training; the warnings."""
        if self.observation is None:
            return []
        serving = {k: v for k, v in json.loads(self.observation.get["p"]).items() if v}
        found, distances = skew(
            self.train, serving, self.table, self.cfg.skew.drift, self.cfg.skew.severity
        )
        self.distances = distances
        chart = [
            {"label": k, "nulls": math.nan, "nulls_before": math.nan, "drift": d}
            for k, d in distances.items()
        ]
        return judge(self.layout, STAGE, found, chart, self.cfg.skew.drift)


@contextlib.contextmanager
def _without_env_manager_warning() -> Iterator[None]:
    """Drop MLflow's ``env_manager="local"`` warning (only that one) while the UDF is built."""
    pyfunc_log = logging.getLogger("mlflow.pyfunc")

    def keep(record: logging.LogRecord) -> bool:
        return "env_manager" not in record.getMessage()

    pyfunc_log.addFilter(keep)
    try:
        yield
    finally:
        pyfunc_log.removeFilter(keep)
