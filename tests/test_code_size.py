"""Size limits on the library: short modules and short functions, measured with ``ast``.

No Python file under lib/ is over 300 lines, and no function over 60 (``end_lineno - lineno + 1``:
from its ``def`` to its last line, nested functions and methods included). A function may go
over only where a comment line directly above it (above its ``def``, or its first decorator)
gives the reason, with the words "longer than 60 lines:"; at most two such functions, in all of
lib/, so that the exception stays one.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIB = ROOT / "lib"
MAX_FILE_LINES = 300
MAX_FUNCTION_LINES = 60
MAX_EXCEPTIONS = 2
MARKER = "longer than 60 lines:"


def _sources() -> list[Path]:
    files = [p for p in LIB.rglob("*.py") if "__pycache__" not in p.parts]
    assert files, f"no Python files under {LIB}"
    return sorted(files)


def _functions(path: Path) -> Iterator[tuple[ast.FunctionDef | ast.AsyncFunctionDef, int, bool]]:
    """Every function in ``path``: its node, its length, whether a comment says why it is long."""
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines()
    for node in ast.walk(ast.parse(text, filename=str(path))):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            above = lines[first - 2].strip() if first >= 2 else ""
            marked = above.startswith("#") and MARKER in above
            yield node, node.end_lineno - node.lineno + 1, marked


def _where(path: Path, node: ast.FunctionDef | ast.AsyncFunctionDef) -> str:
    return f"{path.relative_to(ROOT)}:{node.lineno} {node.name}"


def test_no_file_is_over_300_lines():
    long = [
        f"{path.relative_to(ROOT)} ({n} lines)"
        for path in _sources()
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_FILE_LINES
    ]
    assert not long, f"files over {MAX_FILE_LINES} lines (split them by topic):\n" + "\n".join(long)


def test_no_function_is_over_60_lines_without_a_reason():
    long = [
        f"{_where(path, node)} ({n} lines)"
        for path in _sources()
        for node, n, marked in _functions(path)
        if n > MAX_FUNCTION_LINES and not marked
    ]
    assert not long, (
        f"functions over {MAX_FUNCTION_LINES} lines (split them along their steps, or say why "
        f"not in a comment above the def with {MARKER!r}):\n" + "\n".join(long)
    )


def test_at_most_two_functions_are_allowed_to_be_long():
    marked = [
        (f"{_where(path, node)} ({n} lines)", n)
        for path in _sources()
        for node, n, is_marked in _functions(path)
        if is_marked
    ]
    stale = [where for where, n in marked if n <= MAX_FUNCTION_LINES]
    shown = "\n".join(stale)
    assert not stale, f"{MARKER!r} above a function that is not (drop the comment):\n{shown}"
    assert len(marked) <= MAX_EXCEPTIONS, (
        f"{len(marked)} functions marked {MARKER!r}, at most {MAX_EXCEPTIONS} may be:\n"
        + "\n".join(where for where, _ in marked)
    )
