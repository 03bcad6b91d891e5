"""``deepspark tables``: each Delta table of a pipeline with its versions, read from the logs.

For every version: when, what operation, rows written, the stage and MLflow run that wrote it, and
what changed (the input versions it was built from, or the delivery's files). No Spark session:
the commit files say it all, so listing a lakehouse costs milliseconds.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from deepspark.config import Config
from deepspark.config.pipeline import LAYERS
from deepspark.io import delta
from deepspark.layout import Layout, table_name


def tables(cfg: Config) -> list[str]:
    """The Delta tables under the pipeline's layers (quarantines and file logs included)."""
    root = Layout(cfg.paths, cfg.pipeline.name).root
    return delta.find_tables([f"{root}/{layer}/{cfg.pipeline.name}" for layer in LAYERS])


def report(cfg: Config) -> str:
    """Every table's versions as text, newest last; a line saying so when there is none."""
    paths = tables(cfg)
    if not paths:
        return (
            f"{cfg.pipeline.name}: no Delta tables under {cfg.paths.data} "
            f"(paths.format is {cfg.paths.format})"
        )
    root = Layout(cfg.paths, cfg.pipeline.name).root
    out = []
    for path in paths:
        commits = delta.history(path)
        out.append(f"{Path(path).relative_to(root) if '://' not in root else path}")
        for c in commits:
            when = dt.datetime.fromtimestamp(c.timestamp_ms / 1000, dt.UTC)
            op = f"{c.operation} {c.mode}".strip()
            rows = "" if c.rows is None else f"{c.rows} rows"
            who = " ".join(
                x for x in (c.metadata.get("stage"), (c.metadata.get("run") or "")[:8]) if x
            )
            out.append(
                f"  v{c.version:<4} {when:%Y-%m-%d %H:%M:%S}  {op:<17} {rows:>13}  {who:<17} "
                f"{_changed(c)}".rstrip()
            )
    return "\n".join(out)


def _changed(c: delta.Commit) -> str:
    meta = c.metadata
    if "inputs" in meta:
        return "from " + ", ".join(f"{table_name(p)} v{v}" for p, v in meta["inputs"].items())
    if "batch" in meta:
        files = meta.get("files") or []
        what = "all files" if meta.get("full") else f"{len(files)} new files"
        return f"delivery {meta['batch']} of {meta.get('source')}: {what}"
    return ""
