"""docs/ARCHITECTURE.md is the one drawing of the floors, and it matches the code.

The floors table must hold the layers of the import-linter contract (pyproject.toml) in the same
order, every top-level package and module of lib/deepspark must sit on exactly one floor, and
every module file must be named in the drawing (a stage's, by the stage table).
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from deepspark.config.stages import TABLE

ROOT = Path(__file__).resolve().parents[1]
LIB = ROOT / "lib" / "deepspark"
DOC = (ROOT / "docs" / "ARCHITECTURE.md").read_text()


def _floors() -> list[tuple[int, set[str]]]:
    """The floors table: (floor, {dotted module}) from the top floor down."""
    rows = re.findall(r"^\| (\d) \| [^|]+ \| (.+) \|$", DOC, re.MULTILINE)
    return [(int(floor), set(re.findall(r"`([\w.]+)`", mods))) for floor, mods in rows]


def _layers() -> list[set[str]]:
    """The floors contract's layers, each a set of dotted modules (`|` or `:` separates them)."""
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    (floors,) = [c for c in cfg["contracts"] if c["id"] == "floors"]
    return [{m.strip() for m in re.split(r"[|:]", layer)} for layer in floors["layers"]]


def test_the_floors_table_holds_the_contract_s_layers_in_order():
    floors, layers = _floors(), _layers()
    assert [f for f, _ in floors] == [4, 3, 2, 1, 0]
    # Each floor is one or more consecutive layers of the contract (floor 3: stages, tune, train).
    rest = list(layers)
    for floor, modules in floors:
        taken: set[str] = set()
        while rest and taken != modules:
            taken |= rest.pop(0)
        assert taken == modules, f"floor {floor}: table {sorted(modules)}, contract {sorted(taken)}"
    assert not rest, f"layers on no floor: {rest}"


def test_every_top_level_module_is_on_exactly_one_floor():
    top = {
        f"deepspark.{p.stem}"
        for p in LIB.iterdir()
        if (p.suffix == ".py" and p.stem != "__init__") or (p / "__init__.py").is_file()
    }
    placed = [m for _, modules in _floors() for m in modules]
    assert sorted(placed) == sorted(set(placed)), "a module on two floors"
    assert set(placed) == top


def test_every_module_file_is_named_in_the_drawing():
    (drawing,) = re.findall(r"## The drawing\n\n```\n(.*?)```", DOC, re.DOTALL)
    # The left column: names, single-spaced, up to the first run of two spaces (a brace list
    # continues on the lines below it).
    left = " ".join(
        m.group(1)
        for line in drawing.splitlines()
        if (m := re.match(r" {0,4}(\S+(?: \S+)*)", line))
    )
    left = re.sub(r",\s+", ",", left)
    named = set(re.findall(r"(?<![{,\w])([\w/]+\.py)\b", left))
    for package, inner in re.findall(r"([\w/]+)/\{([^}]*)\}\.py", left):
        named |= {f"{package}/{m}.py" for m in inner.split(",")}
    # stages/<stage>.py: one per entry of the stage table, which declares each module.
    named |= {f"stages/{s.module.rsplit('.', 1)[1]}.py" for s in TABLE}
    files = {str(p.relative_to(LIB)) for p in LIB.rglob("*.py") if p.name != "__init__.py"}
    missing = sorted(f for f in files if f not in named)
    assert not missing, f"modules missing from docs/ARCHITECTURE.md's drawing: {missing}"
