"""Run the training function on executors that have deepspark only as ``--py-files``.

TorchDistributor (non-local mode) pickles the training function and its arguments, and a fresh
``torchrun`` child unpickles them on each executor. A function pickled by reference needs
``deepspark`` importable there, but on YARN or Kubernetes the library reaches executors only as
the ``--py-files`` zip in their working directory, which Spark puts on the Python *worker's* path,
not on a child process's. So outside local mode the function travels inside a small bootstrap,
pickled by value, that puts the zip on the child's path first and then unpickles the real call.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any


def shipped(fn: Callable[..., Any], *args: Any) -> tuple[Callable[..., Any], tuple[Any, ...]]:
    """``(fn, args)`` as TorchDistributor should run them on executors.

    Unchanged when deepspark is installed here rather than imported from a zip (the executors then
    run an environment that has it); otherwise ``(run_with_library, (zip name, payload))``.
    """
    import deepspark

    archive = getattr(getattr(deepspark, "__loader__", None), "archive", None)  # zipimport
    if archive is None:
        return fn, args
    from pyspark import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    return run_with_library, (os.path.basename(archive), cloudpickle.dumps((fn, args)))


def run_with_library(library: str, payload: bytes) -> Any:
    """In the torchrun child: the library zip on ``sys.path``, then the real call.

    The child starts in the executor's working directory, where Spark put the ``--py-files``.
    Only the standard library and pyspark (always on executors) are used before that.
    """
    import importlib.util
    import os
    import sys

    path = os.path.abspath(library)
    if os.path.exists(path) and path not in sys.path:
        sys.path.insert(0, path)
    if importlib.util.find_spec("deepspark") is None:
        raise RuntimeError(
            f"deepspark is not importable on this executor: expected {library} (--py-files) in "
            f"{os.getcwd()}, found {sorted(os.listdir('.'))[:20]}"
        )
    from pyspark import cloudpickle

    fn, args = cloudpickle.loads(payload)
    return fn(*args)
