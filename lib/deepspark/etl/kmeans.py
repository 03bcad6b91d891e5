"""K-means's pure parts: which rows can be clustered, the vectors, the relabelling, the profiles.

The fitting, scoring and counting (Spark jobs) are in :mod:`deepspark.stages.kmeans_search`.

Rows k-means cannot place (a null, NaN or infinite value in any feature) are never dropped: they
stay in the output with a null ``cluster`` and are counted as ``rows_excluded``. With
``standardize`` every feature is z-scored over the clustered rows first, so a column in hPa does
not outweigh one in inches. Centroids are reported in the original units: the mean of each
feature over the rows assigned to the cluster.

The silhouette is MLlib's :class:`~pyspark.ml.evaluation.ClusteringEvaluator` with its default
squared Euclidean distance (the distance k-means minimizes); it runs in O(rows x k), not over
every pair of rows, so it is affordable on the whole table. Its values are comparable across k,
not with scikit-learn's Euclidean silhouette.

Cluster ids are ordered by size, largest first (ties by MLlib's index): MLlib's own indices
depend on the initialization, sizes do not, so ``cluster 0`` is always the dominant group. The
same relabelling is a pipeline stage too (:func:`labeller`), so the model logged to MLflow gives
the ids the table has.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping, Sequence
from functools import reduce
from itertools import chain

from pyspark.ml.feature import SQLTransformer, VectorAssembler
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from deepspark.etl.profile import col

CLUSTER = "cluster"
# Working columns, dropped before anything is returned; unlikely to clash with a real column.
RAW = "__cluster_raw"
VECTOR = "__cluster_vector"
PREDICTION = "__cluster_prediction"
# The logged model's output column: the one MLflow's Spark pyfunc flavor returns.
LABEL = "prediction"
# MLlib's default: ample for a few features; a fit that has not converged by then is still a
# valid partition, and its silhouette says how good it is.
MAX_ITER = 20


def complete(features: Sequence[str]) -> Column:
    """True where every feature is a finite number; never null (so its negation is exact)."""
    # null & x is false, not null, for any x; NaN < inf is false in Spark: NaN sorts above all.
    checks = [
        col(f).isNotNull() & (F.abs(col(f).cast("double")) < F.lit(float("inf"))) for f in features
    ]
    return reduce(operator.and_, checks)


def assembler(features: Sequence[str], output: str) -> VectorAssembler:
    """The stage that puts the features into one vector column, ``output``."""
    return VectorAssembler(inputCols=list(features), outputCol=output)


def by_size(counts: Mapping[int, int]) -> list[int]:
    """MLlib's cluster indices, largest cluster first (ties: index); a position is a cluster id."""
    return sorted(counts, key=lambda c: (-counts[c], c))


def relabel(predicted: DataFrame, order: Sequence[int]) -> DataFrame:
    """MLlib's predictions -> an int ``cluster``: the position of its index in ``order``.

    The working columns are dropped.
    """
    mapping = F.create_map(*chain.from_iterable((F.lit(c), F.lit(i)) for i, c in enumerate(order)))
    assigned = predicted.withColumn(CLUSTER, mapping[F.col(PREDICTION)].cast("int"))
    return assigned.drop(PREDICTION, VECTOR)


def labeller(order: Sequence[int]) -> SQLTransformer:
    """:func:`relabel` as a pipeline stage: MLlib's prediction -> the cluster id in ``LABEL``.

    The working columns stay (``SELECT *``): the caller's own columns, an id say, must pass
    through, and Spark SQL has no "every column but these".
    """
    cases = " ".join(f"WHEN {c} THEN {i}" for i, c in enumerate(order))
    return SQLTransformer(
        statement=f"SELECT *, CAST(CASE `{PREDICTION}` {cases} END AS INT) AS `{LABEL}` "
        "FROM __THIS__"
    )


def best_k(scores: Mapping[int, float]) -> int:
    """The k with the highest silhouette; on a tie the smaller k, the simpler model."""
    if not scores:
        raise ValueError("no k to choose from")
    return max(scores, key=lambda k: (scores[k], -k))


def centroid_means(assigned: DataFrame, features: Sequence[str]) -> DataFrame:
    """Per cluster, the mean of every feature in its original units, sorted by cluster.

    Returns:
        ``(cluster, <feature> double, ...)``; rows with a null ``cluster`` are not counted.
    """
    means = (F.avg(col(f).cast("double")).alias(f) for f in features)
    return assigned.where(F.col(CLUSTER).isNotNull()).groupBy(CLUSTER).agg(*means).orderBy(CLUSTER)


def feature_stats(rows: DataFrame, features: Sequence[str]) -> DataFrame:
    """One row: ``<feature>__mean`` and ``<feature>__std`` (sample) over ``rows``."""
    aggs = []
    for f in features:
        x = col(f).cast("double")
        aggs += [F.avg(x).alias(f"{f}__mean"), F.stddev_samp(x).alias(f"{f}__std")]
    return rows.agg(*aggs)
