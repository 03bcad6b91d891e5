"""All dataset I/O: where each layer lives, checked reads, and staged writes moved into place.

A stage writes every output to a hidden staging directory beside its final path; only when all of
them are written (and the row counts reconcile) are they moved into place. A failure part-way
leaves the previous outputs exactly as they were.

The modules: fs.py (Hadoop's FileSystem, packaged files), staged.py (staged writes), read.py
(checked reads); every name is importable from ``deepspark.io``, as before they were split.
"""

from __future__ import annotations

from deepspark.io.fs import PACKAGE_SCHEME, FileSystem, local_path, resolve_package_uri
from deepspark.io.read import read_parquet, spark_errors_as_input_errors
from deepspark.io.staged import StagedOutputs, counting, staged_outputs

__all__ = [
    "PACKAGE_SCHEME",
    "FileSystem",
    "StagedOutputs",
    "counting",
    "local_path",
    "read_parquet",
    "resolve_package_uri",
    "spark_errors_as_input_errors",
    "staged_outputs",
]
