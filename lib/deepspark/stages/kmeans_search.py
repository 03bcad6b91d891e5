"""K-means over a table's numeric columns, k chosen by silhouette: Spark MLlib only, no UDFs.

The jobs of the cluster stage (fits, scores, counts and the cache they share); the pure parts
are in :mod:`deepspark.etl.kmeans`. Rows k-means cannot place (a null, NaN or infinite value in
any feature) are never dropped: they stay in the output with a null ``cluster`` and are counted
as ``rows_excluded``. With ``standardize`` every feature is z-scored over the clustered rows
first, so a column in hPa does not outweigh one in inches. Centroids are reported in the
original units: the mean of each feature over the rows assigned to the cluster.

The silhouette is MLlib's :class:`~pyspark.ml.evaluation.ClusteringEvaluator` with its default
squared Euclidean distance (the distance k-means minimizes); it runs in O(rows x k), not over
every pair of rows, so it is affordable on the whole table. Its values are comparable across k,
not with scikit-learn's Euclidean silhouette.

The search logs one line per k as it is scored (a search over a large table takes minutes), and
the outcome includes the chosen model as one Spark ML pipeline, from the feature columns to the
cluster id (:attr:`Clustering.model`), for the stage to log to MLflow.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.clustering import KMeans, KMeansModel
from pyspark.ml.evaluation import ClusteringEvaluator
from pyspark.ml.feature import StandardScaler
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from deepspark.config.pipeline import KMeansConfig
from deepspark.errors import InputError
from deepspark.etl.kmeans import (
    CLUSTER,
    MAX_ITER,
    PREDICTION,
    RAW,
    VECTOR,
    assembler,
    best_k,
    by_size,
    centroid_means,
    complete,
    feature_stats,
    labeller,
    relabel,
)  # fmt: skip
from deepspark.etl.profile import col

log = logging.getLogger("deepspark")


def count_complete(df: DataFrame, features: Sequence[str]) -> tuple[int, int]:
    """``(rows, rows with every feature a finite number)`` of ``df``, in one pass."""
    row = df.agg(F.count(F.lit(1)), F.count_if(complete(features))).first()
    return int(row[0]), int(row[1])


def vectorizer(rows: DataFrame, features: Sequence[str], standardize: bool) -> PipelineModel:
    """The stages from the features to ``VECTOR``; with ``standardize``, z-scored over ``rows``.

    ``rows`` must be complete (see :func:`complete`). A constant feature scales to 0.
    """
    if not standardize:
        return PipelineModel([assembler(features, VECTOR)])
    scaler = StandardScaler(inputCol=RAW, outputCol=VECTOR, withMean=True, withStd=True)
    return Pipeline(stages=[assembler(features, RAW), scaler]).fit(rows)


def vectorize(rows: DataFrame, features: Sequence[str], standardize: bool) -> DataFrame:
    """``rows`` plus ``VECTOR``: the features as one vector, z-scored over ``rows`` if asked.

    ``rows`` must be complete (see :func:`complete`). A constant feature scales to 0.
    """
    return vectorizer(rows, features, standardize).transform(rows).drop(RAW)


def fit_kmeans(vectors: DataFrame, k: int, seed: int) -> KMeansModel:
    """K-means (k-means|| initialization) on ``VECTOR``; predictions go to ``PREDICTION``."""
    kmeans = KMeans(k=k, seed=seed, maxIter=MAX_ITER, featuresCol=VECTOR, predictionCol=PREDICTION)
    return kmeans.fit(vectors)


def silhouette(model: KMeansModel, vectors: DataFrame) -> float:
    """Mean silhouette of ``model``'s assignment of ``vectors`` (in [-1, 1], higher is better)."""
    evaluator = ClusteringEvaluator(
        featuresCol=VECTOR, predictionCol=PREDICTION, metricName="silhouette"
    )
    return float(evaluator.evaluate(model.transform(vectors)))


def silhouette_by_k(
    vectors: DataFrame, ks: Iterable[int], seed: int
) -> tuple[dict[int, float], dict[int, KMeansModel]]:
    """Fit every k and score it; a k with fewer distinct rows than k is left out of both maps.

    One INFO line per k, as it is scored: k, its silhouette and the seconds it took.
    """
    scores: dict[int, float] = {}
    models: dict[int, KMeansModel] = {}
    for k in ks:
        started = time.perf_counter()
        model = fit_kmeans(vectors, k, seed)
        # MLlib returns fewer centres than k when there are fewer distinct points: that is a
        # smaller k already scored, not a candidate of its own.
        found = len(model.clusterCenters())
        if found < k:
            log.info("k-means k=%d: skipped, only %d distinct centres (%.1fs)", k, found,
                     time.perf_counter() - started)  # fmt: skip
            continue
        scores[k] = silhouette(model, vectors)
        models[k] = model
        log.info("k-means k=%d: silhouette %.4f (%.1fs)", k, scores[k],
                 time.perf_counter() - started)  # fmt: skip
    return scores, models


def assign(model: KMeansModel, vectors: DataFrame) -> tuple[DataFrame, list[int], dict[int, int]]:
    """``vectors`` with an int ``cluster`` (ids by size, largest first) and the cluster sizes.

    Returns:
        The rows with ``cluster`` added and the working columns dropped; MLlib's index of each
        cluster id (see :func:`by_size`); and ``{cluster: rows}``.
    """
    predicted = model.transform(vectors)
    counts = {r[0]: r[1] for r in predicted.groupBy(PREDICTION).count().collect()}
    order = by_size(counts)
    return relabel(predicted, order), order, {i: counts[c] for i, c in enumerate(order)}


