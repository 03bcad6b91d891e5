"""Cluster files: where ``./spark-submit.sh`` sends a job, and what it ships with it.

A cluster file is a YAML file in ``conf/clusters/`` (``local``, ``standalone``, ``yarn``, ``k8s``,
``standalone-gpu``) picked with ``--cluster NAME``. It holds only what differs between clusters:
the master, the deploy mode, how executors get a Python environment, executor resources and the
job settings a cluster needs (training across executors instead of on the driver's host). The
pipeline configs stay the same on every cluster.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from deepspark.config.files import CLUSTER_DIR, conf_root
from deepspark.config.loader import build, deep_merge, non_overrides, read_yaml
from deepspark.config.values import Scalar, empty_map
from deepspark.errors import ConfigError


@dataclass(frozen=True)
class ClusterConfig:
    """One cluster manager's submit settings.

    Attributes:
        master: ``local[N]``, ``spark://host:7077``, ``yarn`` or ``k8s://https://host:port``;
            ``--master`` and ``SPARK_MASTER`` override it.
        deploy_mode: ``client`` runs the driver on the submitting machine (the pseudonymization
            key and tracking credentials stay in its environment); ``cluster`` runs it on the
            cluster, which then needs the key as a file (``privacy.key_file``) mounted there.
        python_env: ``submitter`` runs executors with the submitting venv's interpreter path (one
            host, or the same install on every node); ``packed`` ships that venv as a venv-pack
            archive with ``--archives`` and points ``spark.pyspark.python`` into it; ``image``
            leaves the interpreter to ``settings`` (a container image that holds the stack).
        files: More files from ``conf/`` to ship with ``--files`` (the GPU discovery script).
        settings: Spark settings passed as ``--conf``; they win over the pipeline config's.
        overrides: ``key=value`` config overrides every job gets on this cluster, before the
            user's own (e.g. ``pipeline.train.local_mode=false``).
        description: One line for ``--help`` listings.
        extends: Another cluster file this one adds to (``standalone-gpu`` extends ``standalone``):
            its settings are merged, its files and overrides come first.
    """

    master: str
    deploy_mode: Literal["client", "cluster"] = "client"
    python_env: Literal["submitter", "packed", "image"] = "submitter"
    files: tuple[str, ...] = ()
    settings: Mapping[str, Scalar] = field(default_factory=empty_map)
    overrides: tuple[str, ...] = ()
    description: str = ""
    extends: str = ""

    def __post_init__(self) -> None:
        # ValueError: the loader prefixes it with the file that holds the cluster.
        if self.deploy_mode == "cluster" and self.master.startswith(("local", "spark://")):
            # Spark's standalone manager cannot run a Python driver on the cluster.
            raise ValueError(
                f"deploy_mode: cluster runs Python drivers on YARN or Kubernetes only, "
                f"found master {self.master}"
            )
        if self.python_env == "image" and "spark.pyspark.python" not in self.settings:
            raise ValueError(
                "python_env: image needs settings.spark.pyspark.python (the interpreter inside "
                "the image)"
            )
        bad = non_overrides(self.overrides)
        if bad:
            raise ValueError(f"overrides: expected key=value, found {', '.join(bad)}")


def cluster_path(name: str, root: str | Path = ".") -> Path:
    """The file behind ``--cluster NAME``: a path as given, else ``conf/clusters/NAME.yaml``.

    ``conf/`` is the one under ``root``, or the installed package's when ``root`` has none.
    """
    as_path = Path(name)
    if as_path.suffix in (".yaml", ".yml") or "/" in name:
        return as_path
    return conf_root(root) / CLUSTER_DIR / f"{name}.yaml"


def cluster_names(root: str | Path = ".") -> list[str]:
    """The cluster files ``--cluster`` knows, by name."""
    return sorted(p.stem for p in (conf_root(root) / CLUSTER_DIR).glob("*.yaml"))


def load_cluster(name: str, root: str | Path = ".") -> ClusterConfig:
    """Load a cluster file by name or path; unknown keys and bad values are ConfigErrors.

    Raises:
        ConfigError: No such cluster file (the message lists the known ones), or a bad file.
    """
    path = cluster_path(name, root)
    if not path.exists():
        known = cluster_names(root)
        raise ConfigError(
            f"unknown cluster file {name!r}: no {path} (known: {', '.join(known) or 'none'})"
        )
    data = read_yaml(path)
    build(ClusterConfig, data, file=str(path), partial=True)  # errors name this file
    if data.get("extends"):
        base_path = cluster_path(data["extends"], root)
        base = read_yaml(base_path)
        if base.get("extends"):
            raise ConfigError(f"{base_path}: a cluster file that is extended cannot extend another")
        build(ClusterConfig, base, file=str(base_path), partial=True)
        data = {
            **deep_merge(base, data),
            "files": [*base.get("files", ()), *data.get("files", ())],
            "overrides": [*base.get("overrides", ()), *data.get("overrides", ())],
        }
    return build(ClusterConfig, data, file=str(path))
