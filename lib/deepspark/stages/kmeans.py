"""The kmeans stage: k-means over one table's numeric columns, k chosen by silhouette.

Reads ``pipeline.kmeans.table``, tries every k in ``[k_min, k_max]`` (see
:mod:`deepspark.etl.kmeans`), and writes the input table with an int ``cluster`` column to
``gold/<output>``: every input row, with a null ``cluster`` where a feature was missing or not
finite. MLflow gets the silhouette of every k (``silhouette_k<k>``), the chosen ``k`` and its
``silhouette`` on every clustered row, the cluster sizes, and under ``cluster/<output>/``:

- ``silhouette.png``: silhouette against k, the chosen k circled;
- ``cluster_sizes.png``: rows per cluster;
- ``centroids.png``: each cluster's mean per feature in the original units, coloured by how many
  standard deviations it sits from the mean over all clustered rows;
- ``centroids.csv`` and ``centroids.json``: the same numbers (the JSON with the whole search).

The chosen model itself is logged too, as a Spark ML model (``mlflow.spark``) under ``kmeans/``
in the run's artifacts (``runs:/<run>/kmeans``; MLflow 3.17's Spark flavor makes no LoggedModel):
one pipeline from the feature columns to the cluster id the table got (``prediction``), with a
signature inferred from an input example of five clustered rows.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import types as T

from deepspark import plots, tracking
from deepspark.config import Config, to_plain
from deepspark.config.pipeline import KMeansConfig
from deepspark.errors import ConfigError, InputError, ReconciliationError
from deepspark.etl import kmeans as clu
from deepspark.etl.profile import col
from deepspark.io import read_table, staged_outputs
from deepspark.layout import Layout
from deepspark.schema import require_columns
from deepspark.stages import StageResult, kmeans_search
from deepspark.tracking import Tracking

STAGE = "kmeans"
ARTIFACTS = "cluster"  # the clusters k-means found, under cluster/<output>/ (docs/GLOSSARY.md)
log = logging.getLogger("deepspark")


def run(cfg: Config, spark: SparkSession, tracker: Tracking | None = None) -> StageResult:
    """Cluster the configured table and write it, labelled, to ``gold/<output>``.

    Raises:
        ConfigError: The pipeline has no ``kmeans`` section.
        InputError: The table is missing or empty, a feature column is missing or not numeric,
            the table already has a ``cluster`` column, or too few rows have every feature.
        ReconciliationError: The written table does not hold exactly the input rows.
    """
    spec = cfg.pipeline.kmeans
    if spec is None:
        raise ConfigError(f"{cfg.where}: no 'pipeline.kmeans'")
    layout = Layout(cfg.paths, cfg.pipeline.name)
    source = layout.qualified(spec.table)
    target = layout.path("gold", spec.output)
    with (
        (tracker or Tracking()).stage_run(cfg, STAGE, to_plain(spec)),
        staged_outputs(spark) as out,
    ):
        df = read_table(spark, source)
        _check_input(df, spec, source)
        result = kmeans_search.cluster_table(df, spec, where=source)
        try:
            rows_out = out.write_counted(result.table, target)
        finally:
            result.unpersist()
        if rows_out != result.rows_in:
            raise ReconciliationError(
                f"{target}: rows_in={result.rows_in} != rows_out={rows_out} "
                f"(difference {result.rows_in - rows_out})"
            )
        metrics = _metrics(result, rows_out)
        with tempfile.TemporaryDirectory(prefix="deepspark-cluster-") as tmp:
            _write_report(result, spec, Path(tmp))
            tracking.log_artifacts(tmp, f"{ARTIFACTS}/{spec.output}")
        out.commit()
        tracking.log_metrics(metrics)
        if tracking.active():
            _log_model(spark, df, result, spec)
    log.info(
        "kmeans %s: k=%d (silhouette %.3f; by k: %s), %d rows clustered, %d excluded -> %s",
        spec.table,
        result.k,
        result.silhouette,
        ", ".join(f"{k}: {s:.3f}" for k, s in sorted(result.scores.items())),
        result.rows_clustered,
        result.rows_excluded,
        target,
    )
    return StageResult(STAGE, metrics, {spec.output: target})


def _log_model(
    spark: SparkSession, df: DataFrame, result: kmeans_search.Clustering, spec: KMeansConfig
) -> None:
    """Log the chosen model to the active run, with an input example and the signature it gives.

    The signature is inferred from what the model answers on the example, not left to MLflow,
    whose own inference only warns when it fails: a model without one would pass unnoticed.
    """
    import warnings

    import mlflow
    from mlflow.models import infer_signature

    features = df.select(*(col(f) for f in spec.features))
    # Collected once, then turned back into Spark rows of the same types: two limit() jobs need
    # not return the same rows.
    example = features.where(clu.complete(spec.features)).limit(5).toPandas()
    rows = spark.createDataFrame(example, features.schema)
    answers = result.model.transform(rows).select(clu.LABEL).toPandas()
    with warnings.catch_warnings():
        # Integer columns "cannot represent missing values": the model's input is complete rows.
        warnings.simplefilter("ignore", UserWarning)
        signature = infer_signature(example, answers)
    mlflow.spark.log_model(
        result.model,
        artifact_path="kmeans",
        signature=signature,
        input_example=example,
        # Otherwise MLflow infers them by loading the model in a new Python process (a new JVM).
        pip_requirements=mlflow.spark.get_default_pip_requirements(),
        metadata={
            "k": result.k,
            "silhouette": result.silhouette,
            "features": list(spec.features),
            "standardize": spec.standardize,
        },
    )


def _check_input(df: DataFrame, spec: KMeansConfig, source: str) -> None:
    where = f"{source} ({STAGE})"
    require_columns(df.columns, spec.features, where)
    types = {f.name: f.dataType for f in df.schema.fields}
    # BooleanType is not a NumericType: a flag is not a distance.
    wrong = [
        f"{c} ({types[c].simpleString()})"
        for c in spec.features
        if not isinstance(types[c], T.NumericType)
    ]
    if wrong:
        raise InputError(f"{where}: features must be numeric; not numeric: {', '.join(wrong)}")
    if clu.CLUSTER in df.columns:
        raise InputError(f"{where}: already has a column named {clu.CLUSTER!r}")


def _metrics(result: kmeans_search.Clustering, rows_out: int) -> dict[str, float]:
    metrics: dict[str, float] = {
        "rows_in": result.rows_in,
        "rows_out": rows_out,
        "rows_clustered": result.rows_clustered,
        "rows_excluded": result.rows_excluded,
        "rows_searched": result.rows_searched,
        "k": result.k,
        "silhouette": result.silhouette,
    }
    metrics.update({f"silhouette_k{k}": s for k, s in sorted(result.scores.items())})
    metrics.update({f"cluster_size_{c}": n for c, n in result.sizes.items()})
    return metrics


def _write_report(result: kmeans_search.Clustering, spec: KMeansConfig, out: Path) -> None:
    """Every file of ``cluster/<output>/`` (the module docstring lists them) under ``out``."""
    _write_plots(result, spec, out)
    _write_centroids(result, spec, out)


def _write_plots(result: kmeans_search.Clustering, spec: KMeansConfig, out: Path) -> None:
    """silhouette.png, cluster_sizes.png and centroids.png under ``out``."""
    features = list(spec.features)
    clusters = sorted(result.sizes)
    searched = (
        f"{result.rows_searched:,} sampled rows"
        if result.rows_searched < result.rows_clustered
        else f"{result.rows_clustered:,} rows"
    )
    plots.silhouette_curve(
        result.scores,
        result.k,
        out / "silhouette.png",
        f"{spec.table}: k-means silhouette by k\n({searched}, features "
        f"{'standardized' if spec.standardize else 'as they are'})",
    )
    plots.bar_chart(
        {str(c): result.sizes[c] for c in clusters},
        out / "cluster_sizes.png",
        f"{spec.table}: rows per cluster (k = {result.k})\n"
        f"not clustered: {result.rows_excluded:,} rows with a missing feature",
        "cluster",
        "rows",
    )
    values = pd.DataFrame(
        [[result.centroids[c][f] for f in features] for c in clusters],
        index=[f"{c} ({result.sizes[c]:,} rows)" for c in clusters],
        columns=features,
    )
    shade = pd.DataFrame(
        [
            [_z(result.centroids[c][f], result.means[f], result.stddevs[f]) for f in features]
            for c in clusters
        ],
        index=values.index,
        columns=features,
    )
    plots.centroid_heatmap(
        values,
        shade,
        out / "centroids.png",
        f"{spec.table}: cluster means (original units)\n"
        "colour: standard deviations from the mean over all clustered rows",
        "SDs from the overall mean",
    )


def _write_centroids(result: kmeans_search.Clustering, spec: KMeansConfig, out: Path) -> None:
    """centroids.csv and centroids.json (the JSON with the whole search) under ``out``."""
    features = list(spec.features)
    clusters = sorted(result.sizes)
    with open(out / "centroids.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["cluster", "size", *features])
        writer.writerows(
            [c, result.sizes[c], *(result.centroids[c][f] for f in features)] for c in clusters
        )
    doc = {
        "table": spec.table,
        "output": f"gold/{spec.output}",
        "features": features,
        "standardize": spec.standardize,
        "seed": spec.seed,
        "k": result.k,
        "silhouette": result.silhouette,
        "silhouette_by_k": {str(k): s for k, s in sorted(result.scores.items())},
        "rows_in": result.rows_in,
        "rows_clustered": result.rows_clustered,
        "rows_excluded": result.rows_excluded,
        "rows_searched": result.rows_searched,
        "overall": {f: {"mean": result.means[f], "stddev": result.stddevs[f]} for f in features},
        "clusters": [
            {"cluster": c, "size": result.sizes[c], "mean": result.centroids[c]} for c in clusters
        ],
    }
    with open(out / "centroids.json", "w", encoding="utf-8") as fh:
        json.dump(_finite(doc), fh, indent=2, allow_nan=False)
        fh.write("\n")


def _z(value: float, mean: float, std: float | None) -> float:
    # One row, or a constant feature, has no spread to measure against: no colour (NaN).
    if std is None or not std > 0:
        return math.nan
    return (value - mean) / std


def _finite(obj: Any) -> Any:
    # JSON has no NaN or Infinity: a non-finite number is written as null.
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finite(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj
