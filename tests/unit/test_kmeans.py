"""K-means with k chosen by silhouette: blobs with a known k, exact centroids, counted nulls."""

from __future__ import annotations

import logging
import math
import re

import pytest
from pyspark.ml.functions import vector_to_array
from pyspark.sql import types as T
from pyspark.testing import assertDataFrameEqual

from deepspark.config.pipeline import LAYERS, KMeansConfig
from deepspark.errors import InputError
from deepspark.etl import kmeans as clu
from deepspark.stages import kmeans_search as kmeans

SCHEMA = T.StructType(
    [
        T.StructField("id", T.IntegerType()),
        T.StructField("x", T.DoubleType()),
        T.StructField("y", T.DoubleType()),
    ]
)
# Three tight blobs far apart, of 12, 8 and 5 rows: cluster ids must come out by size.
CENTRES = [(0.0, 0.0), (100.0, 0.0), (0.0, 50.0)]
SIZES = [12, 8, 5]


def _blobs() -> list[tuple[int, float, float]]:
    rows, i = [], 0
    for (cx, cy), n in zip(CENTRES, SIZES, strict=True):
        for j in range(n):
            # A fixed spread of at most 0.5 around the centre, different on x and y.
            rows.append((i, cx + ((j * 7) % 5 - 2) * 0.25, cy + ((j * 3) % 5 - 2) * 0.2))
            i += 1
    return rows


BLOBS = _blobs()
# Rows k-means cannot place: a null, a NaN and an infinity. They must come back, unclustered.
BAD = [(100, None, 1.0), (101, 2.0, math.nan), (102, math.inf, 0.0)]
SPEC = KMeansConfig(table="gold/points", features=("x", "y"), output="points_clusters", k_max=4)


@pytest.fixture(scope="module")
def clustered(spark):
    df = spark.createDataFrame(BLOBS + BAD, SCHEMA)
    result = kmeans.cluster_table(df, SPEC)
    yield result
    result.unpersist()


def test_chosen_k_is_the_number_of_blobs(clustered):
    assert clustered.k == 3
    assert sorted(clustered.scores) == [2, 3, 4]
    assert clustered.scores[3] == max(clustered.scores.values()) > 0.95
    assert clustered.silhouette == clustered.scores[3]
    assert clustered.sizes == {0: 12, 1: 8, 2: 5}


def test_centroids_are_means_in_original_units(clustered):
    for c, (n, start) in enumerate([(12, 0), (8, 12), (5, 20)]):
        rows = BLOBS[start : start + n]
        expected = {"x": sum(r[1] for r in rows) / n, "y": sum(r[2] for r in rows) / n}
        assert clustered.centroids[c] == pytest.approx(expected, abs=1e-9)
    xs = [r[1] for r in BLOBS]
    assert clustered.means["x"] == pytest.approx(sum(xs) / len(xs))


def test_every_row_comes_back_and_excluded_rows_are_counted(spark, clustered):
    assert (clustered.rows_in, clustered.rows_clustered, clustered.rows_excluded) == (28, 25, 3)
    assert clustered.rows_searched == 25
    expected = [(i, 0 if i < 12 else 1 if i < 20 else 2) for i, _, _ in BLOBS]
    expected += [(r[0], None) for r in BAD]
    got = clustered.table.select("id", "cluster")
    assertDataFrameEqual(got, spark.createDataFrame(expected, "id int, cluster int"))
    assert clustered.table.columns == ["id", "x", "y", "cluster"]


def test_the_model_gives_every_clustered_row_the_id_the_table_has(spark, clustered):
    got = clustered.model.transform(spark.createDataFrame(BLOBS, SCHEMA))
    expected = clustered.table.where("cluster IS NOT NULL").select("id", "cluster")
    assertDataFrameEqual(got.select("id", got[clu.LABEL].alias("cluster")), expected)


def test_the_search_logs_a_line_per_k_as_it_goes(spark, caplog):
    vectors = kmeans.vectorize(spark.createDataFrame(BLOBS, SCHEMA), ["x", "y"], True)
    with caplog.at_level(logging.INFO, logger="deepspark"):
        scores, _ = kmeans.silhouette_by_k(vectors, [3, 26], seed=1)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("k-means k=")]
    assert len(lines) == 2, lines
    assert re.fullmatch(rf"k-means k=3: silhouette {scores[3]:.4f} \(\d+\.\ds\)", lines[0])
    # 25 rows hold fewer than 26 distinct points: MLlib gives fewer centres, k is not a candidate.
    assert re.fullmatch(r"k-means k=26: skipped, only \d+ distinct centres \(\d+\.\ds\)", lines[1])
    assert list(scores) == [3]


def test_search_on_a_sample_then_fit_on_every_row(spark):
    df = spark.createDataFrame(BLOBS, SCHEMA)
    spec = KMeansConfig(
        table="gold/points", features=("x", "y"), output="o", k_max=3, sample_rows=20
    )
    result = kmeans.cluster_table(df, spec)
    try:
        assert 5 < result.rows_searched < 25 and result.rows_clustered == 25
        assert result.k == 3 and result.sizes == {0: 12, 1: 8, 2: 5}
        assert result.silhouette > 0.95  # the final fit, scored on all 25 rows
    finally:
        result.unpersist()


def test_too_few_complete_rows_is_an_input_error(spark):
    df = spark.createDataFrame(BLOBS[:4] + BAD, SCHEMA)
    with pytest.raises(InputError) as e:
        kmeans.cluster_table(df, SPEC, where="/data/gold/points")
    assert str(e.value) == (
        "/data/gold/points: 4 of 7 rows have every feature (x, y) present and finite; "
        "trying k up to k_max=4 needs more than 4"
    )


def test_identical_rows_are_an_input_error(spark):
    df = spark.createDataFrame([(i, 1.0, 2.0) for i in range(6)], SCHEMA)
    spec = KMeansConfig(table="gold/points", features=("x", "y"), output="o", k_max=2)
    with pytest.raises(InputError) as e:
        kmeans.cluster_table(df, spec)
    assert str(e.value) == (
        "gold/points: the complete rows hold fewer than k_min=2 distinct feature vectors; "
        "there is nothing to cluster"
    )


def test_complete_is_never_null(spark):
    df = spark.createDataFrame(
        [(1, 1.0), (None, 1.0), (1, None), (1, math.nan), (1, -math.inf), (None, None)],
        "n int, v double",
    )
    got = [r[0] for r in df.select(clu.complete(["n", "v"])).collect()]
    assert got == [True, False, False, False, False, False]
    assert kmeans.count_complete(df, ["n", "v"]) == (6, 1)
    assert kmeans.count_complete(df, ["n"]) == (6, 4)


def test_vectorize_standardizes_with_the_sample_stddev(spark):
    df = spark.createDataFrame([(1.0, 5.0), (2.0, 5.0), (3.0, 5.0)], "a double, b double")

    def vectors(standardize):
        out = kmeans.vectorize(df, ["a", "b"], standardize)
        assert out.columns == ["a", "b", clu.VECTOR]
        return [r[0] for r in out.select(vector_to_array(clu.VECTOR)).collect()]

    # mean 2, sample stddev 1; a constant column scales to 0.
    assert vectors(True) == [[-1.0, 0.0], [0.0, 0.0], [1.0, 0.0]]
    assert vectors(False) == [[1.0, 5.0], [2.0, 5.0], [3.0, 5.0]]


def test_best_k_prefers_the_smaller_k_on_a_tie():
    assert clu.best_k({2: 0.5, 3: 0.7, 4: 0.7, 5: 0.1}) == 3
    with pytest.raises(ValueError, match="no k to choose from"):
        clu.best_k({})


