"""scripts/bootstrap.sh on bad input: one line each, naming what to do.

Each case runs the real script against a copy of the repo's scripts/, locks/ and pyproject.toml in
a temporary folder, with a PATH holding only what the case needs (fake interpreters, a fake java),
so nothing here touches the project's venvs.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BASH = shutil.which("bash") or "/bin/bash"
TOOLS = ("grep", "sed", "tr", "tail", "mkdir", "dirname", "cat")


def _checkout(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    shutil.copytree(ROOT / "scripts", repo / "scripts")
    shutil.copytree(ROOT / "locks", repo / "locks")
    shutil.copy(ROOT / "pyproject.toml", repo)
    return repo


def _bin(tmp_path: Path, pythons: dict[str, str]) -> Path:
    """A PATH folder: a fake java, the few tools the script calls, and fake interpreters that
    report the given version (name -> "3.X")."""
    folder = tmp_path / "bin"
    folder.mkdir()
    for tool in TOOLS:
        (folder / tool).symlink_to(shutil.which(tool))
    fakes = {"java": "#!/bin/sh\n"}
    for name, ver in pythons.items():
        minor = ver.split(".")[1]
        # Answers the version probe (-c ...) with its minor version; anything else fails.
        fakes[name] = f'#!/bin/sh\n[ "$1" = -c ] && echo {minor} && exit 0\nexit 1\n'
    for name, text in fakes.items():
        (folder / name).write_text(text)
        (folder / name).chmod(0o755)
    return folder


def _setup(repo: Path, path: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [BASH, "-c", "set -u; source scripts/bootstrap.sh --setup"],
        cwd=repo,
        env={"PATH": str(path), "HOME": str(repo), **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_unknown_stack_names_the_stacks(tmp_path):
    repo = _checkout(tmp_path)
    proc = _setup(repo, _bin(tmp_path, {}), DEEPSPARK_STACK="spark4")
    assert (proc.returncode, proc.stdout) == (1, "")
    assert proc.stderr == (
        "error: unknown stack 'spark4' (DEEPSPARK_STACK): choose one of current petastorm spark35"
        " (docs/STACKS.md)\n"
    )


def test_no_interpreter_for_the_stack_names_the_versions_and_a_stack_that_fits(tmp_path):
    repo = _checkout(tmp_path)
    path = _bin(tmp_path, {"python3": "3.13", "python3.13": "3.13"})
    proc = _setup(repo, path, DEEPSPARK_STACK="petastorm")
    assert (proc.returncode, proc.stdout) == (1, "")
    assert proc.stderr == (
        "error: stack petastorm needs Python 3.11 to 3.12, and none was found on the PATH: "
        "install one (e.g. python3.12), or use a stack for python3 3.13: DEEPSPARK_STACK=current\n"
    )


def test_an_interpreter_no_lock_supports(tmp_path):
    repo = _checkout(tmp_path)
    proc = _setup(repo, _bin(tmp_path, {"python3": "3.10"}), DEEPSPARK_STACK="current")
    assert (proc.returncode, proc.stdout) == (1, "")
    assert proc.stderr == (
        "error: stack current needs Python 3.11 to 3.14, and none was found on the PATH: "
        "install one (e.g. python3.14); no stack supports python3 3.10 (deepspark runs on "
        "3.11-3.14)\n"
    )


def test_the_pythons_deepspark_runs_on_are_read_from_the_locks(tmp_path):
    # The union of the locks' `# python:` ranges, gaps and all: here current takes 3.14 only.
    repo = _checkout(tmp_path)
    lock = repo / "locks" / "current.txt"
    lock.write_text(lock.read_text().replace("# python: >=3.11,<3.15", "# python: >=3.14,<3.15"))
    proc = _setup(repo, _bin(tmp_path, {"python3": "3.13"}), DEEPSPARK_STACK="current")
    assert (proc.returncode, proc.stdout) == (1, "")
    assert proc.stderr == (
        "error: stack current needs Python 3.14 to 3.14, and none was found on the PATH: "
        "install one (e.g. python3.14); no stack supports python3 3.13 (deepspark runs on "
        "3.11-3.12, 3.14)\n"
    )


@pytest.mark.parametrize(
    ("stack", "venv", "newest"),
    [
        # petastorm admits 3.11-3.12: of 3.11, 3.12 and 3.13 on the PATH, 3.12 builds the venv (the
        # fake cannot, which is where the script stops, naming it).
        ("petastorm", ".venv-petastorm", "3.12"),
        # The default stack, current, admits 3.11-3.14 and keeps the Quick start's .venv.
        (None, ".venv", "3.13"),
    ],
)
def test_the_newest_admitted_interpreter_is_chosen(tmp_path, stack, venv, newest):
    repo = _checkout(tmp_path)
    versions = ("3.11", "3.12", "3.13", "3.15")
    path = _bin(tmp_path, {f"python{v}": v for v in versions})
    proc = _setup(repo, path, **({"DEEPSPARK_STACK": stack} if stack else {}))
    assert proc.returncode == 1
    assert proc.stderr.splitlines()[-1].startswith(
        f"error: could not create {venv} with {path}/python{newest} "
    )


def test_a_lock_that_does_not_resolve_says_how_to_regenerate_it(tmp_path):
    repo = _checkout(tmp_path)
    lock = repo / "locks" / "current.txt"
    # A version no index has: pip fails to resolve, as it would for a lock gone stale.
    lock.write_text(lock.read_text().replace("pyyaml==", "pyyaml==0.0.0.dev0\n# was pyyaml=="))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    # The venv's pip is the one running these tests (a venv without pip would fail differently).
    site = next(Path(sys.prefix).glob("lib/python3*/site-packages"))
    (next(venv.glob("lib/python3*/site-packages")) / "host.pth").write_text(
        f"{site}\n"  # pip (and the stdlib it needs) from this test's venv
    )
    java_bin = _bin(tmp_path, {})
    proc = _setup(
        repo,
        java_bin,
        DEEPSPARK_STACK="current",
        DEEPSPARK_VENV=str(venv),
        PIP_NO_INDEX="1",
        PIP_NO_BUILD_ISOLATION="0",  # pip's inverted switch: build with the setuptools at hand
    )
    assert proc.returncode == 1
    assert proc.stderr.splitlines()[-1] == (
        f"error: locks/current.txt did not install into {venv} "
        "(full log: work/logs/install-current.log): "
        "regenerate it with scripts/lock.sh current, or choose another stack "
        "(DEEPSPARK_STACK=current|petastorm|spark35)"
    )
    # ...and pip's resolver said why (the log's tail stands above that line).
    assert "ResolutionImpossible" in proc.stderr


@pytest.mark.parametrize("stack", ["current", "petastorm", "spark35"])
def test_each_lock_states_its_python_and_extras(stack):
    text = (ROOT / "locks" / f"{stack}.txt").read_text()
    assert "\n# python: >=3.11,<3." in text
    assert "\n# extras: dev" in text
