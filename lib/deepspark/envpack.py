"""The Python environment as one archive for ``--archives``, for clusters without the stack.

YARN and Kubernetes executors start with whatever Python their nodes have. Spark's documented
answer (Python Package Management) is to ship a packed virtual environment with
``--archives env.tar.gz#environment`` and point ``spark.pyspark.python`` at
``./environment/bin/python``; venv-pack makes that archive from this venv. The archive is rebuilt
only when the installed packages change, and named after them so nodes never reuse a stale one.

A venv does not contain the interpreter itself (``bin/python`` links to the base Python), so the
nodes need the same Python 3.11 at the same path, or a container image with the stack instead
(``python_env: image``).
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.metadata import Distribution, distributions
from pathlib import Path

from deepspark.errors import SetupError

ARCHIVE_ALIAS = "environment"  # the folder the archive unpacks to in each executor's directory
# The dev venv installs deepspark itself in editable mode; it ships separately (--py-files), so the
# editable hook is left out of the archive.
_EDITABLE = ("*__editable__*",)


def env_fingerprint(prefix: str | Path | None = None) -> str:
    """A short hash of what is installed: Python version plus every ``name==version``.

    Editable installs (this project) are left out: their code ships with ``--py-files``.
    """
    prefix = Path(prefix or sys.prefix)
    site = next(prefix.glob("lib/python*/site-packages"), None)
    if site is None:
        raise SetupError(f"{prefix} is not a virtual environment (no lib/python*/site-packages)")
    pins = sorted(
        f"{d.metadata['Name'].lower()}=={d.version}"
        for d in distributions(path=[str(site)])
        if not _editable(d)
    )
    blob = "\n".join([f"python {sys.version_info[0]}.{sys.version_info[1]}", *pins])
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def _editable(dist: Distribution) -> bool:
    try:
        url = json.loads(dist.read_text("direct_url.json") or "{}")
    except ValueError:
        return False
    return bool(url.get("dir_info", {}).get("editable"))


def archive_path(dist: str | Path = "dist", prefix: str | Path | None = None) -> Path:
    """Where the packed environment for ``prefix`` (this venv by default) goes."""
    return Path(dist) / f"deepspark-env-{env_fingerprint(prefix)}.tar.gz"


def packed_env(dist: str | Path = "dist", prefix: str | Path | None = None) -> Path:
    """The venv at ``prefix`` packed with venv-pack, built once per set of installed packages.

    Returns:
        ``{dist}/deepspark-env-{fingerprint}.tar.gz``; ship it as ``PATH#environment``.

    Raises:
        SetupError: ``prefix`` is not a venv, or venv-pack failed (its reason included).
    """
    prefix = Path(prefix or sys.prefix)
    target = archive_path(dist, prefix)
    if target.exists():
        return target
    import venv_pack

    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    print(f"packing {prefix} into {target} (once per set of packages)...", file=sys.stderr)
    try:
        with _editable_allowed():
            venv_pack.pack(
                prefix=str(prefix),
                output=str(partial),
                format="tar.gz",
                force=True,
                filters=[("exclude", pattern) for pattern in _EDITABLE],
            )
    except BaseException as e:
        partial.unlink(missing_ok=True)
        if isinstance(e, venv_pack.VenvPackException):
            reason = " ".join(str(e).split())
            raise SetupError(f"could not pack {prefix} with venv-pack: {reason}") from e
        raise
    partial.replace(target)  # atomic: a concurrent submit never ships half an archive
    for old in target.parent.glob("deepspark-env-*.tar.gz"):
        if old != target:
            old.unlink()  # one archive per venv; old ones are GBs of stale packages
    return target


@contextmanager
def _editable_allowed() -> Iterator[None]:
    """venv-pack 0.2 refuses any venv with an editable install and has no switch for it.

    Ours is deepspark itself, which the filter above leaves out of the archive, so the check is
    lifted for the duration of the call only.
    """
    import venv_pack.core as core

    check = core.check_no_editable_packages
    core.check_no_editable_packages = lambda context: None
    try:
        yield
    finally:
        core.check_no_editable_packages = check
