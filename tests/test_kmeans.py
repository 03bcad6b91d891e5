"""The kmeans stage: a labelled copy of the table in gold, and the search logged to MLflow."""

from __future__ import annotations

import dataclasses
import json

import pyarrow.parquet as pq
import pytest

from deepspark.errors import InputError
from tests.unit.test_kmeans import BAD, BLOBS, SCHEMA

CONFIG = """
pipeline:
  name: pts
  sources:
    points: {{uri: unused.csv, format: csv, schema: {{id: int, x: double, y: double}}}}
  kmeans:
    table: gold/points
    features: [x, y]
    output: points_clusters
    k_max: 3
paths: {{data: work/data}}
mlflow:
  tracking_uri: sqlite:///{tmp}/mlflow.db
  artifact_root: {tmp}/mlartifacts
  experiment: test-cluster
"""
ARTIFACTS = (
    "centroids.csv",
    "centroids.json",
    "centroids.png",
    "cluster_sizes.png",
    "silhouette.png",
)


@pytest.fixture
def cfg(workdir):
    from deepspark.config import load_config

    path = workdir / "pts.yaml"
    path.write_text(CONFIG.format(tmp=workdir), encoding="utf-8")
    return load_config(path)


def write_points(spark, workdir, rows=BLOBS + BAD, schema=SCHEMA):
    df = spark.createDataFrame(rows, schema)
    df.coalesce(1).write.mode("overwrite").parquet(str(workdir / "work/data/gold/pts/points"))


def test_stage_writes_labelled_table_and_logs_the_search(spark, workdir, cfg):
    import mlflow

    from deepspark.stages import kmeans

    write_points(spark, workdir)
    result = kmeans.run(cfg, spark)

    out = workdir / "work/data/gold/pts/points_clusters"
    assert result.outputs == {"points_clusters": str(out)}
    assert not list(out.parent.glob("*.staging-*"))
    table = pq.read_table(out).to_pandas().sort_values("id")
    assert list(table.columns) == ["id", "x", "y", "cluster"]
    assert len(table) == len(BLOBS) + len(BAD)
    assert table.set_index("id")["cluster"].isna().to_dict() == {
        **{r[0]: False for r in BLOBS},
        **{r[0]: True for r in BAD},
    }
    assert table["cluster"].dropna().value_counts().to_dict() == {0: 12, 1: 8, 2: 5}

    m = dict(result.metrics)
    assert m.pop("silhouette") == m["silhouette_k3"] > m["silhouette_k2"]
    assert m == {
        "rows_in": 28,
        "rows_out": 28,
        "rows_clustered": 25,
        "rows_excluded": 3,
        "rows_searched": 25,
        "k": 3,
        "silhouette_k2": m["silhouette_k2"],
        "silhouette_k3": m["silhouette_k3"],
        "cluster_size_0": 12,
        "cluster_size_1": 8,
        "cluster_size_2": 5,
    }

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{workdir}/mlflow.db")
    exp = client.get_experiment_by_name("test-cluster")
    (run,) = client.search_runs([exp.experiment_id])
    assert run.data.tags["deepspark.stage"] == "kmeans"
    assert run.data.params["kmeans.features"] == "['x', 'y']"
    assert run.data.metrics["k"] == 3.0
    assert run.data.metrics["silhouette_k2"] == pytest.approx(m["silhouette_k2"])
    prefix = "cluster/points_clusters"
    logged = {a.path for a in client.list_artifacts(run.info.run_id, prefix)}
    assert logged == {f"{prefix}/{f}" for f in ARTIFACTS}
    local = client.download_artifacts(run.info.run_id, f"{prefix}/centroids.json", str(workdir))
    with open(local, encoding="utf-8") as fh:
        doc = json.load(fh)
    assert (doc["k"], doc["rows_excluded"], list(doc["silhouette_by_k"])) == (3, 3, ["2", "3"])
    assert [c["size"] for c in doc["clusters"]] == [12, 8, 5]
    assert doc["clusters"][1]["mean"]["x"] == pytest.approx(100.0, abs=0.5)

    # The chosen model, a Spark ML pipeline with a signature from its input example, gives the
    # ids the table has (MLflow 3.17's Spark flavor logs it under the run's artifacts).
    uri = f"runs:/{run.info.run_id}/kmeans"
    info = mlflow.models.get_model_info(uri)
    assert "spark" in info.flavors and info.metadata["k"] == 3
    assert info.signature.inputs.input_names() == ["x", "y"]
    assert info.signature.outputs.input_names() == ["prediction"]
    assert info.saved_input_example_info is not None
    clustered = table.dropna(subset=["cluster"])
    labels = mlflow.pyfunc.load_model(uri).predict(clustered[["x", "y"]])
    assert list(labels) == clustered["cluster"].astype(int).tolist()


def _no_mlflow(cfg):
    return dataclasses.replace(cfg, mlflow=dataclasses.replace(cfg.mlflow, enabled=False))


def test_missing_feature_is_an_input_error(spark, workdir, cfg):
    from deepspark.stages import kmeans

    write_points(spark, workdir, [(1, 1.0)], "id int, x double")
    with pytest.raises(InputError) as e:
        kmeans.run(_no_mlflow(cfg), spark)
    source = workdir / "work/data/gold/pts/points"
    assert str(e.value) == f"{source} (kmeans): missing column(s) y; available: id, x"
    assert not (workdir / "work/data/gold/pts/points_clusters").exists()


def test_text_feature_and_existing_cluster_column_are_input_errors(spark, workdir, cfg):
    from deepspark.stages import kmeans

    source = workdir / "work/data/gold/pts/points"
    write_points(spark, workdir, [(1, 1.0, "a")], "id int, x double, y string")
    with pytest.raises(InputError) as e:
        kmeans.run(_no_mlflow(cfg), spark)
    assert str(e.value) == f"{source} (kmeans): features must be numeric; not numeric: y (string)"

    write_points(spark, workdir, [(1, 1.0, 2.0, 0)], "id int, x double, y double, cluster int")
    with pytest.raises(InputError) as e:
        kmeans.run(_no_mlflow(cfg), spark)
    assert str(e.value) == f"{source} (kmeans): already has a column named 'cluster'"


def test_pipeline_runs_the_stage_only_when_configured(cfg):
    from deepspark.stages.pipeline import applicable

    assert "kmeans" in applicable(cfg)
    without = dataclasses.replace(cfg.pipeline, kmeans=None)
    assert "kmeans" not in applicable(dataclasses.replace(cfg, pipeline=without))
