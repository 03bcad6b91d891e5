"""Config keys and stage names that were renamed: still accepted, with one warning line each.

docs/GLOSSARY.md gives each word one meaning. "cluster" is the machines Spark runs on, so the
k-means stage and its section are ``kmeans``; "validation" is the validation split, so the data
checks (expectations, anomalies, skew) are ``checks``. Old configs and command lines keep working:
each old name is rewritten to the new one as the file or the override is read, and says so.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from deepspark.config.stages import RENAMED as RENAMED_STAGES
from deepspark.errors import ConfigError

log = logging.getLogger("deepspark")

# Old dotted key -> new dotted key (same parent section).
RENAMED_KEYS: Mapping[str, str] = {
    "pipeline.cluster": "pipeline.kmeans",
    "pipeline.validation": "pipeline.checks",
}


def _warn(where: str, old: str, new: str) -> None:
    log.warning("%s: %r is now %r (docs/GLOSSARY.md); the old name still works", where, old, new)


def upgrade_file(data: dict[str, Any], where: str) -> dict[str, Any]:
    """One file's YAML with renamed keys and stage names moved to their new names, in place."""
    for old, new in RENAMED_KEYS.items():
        *parents, old_leaf = old.split(".")
        new_leaf = new.rsplit(".", 1)[-1]
        node: Any = data
        for key in parents:
            node = node.get(key) if isinstance(node, dict) else None
        if not isinstance(node, dict) or old_leaf not in node:
            continue
        if new_leaf in node:
            raise ConfigError(f"{where}: both {old!r} and its new name {new!r}; keep {new!r}")
        node[new_leaf] = node.pop(old_leaf)
        _warn(where, old, new)
    pipeline = data.get("pipeline")
    if isinstance(pipeline, dict) and isinstance(pipeline.get("stages"), list):
        pipeline["stages"] = upgrade_stages(pipeline["stages"], f"{where}: pipeline.stages")
    return data


def upgrade_override(assignment: str) -> str:
    """A ``key=value`` override with a renamed key (or stage in ``pipeline.stages``) renamed."""
    name, sep, value = assignment.partition("=")
    key = name.strip()
    for old, new in RENAMED_KEYS.items():
        if key == old or key.startswith(old + "."):
            _warn(f"command-line override {assignment!r}", old, new)
            return f"{new}{key[len(old) :]}{sep}{value}"
    if key == "pipeline.stages" and any(old in value for old in RENAMED_STAGES):
        items = [s.strip() for s in value.strip().strip("[]").split(",") if s.strip()]
        items = upgrade_stages(items, f"command-line override {assignment!r}")
        return f"{name}{sep}[{', '.join(items)}]"
    return assignment


def upgrade_stages(stages: list[Any], where: str) -> list[Any]:
    """Stage names with renamed ones replaced (one warning each)."""
    out = []
    for stage in stages:
        new = RENAMED_STAGES.get(stage) if isinstance(stage, str) else None
        if new is not None:
            _warn(where, stage, new)
        out.append(new or stage)
    return out
