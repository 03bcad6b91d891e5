"""Where a pipeline's tables live; no Spark here, so training on a Java-less box can use it."""

from __future__ import annotations

from pathlib import Path

from deepspark.config.pipeline import LAYERS, PathsConfig

# The feature contract between the features stage and training: one folder per split, and a
# manifest beside them with shapes, scaling and row groups.
SPLITS = ("train", "validation", "test")
MANIFEST = "_manifest.json"


def table_name(path: str) -> str:
    """``.../silver/flights/weather`` -> ``silver/flights/weather`` (layer/pipeline/table)."""
    return "/".join(path.rsplit("/", 3)[-3:])


class Layout:
    """Paths of one pipeline's tables: ``{data}/{layer}/{pipeline}/{table}``."""

    def __init__(self, paths: PathsConfig, pipeline: str) -> None:
        root = paths.data
        self.root = root if "://" in root else str(Path(root).resolve())
        self.pipeline = pipeline

    def path(self, layer: str, table: str) -> str:
        """The path of ``table`` in ``layer`` (one of LAYERS)."""
        if layer not in LAYERS:
            raise ValueError(f"unknown layer {layer!r}")
        return f"{self.root}/{layer}/{self.pipeline}/{table}"

    def quarantine(self, stage: str, table: str) -> str:
        """Where rows that ``stage`` could not write clean for ``table`` go, with their reason."""
        return f"{self.root}/quarantine/{self.pipeline}/{stage}/{table}"

    def file_log(self, source: str) -> str:
        """The Delta table of the files ingested from ``source`` (io/deliveries.py)."""
        return f"{self.root}/bronze/{self.pipeline}/_files/{source}"

    def qualified(self, name: str) -> str:
        """``"silver/flights"`` -> that table's path."""
        layer, _, table = name.partition("/")
        return self.path(layer, table)
