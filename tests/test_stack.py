"""The pinned stack: the installed versions must be the ones pyproject.toml pins.

Petastorm 0.12.1 needs pyarrow < 15, pyarrow 14 needs numpy < 2, PySpark 4.1+ refuses pyarrow < 15:
a drift in any one breaks the others at run time, so it fails here first, by name.
"""

from __future__ import annotations

import re
from importlib.metadata import requires, version

STACK = ("pyspark", "pyarrow", "numpy", "pandas", "petastorm", "torch", "mlflow")


def pins() -> dict[str, str]:
    out = {}
    for req in requires("deepspark") or []:
        m = re.match(r"^([A-Za-z0-9_.-]+)==([^;\s]+)$", req.strip())
        if m:
            out[m[1].lower()] = m[2]
    return out


def test_every_stack_package_is_pinned_exactly():
    missing = [p for p in STACK if p not in pins()]
    assert not missing, f"pyproject.toml must pin {', '.join(missing)} with =="


def test_installed_versions_match_the_pins():
    drift = [
        f"{name} {version(name)} installed, {pinned} pinned"
        for name, pinned in pins().items()
        if version(name) != pinned
    ]
    assert not drift, (
        "installed packages drifted from the pinned stack (reinstall with "
        "`pip install -e '.[dev]'`): " + "; ".join(drift)
    )


def test_stack_imports_together():
    import numpy
    import petastorm
    import pyarrow
    import pyspark
    from petastorm import make_batch_reader  # noqa: F401 - the API the training loader uses

    assert pyarrow.__version__ == pins()["pyarrow"]
    assert numpy.__version__ == pins()["numpy"]
    assert pyspark.__version__ == pins()["pyspark"]
    assert petastorm.__version__ == pins()["petastorm"]
