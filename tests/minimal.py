"""A venv holding only torch, numpy, pyarrow and pyyaml, plus deepspark installed ``--no-deps``.

That is what a GPU box gets: no Spark, no Java, no MLflow, no pandas or scikit-learn. The venv is
built once per requirement set under ``work/minimal-venv/<hash>`` (about 30 s from the local
wheels) and deepspark is reinstalled into it only when its sources change, so reruns cost
seconds. Building uses this machine's normal pip configuration (index, find-links, constraints),
or uv where it is on the PATH, as scripts/bootstrap.sh does: uv links torch from the cache that
the stack's own install filled, where pip downloads its CUDA build again (minutes, in a fresh CI).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
# The torch running these tests (its local version tag dropped): the wheel pip already has here.
REQUIREMENTS = (f"torch=={torch.__version__.split('+')[0]}", "numpy", "pyarrow", "pyyaml")
# What the GPU path must not need; the test checks the venv really lacks them.
ABSENT = ("mlflow", "pyspark", "pandas", "sklearn", "matplotlib", "psutil", "petastorm")
_BUILD_LEFTOVERS = shutil.ignore_patterns("__pycache__", "*.egg-info")


def minimal_python() -> Path:
    """The minimal venv's interpreter, with the current deepspark sources installed in it."""
    key = hashlib.sha256(f"{sys.version}|{'|'.join(REQUIREMENTS)}".encode()).hexdigest()[:12]
    home = ROOT / "work" / "minimal-venv"
    home.mkdir(parents=True, exist_ok=True)
    venv = home / key
    python = venv / "bin" / "python"
    # One builder at a time: other test sessions on this checkout may want the same venv.
    with open(home / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (venv / ".complete").exists():
            shutil.rmtree(venv, ignore_errors=True)
            _run([sys.executable, "-m", "venv", str(venv)])
            _run([*pip_install(python), "-q", *REQUIREMENTS])
            (venv / ".complete").write_text("\n".join(REQUIREMENTS) + "\n")
        source = _source_hash()
        stamp = venv / ".deepspark-source"
        if not stamp.exists() or stamp.read_text() != source:
            # From a copy: building in the checkout would leave build/ and egg-info behind.
            with tempfile.TemporaryDirectory() as tmp:
                shutil.copytree(ROOT / "lib", Path(tmp) / "lib", ignore=_BUILD_LEFTOVERS)
                for name in ("pyproject.toml", "README.md"):
                    shutil.copy(ROOT / name, tmp)
                _run([*pip_install(python), "-q", "--no-deps", "--force-reinstall", tmp])
            stamp.write_text(source)
    return python


def pip_install(python: Path) -> list[str]:
    """The command that installs into ``python``'s venv: uv's where it is on the PATH, else pip."""
    uv = shutil.which("uv")
    if uv is None:
        return [str(python), "-m", "pip", "install"]
    links = os.environ.get("UV_FIND_LINKS") or os.environ.get("PIP_FIND_LINKS", "")
    return [uv, "pip", "install", "--python", str(python), *(f"--find-links={d}" for d in
            links.split())]  # fmt: skip


def clean_env(**extra: str) -> dict[str, str]:
    """This environment minus what would leak the test venv's packages into the minimal one."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return {**env, **extra}


def _source_hash() -> str:
    digest = hashlib.sha256()
    package_data = [*(ROOT / "conf").rglob("*.yaml"), ROOT / "lib/deepspark/log4j2.properties"]
    files = sorted((ROOT / "lib").rglob("*.py")) + sorted(package_data) + [ROOT / "pyproject.toml"]
    for path in files:
        digest.update(str(path.relative_to(ROOT)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _run(cmd: list[str]) -> None:
    out = subprocess.run(cmd, capture_output=True, text=True, env=clean_env(), check=False)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{out.stdout[-2000:]}\n{out.stderr[-3000:]}")
