"""Where and how a job runs: the Spark session, the data layers, MLflow, the pseudonym key.

The sections a base profile (``conf/base.yaml``) holds; a pipeline file may override any of them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit

from deepspark.config.values import Scalar, empty_map

# The data layers, each a folder under paths.data ({data}/{layer}/{pipeline}/{table}); a
# layer/table key (profile, kmeans, checks) names one of them.
LAYERS = (
    "raw", "bronze", "silver", "gold", "features", "quarantine", "profiles", "predictions",
    "checks", "tuning",
)  # fmt: skip


@dataclass(frozen=True)
class SparkConfig:
    """How the one SparkSession is built; spark-submit flags win over ``master``."""

    app_name: str = "deepspark"  # Spark application name (the UI and the cluster manager show it)
    master: str = "local[*]"  # master URL when run as plain Python; spark-submit's --master wins
    driver_memory: str = "2g"  # driver heap when run as plain Python; spark-submit's wins
    # spark.* setting -> value for the session; one given to spark-submit wins.
    settings: Mapping[str, Scalar] = field(default_factory=empty_map)


@dataclass(frozen=True)
class PathsConfig:
    """Where data lives: ``{data}/{layer}/{pipeline}/{table}`` for every layer in LAYERS."""

    data: str = "work/data"  # root of every data layer: {data}/{layer}/{pipeline}/{table}
    # Training checkpoints go to {checkpoints}/{pipeline}/{model}-{hash}/.
    checkpoints: str = "work/checkpoints"
    # How the tables under data are stored: parquet (plain folders, each replaced whole on a
    # write) or delta (Delta Lake: every write one commit, each version kept and readable).
    format: Literal["parquet", "delta"] = "parquet"
    # Delta: the vacuum stage deletes the files of versions replaced longer ago than this, except
    # in a table holding a version a registered model was trained on (docs/TABLES.md).
    retention_days: float = 7.0

    def __post_init__(self) -> None:
        if self.retention_days < 0:
            raise ValueError(f"retention_days: expected >= 0, found {self.retention_days}")


@dataclass(frozen=True)
class MlflowConfig:
    """Tracking store; a local SQLite file by default, or a tracking server URI."""

    # Tracking store: a database URI or a server URL, never with credentials.
    tracking_uri: str = "sqlite:///work/mlflow.db"
    # Where a new experiment keeps its artifacts (a path or a URI).
    artifact_root: str = "work/mlartifacts"
    experiment: str = "deepspark"  # MLflow experiment name, created on first use
    # false: nothing is tracked or registered, so evaluate and score are skipped.
    enabled: bool = True
    # A server that stops answering mid-run costs at most about (retries + 1) x timeout per call,
    # and a job stops calling it after the first failure; MLflow's own defaults are 7 and 120 s.
    http_retries: int = 2  # retries per MLflow HTTP call (MLFLOW_HTTP_REQUEST_MAX_RETRIES wins)
    http_timeout_s: int = 30  # seconds per MLflow HTTP request (MLFLOW_HTTP_REQUEST_TIMEOUT wins)
    system_metrics_s: float = 2.0  # training runs' system/* sampling interval in s; 0: none

    def __post_init__(self) -> None:
        # Config is logged (config.yaml artifact, params) and shipped with --files: a password in
        # the URI would be stored in the clear wherever the config goes.
        parts = urlsplit(self.tracking_uri)
        if parts.username is not None or parts.password is not None:
            shown = parts._replace(netloc=f"***@{parts.netloc.rpartition('@')[2]}").geturl()
            raise ValueError(
                f"tracking_uri: expected no user or password in the URI, found {shown}; give "
                "credentials in the environment instead: MLFLOW_TRACKING_USERNAME and "
                "MLFLOW_TRACKING_PASSWORD, or MLFLOW_TRACKING_TOKEN"
            )
        if not 0 <= self.http_retries <= 10:  # MLflow refuses more than 10
            raise ValueError(f"http_retries: expected 0 to 10, found {self.http_retries}")
        if self.http_timeout_s < 1:
            raise ValueError(f"http_timeout_s: expected at least 1, found {self.http_timeout_s}")


@dataclass(frozen=True)
class PrivacyConfig:
    """Pseudonymization: the HMAC key comes from an environment variable or a file, never YAML.

    ``key_env`` names the variable; ``key_file``, when set, names a file holding the key (only
    its owner may read it). With both set they must hold the same key.
    """

    key_env: str = "DEEPSPARK_PSEUDONYM_KEY"  # environment variable that holds the HMAC key
    # File that holds the key (owner-only); with key_env set too, they must match.
    key_file: str | None = None
    min_key_bytes: int = 16  # shortest key accepted, in bytes

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", self.key_env):
            raise ValueError(
                f"key_env: expected an environment variable name, found {self.key_env!r}"
            )
        if self.key_file is not None and not self.key_file.strip():
            raise ValueError("key_file: expected a file path, found an empty string")
