"""Typed, frozen configuration loaded once per job from ``conf/*.yaml`` plus overrides."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from deepspark.config.fields import to_plain
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
from deepspark.config.renamed import upgrade_file, upgrade_override
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
    """Load a pipeline config, what it ``extends`` or its ``base`` profile, then overrides.

    Each file is checked on its own first, so an unknown key or a wrong type is reported against
    the file that holds it; required keys are checked on the merged result.
    """
    path = Path(path)
    files: list[str] = []
    data = _read(path, files)
    for assignment in overrides:
        apply_override(Config, data, upgrade_override(assignment))
    cfg = build(Config, data, file=str(path))
    return dataclasses.replace(cfg, files=tuple(files))


def _read(path: Path, files: list[str]) -> dict[str, Any]:
    """One file merged over what it extends (recursively) or over its base; ``files`` in order."""
    if str(path) in files:
        raise ConfigError(f"{path}: extends itself (through {' -> '.join(files)})")
    data = upgrade_file(read_yaml(path), str(path))
    build(Config, data, file=str(path), partial=True)
    parent = data.pop("extends", None)
    if parent and data.get("base"):
        raise ConfigError(f"{path}: a file that extends another takes its base from it; drop base")
    if parent:
        below = _read(path.parent / parent, files)
    elif data.get("base"):
        base_path = path.parent / data["base"]
        below = upgrade_file(read_yaml(base_path), str(base_path))
        if "base" in below or "extends" in below:
            raise ConfigError(f"{base_path}: a base profile cannot name another base")
        build(Config, below, file=str(base_path), partial=True)
        files.append(str(base_path))
    else:
        below = {}
    files.append(str(path))
    return deep_merge(below, data)


def spark_value(value: object) -> str:
    """A config scalar as Spark wants it: booleans as ``true``/``false``, not ``True``/``False``."""
    return str(value).lower() if isinstance(value, bool) else str(value)


def config_hash(cfg: Config) -> str:
    """A short, stable hash of the resolved config (same config, same hash, on any machine)."""
    blob = json.dumps(to_plain(cfg), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]