def test_centroid_profiles_skip_unclustered_rows(spark):
    df = spark.createDataFrame(
        [(1, 2, 0), (3, 4, 0), (10, 20, 1), (99, 99, None)], "a int, b int, cluster int"
    )
    expected = spark.createDataFrame(
        [(0, 2.0, 3.0), (1, 10.0, 20.0)], "cluster int, a double, b double"
    )
    got = clu.centroid_means(df, ["a", "b"])
    assertDataFrameEqual(got, expected, checkRowOrder=True)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"table": "points"}, f"table 'points': expected 'layer/table' with a layer in {LAYERS}"),
        ({"table": "gold/"}, f"table 'gold/': expected 'layer/table' with a layer in {LAYERS}"),
        ({"features": ()}, "features: at least one column is required"),
        ({"features": ("x", "y", "x")}, "features: listed more than once: x"),
        ({"k_min": 1}, "k_min: expected at least 2 (a silhouette needs two clusters), found 1"),
        ({"k_min": 4, "k_max": 3}, "k_max: expected at least k_min=4, found 3"),
        ({"sample_rows": 8}, "sample_rows: expected more rows than k_max=8, found 8"),
        ({"output": "Points"}, "output 'Points': expected a lower_snake_case table name"),
        ({"output": "points"}, "output 'points': would overwrite the input table gold/points"),
    ],
)
def test_bad_config_is_one_clear_line(kwargs, message):
    args = {"table": "gold/points", "features": ("x", "y"), "output": "o", **kwargs}
    with pytest.raises(ValueError) as e:
        KMeansConfig(**args)
    assert str(e.value) == message


CONFIG = """
pipeline:
  name: tiny
  sources:
    t: {{uri: /data/t.csv, format: csv, schema: {{a: int}}}}
  aggregates:
    hourly: {{source: t, keys: [a], metrics: {{n: {{fn: count}}}}}}
  kmeans: {{table: {table}, features: [n], output: {output}, k_max: {k_max}}}
"""


def test_config_errors_name_the_file_and_key(tmp_path):
    from deepspark.config import load_config
    from deepspark.errors import ConfigError

    path = tmp_path / "p.yaml"
    path.write_text(CONFIG.format(table="gold/hourly", output="hourly_clusters", k_max="nine"))
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert str(e.value) == f"{path}: pipeline.kmeans.k_max: expected int, found str 'nine'"

    path.write_text(CONFIG.format(table="gold/hourly", output="hourly_clusters", k_max=1))
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert str(e.value) == f"{path}: pipeline.kmeans: k_max: expected at least k_min=2, found 1"

    path.write_text(CONFIG.format(table="silver/t", output="hourly", k_max=4))
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert str(e.value) == (
        f"{path}: pipeline: kmeans.output: 'hourly' is also an aggregate (gold/hourly); "
        "choose another name"
    )

    path.write_text(CONFIG.format(table="gold/hourly", output="hourly_clusters", k_max=4))
    cluster = load_config(path).pipeline.kmeans
    assert (cluster.features, cluster.k_min, cluster.k_max, cluster.sample_rows) == (
        ("n",),
        2,
        4,
        None,
    )


def test_cluster_plots_draw_edge_cases_and_close_figures(tmp_path):
    import matplotlib.pyplot as plt
    import pandas as pd

    from deepspark import plots

    assert plots.silhouette_curve({2: 0.4}, 2, tmp_path / "s.png", "one k").stat().st_size
    assert plots.bar_chart({"0": 3, "1": 0}, tmp_path / "b.png", "t", "x", "y").stat().st_size
    values = pd.DataFrame({"a": [1.0, None], "k": [5.0, 5.0]}, index=["0", "1"])
    shade = pd.DataFrame({"a": [0.5, float("nan")], "k": [float("nan")] * 2}, index=values.index)
    path = plots.centroid_heatmap(values, shade, tmp_path / "h.png", "nan cells", "z")
    assert path.stat().st_size
    assert plt.get_fignums() == []
