"""All dataset I/O: where each layer lives, checked reads, and staged writes moved into place.

A stage writes every output to a hidden staging directory beside its final path; only when all of
them are written (and the row counts reconcile) are they moved into place. A failure part-way
leaves the previous outputs exactly as they were.

With ``paths.format: delta`` each table is a Delta table instead, and each write one commit.

The modules: fs.py (Hadoop's FileSystem, packaged files), staged.py (staged writes and Delta
commits), read.py (checked reads of either format), delta.py (Delta's jars, versions, files).
"""

from __future__ import annotations

from deepspark.io.fs import PACKAGE_SCHEME, FileSystem, local_path, resolve_package_uri
from deepspark.io.read import (
    is_delta,
    read_parquet,
    read_table,
    spark_errors_as_input_errors,
    table_bytes,
    table_digest,
    table_files,
)
from deepspark.io.staged import StagedOutputs, counting, staged_outputs

__all__ = [
    "PACKAGE_SCHEME",
    "FileSystem",
    "StagedOutputs",
    "counting",
    "local_path",
    "is_delta",
    "read_parquet",
    "read_table",
    "resolve_package_uri",
    "spark_errors_as_input_errors",
    "staged_outputs",
    "table_bytes",
    "table_digest",
    "table_files",
]
