"""pyproject.toml says what the locks test: each lower bound is the oldest version a lock installs,
and the petastorm extra carries the pyspark bound that Petastorm's pyarrow needs.

A lower bound below every locked version promises a version nothing here ever ran; one above the
oldest locked version refuses a stack CI runs. The locks are read with their own small parser (one
``name==version`` per line, markers ignored), so this holds whatever venv runs it.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
LOCKS = ROOT / "locks"
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;]+)")


def _name(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def read_lock(text: str) -> tuple[set[str], dict[str, list[Version]]]:
    """A lock's extras (its ``# extras:`` line) and pins, name -> every version it pins (a package
    locked per Python version has several lines)."""
    extras: set[str] = set()
    pins: dict[str, list[Version]] = {}
    for line in text.splitlines():
        if line.startswith("# extras:"):
            extras = {e.strip() for e in line.partition(":")[2].split(",") if e.strip()}
        elif m := PIN.match(line):
            pins.setdefault(_name(m[1]), []).append(Version(m[2]))
    return extras, pins


def locks() -> dict[str, tuple[set[str], dict[str, list[Version]]]]:
    return {p.stem: read_lock(p.read_text()) for p in sorted(LOCKS.glob("*.txt"))}


def lower_bound_errors(project: dict, stacks: dict) -> list[str]:
    """One line per requirement whose lower bound is not the oldest version that a lock installs.

    ``[project].dependencies`` are installed by every lock; an extra by the locks whose
    ``# extras:`` name it. A package only some of those locks pin is bounded by the oldest among
    them.
    """
    groups = {"dependencies": (project["dependencies"], set(stacks))}
    for extra, reqs in project.get("optional-dependencies", {}).items():
        groups[f"[{extra}]"] = (reqs, {s for s, (extras, _) in stacks.items() if extra in extras})
    errors = []
    for group, (reqs, installers) in groups.items():
        if not installers:
            errors.append(f"{group}: no lock installs it (locks/*.in, # extras:)")
            continue
        for text in reqs:
            req = Requirement(text)
            locked = sorted(
                (v, s) for s in installers for v in stacks[s][1].get(_name(req.name), [])
            )
            bounds = [Version(spec.version) for spec in req.specifier if spec.operator == ">="]
            if not locked:
                errors.append(f"{group}: {req.name}: no lock that installs {group} pins it")
            elif not bounds:
                errors.append(
                    f"{group}: {req}: no lower bound (>=); the oldest locked is {locked[0][0]}"
                )
            elif bounds != [locked[0][0]]:
                oldest, stack = locked[0]
                errors.append(
                    f"{group}: {req.name}>={bounds[0]}, but the oldest version a lock installs "
                    f"is {oldest} (locks/{stack}.txt)"
                )
    return errors


def _project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def test_each_lower_bound_is_the_oldest_locked_version():
    errors = lower_bound_errors(_project(), locks())
    assert not errors, "pyproject.toml's lower bounds must be the oldest locked versions:\n" + (
        "\n".join(errors)
    )


def test_the_rule_names_the_package_the_bound_and_the_oldest_locked_version():
    stacks = {
        "new": read_lock("# extras: dev\npyspark==4.2.0\npytest==9.2.0\n"),
        "old": read_lock("# extras: gpu\npyspark==3.5.9 ; python_version < '3.12'\n"),
    }
    project = {
        "dependencies": ["pyspark>=3.5.8,<5"],
        "optional-dependencies": {"dev": ["pytest>=9.2.0,<10"], "gpu": ["nvidia-ml-py>=13,<14"]},
    }
    assert lower_bound_errors(project, stacks) == [
        "dependencies: pyspark>=3.5.8, but the oldest version a lock installs is 3.5.9 "
        "(locks/old.txt)",
        "[gpu]: nvidia-ml-py: no lock that installs [gpu] pins it",
    ]
    project["dependencies"] = ["PySpark>=3.5.9,<5"]  # names compare normalized
    project["optional-dependencies"] = {"dev": ["pytest>=9.2,<10"], "docs": ["x>=1"]}
    assert lower_bound_errors(project, stacks) == [
        "[docs]: no lock installs it (locks/*.in, # extras:)"
    ]


def test_the_petastorm_extra_bounds_pyspark_below_4_1():
    # Petastorm 0.12.1 needs pyarrow < 15, PySpark 4.1+ needs pyarrow >= 15: without this bound,
    # `pip install 'deepspark[petastorm]'` may take a pyspark that refuses the extra's pyarrow.
    extra = [Requirement(r) for r in _project()["optional-dependencies"]["petastorm"]]
    pyspark = [r for r in extra if r.name == "pyspark"]
    assert pyspark, "deepspark[petastorm] must bound pyspark (<4.1: its pyarrow is < 15)"
    assert not pyspark[0].specifier.contains("4.1.0", prereleases=True)
    for stack, (extras, pins) in locks().items():
        if "petastorm" in extras:
            assert all(pyspark[0].specifier.contains(v) for v in pins["pyspark"]), stack
