"""The locked stacks: the installed set must be the chosen lock, and pyproject.toml's ranges must
admit every lock.

Petastorm 0.12.1 needs pyarrow < 15, pyarrow 14 needs numpy < 2, PySpark 4.1+ refuses pyarrow < 15:
a drift in any one breaks the others at run time, so it fails here first, by name. The stack a venv
holds is stamped into it by scripts/bootstrap.sh (``.deepspark-stack``).
"""

from __future__ import annotations

import importlib.util
import re
import sys
import sysconfig
import tomllib
from importlib.metadata import distributions, requires, version
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from deepspark.spark import delta_package

ROOT = Path(__file__).resolve().parents[1]
LOCKS = ROOT / "locks"
STACKS = sorted(p.stem for p in LOCKS.glob("*.txt"))
# The packages whose versions move together (DEVELOPERS.md); each stack's .in pins them.
CORE = ("pyspark", "pyarrow", "numpy", "pandas", "torch", "mlflow")


def _name(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def lock(stack: str, *, here: bool = True) -> dict[str, str]:
    """A lock's pins, name -> version: those whose markers hold on this interpreter (``here``), or
    every pin (a package locked per Python version keeps its last line: enough for a name check).
    """
    out = {}
    for line in (LOCKS / f"{stack}.txt").read_text().splitlines():
        if not line or line.startswith("#"):
            continue
        req = Requirement(line)
        if here and req.marker is not None and not req.marker.evaluate():
            continue
        out[_name(req.name)] = next(iter(req.specifier)).version
    return out


def header(stack: str, key: str) -> str:
    """A lock's ``# key: value`` line (python, extras)."""
    m = re.search(rf"^# {key}: *(.+)$", (LOCKS / f"{stack}.txt").read_text(), re.M)
    assert m, f"locks/{stack}.txt: no '# {key}:' line; regenerate it with scripts/lock.sh"
    return m[1].strip()


def installed_stack() -> str:
    stamp = Path(sys.prefix) / ".deepspark-stack"
    if not stamp.exists():
        pytest.skip(f"{sys.prefix} was not installed by scripts/bootstrap.sh (no .deepspark-stack)")
    return stamp.read_text().strip()


def installed() -> list:
    """The venv's own distributions: those in its site-packages. Once setuptools is imported, its
    vendored copies (importlib_metadata, packaging, zipp) are on sys.path too, at their own
    versions; they are setuptools' private business, not the venv's."""
    site = {Path(sysconfig.get_paths()[k]).resolve() for k in ("purelib", "platlib")}
    return [d for d in distributions() if Path(d.locate_file("")).resolve() in site]


def _public(v: str) -> str:
    return v.split("+", 1)[0]  # torch 2.13.0+cpu is the lock's torch==2.13.0


def test_there_are_three_stacks_each_with_its_spec():
    assert STACKS == ["current", "petastorm", "spark35"]
    for stack in STACKS:
        spec = (LOCKS / f"{stack}.in").read_text()
        for pkg in CORE:
            assert re.search(rf"^{pkg}==", spec, re.M), f"locks/{stack}.in must pin {pkg}"
            assert pkg in lock(stack, here=False)


def test_installed_set_is_the_chosen_lock():
    stack = installed_stack()
    pins = lock(stack)
    drift = sorted(
        f"{d.metadata['Name']} {d.version} installed, {pins[_name(d.metadata['Name'])]} locked"
        for d in installed()
        if _name(d.metadata["Name"]) in pins
        and _public(d.version) != pins[_name(d.metadata["Name"])]
    )
    assert not drift, (
        f"the venv drifted from locks/{stack}.txt (rerun ./test.sh to reinstall): "
        + "; ".join(drift)
    )
    for pkg in CORE:
        assert _public(version(pkg)) == pins[pkg]


def test_petastorm_is_there_exactly_when_the_stack_has_the_extra():
    stack = installed_stack()
    with_extra = "petastorm" in header(stack, "extras").split(",")
    assert (importlib.util.find_spec("petastorm") is not None) == with_extra
    if with_extra:
        from petastorm import make_batch_reader  # noqa: F401 - the API the petastorm backend uses


def _jars(stack: str) -> str:
    m = re.search(r"^# jars: *(.+)$", (LOCKS / f"{stack}.in").read_text(), re.M)
    assert m, f"locks/{stack}.in: no '# jars:' line (the Delta artifact its sessions load)"
    return m[1].strip()


@pytest.mark.parametrize("stack", STACKS)
def test_each_lock_names_the_delta_jars_built_for_its_spark_and_delta(stack):
    pins = lock(stack, here=False)
    assert _jars(stack) == delta_package(pins["pyspark"], pins["delta-spark"])


def test_the_session_loads_the_jars_the_installed_lock_names():
    assert delta_package() == _jars(installed_stack())


def test_this_interpreter_is_in_the_stack_python_range():
    stack = installed_stack()
    here = f"{sys.version_info[0]}.{sys.version_info[1]}"
    assert Version(here) in SpecifierSet(header(stack, "python"))


def _project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def test_pyproject_states_ranges_never_pins_or_local_labels():
    project = _project()
    reqs = [Requirement(r) for r in project["dependencies"]]
    reqs += [Requirement(r) for group in project["optional-dependencies"].values() for r in group]
    for req in reqs:
        ops = {s.operator for s in req.specifier}
        assert "+" not in str(req.specifier), f"{req}: a local label (+cpu) is on no index"
        if req.name == "ruff":  # the formatter's output changes between minors: one minor only
            continue
        assert ops >= {">=", "<"}, f"{req}: expected a range (>=oldest tested,<first break)"


@pytest.mark.parametrize("stack", STACKS)
def test_every_lock_satisfies_the_pyproject_ranges(stack):
    project = _project()
    extras = header(stack, "extras").split(",")
    reqs = [Requirement(r) for r in project["dependencies"]]
    reqs += [Requirement(r) for e in extras for r in project["optional-dependencies"][e]]
    versions: dict[str, list[str]] = {}
    for line in (LOCKS / f"{stack}.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            req = Requirement(line)
            versions.setdefault(_name(req.name), []).append(next(iter(req.specifier)).version)
    outside = [
        f"{r} but {v} locked"
        for r in reqs
        for v in versions[_name(r.name)]
        if not r.specifier.contains(v, prereleases=True)
    ]
    assert not outside, f"locks/{stack}.txt is outside pyproject.toml: {'; '.join(outside)}"
    assert ("petastorm" in versions) == ("petastorm" in extras)


def test_requires_python_admits_every_lock_python():
    admitted = SpecifierSet(_project()["requires-python"])
    for stack in STACKS:
        low, high = re.fullmatch(r">=3\.(\d+),<3\.(\d+)", header(stack, "python")).groups()
        for minor in range(int(low), int(high)):
            assert Version(f"3.{minor}") in admitted, f"{stack} takes 3.{minor}"


def test_the_deepspark_package_declares_the_ranges_it_was_installed_with():
    # The installed metadata is pyproject's: an editable install that predates a range change
    # would keep the old pins (and pip would enforce them) until reinstalled.
    core = [Requirement(r) for r in requires("deepspark") or []]
    declared = {r.name: str(r.specifier) for r in core if r.marker is None}  # not the extras
    for r in _project()["dependencies"]:
        req = Requirement(r)
        assert declared[req.name] == str(req.specifier)
