"""Typed, frozen configuration loaded once per job from ``conf/*.yaml`` plus overrides."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from deepspark.config.loader import apply_override, build, deep_merge, read_yaml
from deepspark.config.pipeline import (
    LAYERS,
    STAGES,
    AggregateConfig,
    CleanConfig,
    Config,
    FeaturesConfig,
    ImageFeatures,
    MetricSpec,
    PipelineConfig,
    SequenceFeatures,
    SourceConfig,
)
from deepspark.errors import ConfigError

__all__ = [
    "LAYERS",
    "STAGES",
    "AggregateConfig",
    "CleanConfig",
    "Config",
    "FeaturesConfig",
    "ImageFeatures",
    "MetricSpec",
    "PipelineConfig",
    "SequenceFeatures",
    "SourceConfig",
    "config_hash",
    "load_config",
    "spark_value",
    "to_plain",
]


def load_config(path: str | Path, overrides: Iterable[str] = ()) -> Config:
    """Load a pipeline config, its ``base`` profile (relative to it), then ``key=value`` overrides.

    Each file is checked on its own first, so an unknown key or a wrong type is reported against
    the file that holds it; required keys are checked on the merged result.
    """
    path = Path(path)
    data = read_yaml(path)
    build(Config, data, file=str(path), partial=True)
    files = [str(path)]
    base = data.get("base")
    if base:
        base_path = path.parent / base
        base_data = read_yaml(base_path)
        if "base" in base_data:
            raise ConfigError(f"{base_path}: a base profile cannot name another base")
        build(Config, base_data, file=str(base_path), partial=True)
        data = deep_merge(base_data, data)
        files.insert(0, str(base_path))
    for assignment in overrides:
        apply_override(Config, data, assignment)
    cfg = build(Config, data, file=str(path))
    return dataclasses.replace(cfg, files=tuple(files))


def spark_value(value: object) -> str:
    """A config scalar as Spark wants it: booleans as ``true``/``false``, not ``True``/``False``."""
    return str(value).lower() if isinstance(value, bool) else str(value)


def to_plain(obj: Any) -> Any:
    """The config as plain dicts/lists (for YAML dumps, MLflow params and hashing)."""
    if dataclasses.is_dataclass(obj):
        return {
            f.name: to_plain(getattr(obj, f.name))
            for f in dataclasses.fields(obj)
            if f.metadata.get("yaml", True)
        }
    if isinstance(obj, Mapping):
        return {k: to_plain(v) for k, v in obj.items()}
    if isinstance(obj, tuple | list):
        return [to_plain(v) for v in obj]
    return obj


def config_hash(cfg: Config) -> str:
    """A short, stable hash of the resolved config (same config, same hash, on any machine)."""
    blob = json.dumps(to_plain(cfg), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]