@dataclass
class Clustering:
    """The outcome of :func:`cluster_table`; ``table`` reads cached data until :meth:`unpersist`.

    ``model`` is the chosen k-means as one fitted pipeline: the feature columns (complete rows)
    in, the cluster id the table got in ``prediction`` out (MLlib's working columns beside it).
    """

    table: DataFrame
    model: PipelineModel
    k: int
    silhouette: float
    scores: dict[int, float]
    sizes: dict[int, int]
    centroids: dict[int, dict[str, float]]
    means: dict[str, float]
    stddevs: dict[str, float | None]
    rows_in: int
    rows_clustered: int
    rows_searched: int
    cached: list[DataFrame] = field(default_factory=list, repr=False)

    @property
    def rows_excluded(self) -> int:
        """Rows with a missing or non-finite feature: in ``table`` with a null ``cluster``."""
        return self.rows_in - self.rows_clustered

    def unpersist(self) -> None:
        """Free the cached data (the session outlives the stage)."""
        for frame in self.cached:
            frame.unpersist()


def cluster_table(df: DataFrame, spec: KMeansConfig, where: str | None = None) -> Clustering:
    """Choose k by silhouette, fit it on every complete row, and label every row of ``df``.

    Args:
        df: The table; ``spec.features`` must be numeric columns, ``cluster`` must not exist.
        spec: Features, k range, seed, search sample and scaling.
        where: What to call the table in errors (default ``spec.table``).

    Returns:
        ``df``'s rows with ``cluster`` (null on excluded rows) and what was chosen and measured.
        Call ``unpersist()`` once ``table`` has been written.

    Raises:
        InputError: Too few complete rows to fit ``k_max`` clusters.
    """
    features = list(spec.features)
    ok = complete(features)
    rows_in, rows_complete = count_complete(df, features)
    if rows_complete <= spec.k_max:
        raise InputError(
            f"{where or spec.table}: {rows_complete} of {rows_in} rows have every feature "
            f"({', '.join(features)}) present and finite; trying k up to k_max={spec.k_max} "
            f"needs more than {spec.k_max}"
        )
    prep = vectorizer(df.where(ok), features, spec.standardize)
    vectors = prep.transform(df.where(ok)).drop(RAW).persist()
    cached = [vectors]
    try:
        search, rows_searched = _search_rows(vectors, spec, rows_complete, cached)
        log.debug("k-means: trying k=%d..%d on %d of %d complete rows", spec.k_min, spec.k_max,
                 rows_searched, rows_complete)  # fmt: skip
        k, model, score, scores = _choose_k(vectors, search, spec, where or spec.table)
        assigned, order, sizes = assign(model, vectors)
        profiles = centroid_means(assigned, features).collect()
        stats = feature_stats(vectors, features).first()
    except BaseException:
        for frame in cached:
            frame.unpersist()
        raise
    excluded = df.where(~ok).withColumn(CLUSTER, F.lit(None).cast("int"))
    return Clustering(
        table=assigned.select(*map(col, df.columns), CLUSTER).unionByName(excluded),
        model=PipelineModel([*prep.stages, model, labeller(order)]),
        k=k,
        silhouette=score,
        scores=scores,
        sizes=sizes,
        centroids={r[CLUSTER]: {f: r[f] for f in features} for r in profiles},
        means={f: stats[f"{f}__mean"] for f in features},
        stddevs={f: stats[f"{f}__std"] for f in features},
        rows_in=rows_in,
        rows_clustered=rows_complete,
        rows_searched=rows_searched,
        cached=cached,
    )


def _search_rows(
    vectors: DataFrame, spec: KMeansConfig, rows_complete: int, cached: list[DataFrame]
) -> tuple[DataFrame, int]:
    """The rows the k search runs on, and how many: every complete row, or a seeded sample.

    A sample is cached and added to ``cached``, so the caller unpersists it with the rest.
    """
    if spec.sample_rows is None or rows_complete <= spec.sample_rows:
        return vectors, rows_complete
    # Bernoulli without a limit(): the same files and seed give the same sample.
    fraction = spec.sample_rows / rows_complete
    search = vectors.sample(fraction=fraction, seed=spec.seed).persist()
    cached.append(search)
    return search, search.count()


def _choose_k(
    vectors: DataFrame, search: DataFrame, spec: KMeansConfig, where: str
) -> tuple[int, KMeansModel, float, dict[int, float]]:
    """The k with the best silhouette on ``search``, fitted and scored on every complete row.

    Returns:
        k, its model, its silhouette on ``vectors``, and the silhouette of every k scored.

    Raises:
        InputError: No k in the range could be fitted (too few distinct feature vectors).
    """
    scores, models = silhouette_by_k(search, range(spec.k_min, spec.k_max + 1), spec.seed)
    if not scores:
        raise InputError(
            f"{where}: the complete rows hold fewer than k_min={spec.k_min} "
            "distinct feature vectors; there is nothing to cluster"
        )
    k = best_k(scores)
    if search is vectors:
        return k, models[k], scores[k], scores
    # The search ran on a sample: the chosen k is fitted and scored on every row.
    model = fit_kmeans(vectors, k, spec.seed)
    return k, model, silhouette(model, vectors), scores
