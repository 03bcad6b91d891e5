"""Config field metadata in one place: one typed walk of the config dataclasses.

For every YAML key it yields the dotted path, the type, the default, the meaning (the field's
comment in the dataclass source) and whether it changes what training learns
(:mod:`deepspark.config.learning`). Everything that needs to know the fields reads this walk:
the loader's unknown-key check and the plain-dict form (:func:`yaml_fields`, :func:`to_plain`),
the JSON Schema, ``docs/CONFIG.md`` and ``config show`` (:mod:`deepspark.config.reference` and
:mod:`deepspark.config.show`, through :func:`sections`), and the checkpoint's hash
(:func:`learned_plain`).
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import io
import re
import tokenize
import types
import typing
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Union, get_args, get_origin, get_type_hints

from deepspark.config.learning import Learned, Learning

_PRAGMA = re.compile(r"#\s*(fmt:|noqa\b|type: *ignore|pragma:)")


@dataclasses.dataclass(frozen=True)
class FieldInfo:
    """One YAML key of the config, as every reader of the fields sees it."""

    path: str  # dotted, as docs/CONFIG.md lists it: pipeline.sources.<name>.uri, x[].y
    owner: type  # the dataclass the field belongs to
    field: dataclasses.Field
    type: Any  # the resolved type hint
    has_default: bool
    default: Any  # the default as plain YAML data (None when required)
    meaning: str
    # What it does to training (config/learning.py); None outside pipeline.train, whose settings
    # reach training only through the features (the manifest's digest is in the hash).
    learned: Learned | None


@functools.cache
def yaml_fields(cls: type) -> tuple[dataclasses.Field, ...]:
    """The fields of ``cls`` that are YAML keys (``metadata={"yaml": False}`` ones are not)."""
    return tuple(f for f in dataclasses.fields(cls) if f.metadata.get("yaml", True))


@functools.cache
def hints(cls: type) -> dict[str, Any]:
    """The resolved type hints of ``cls`` (its annotations are strings: ``from __future__``)."""
    return get_type_hints(cls)


def sections(
    cls: type, prefix: str = "", learned: Learned | None = None
) -> Iterator[tuple[str, type, list[FieldInfo]]]:
    """``(prefix, class, keys)`` for ``cls`` and then, depth first, every section below it."""
    infos = [_info(cls, f, _join(prefix, f.name), learned) for f in yaml_fields(cls)]
    yield prefix, cls, infos
    for info in infos:
        inner, suffix = section_of(info.type)
        if inner is not None:
            inherited = learned if info.learned == "section" else info.learned
            yield from sections(inner, info.path + suffix, inherited)


def walk(cls: type, prefix: str = "") -> Iterator[FieldInfo]:
    """Every key below ``cls``: a section's own keys, then those of the sections inside it."""
    for _prefix, _cls, infos in sections(cls, prefix):
        yield from infos


def learning_of(cls: type) -> Learning | None:
    """The :class:`Learning` a section declares (``LEARNING``), if it declares one."""
    return getattr(cls, "LEARNING", None)


def learned_plain(obj: Any, where: str = "pipeline.train") -> dict[str, Any]:
    """The plain form of the settings of ``obj`` (a train section) that change what is learned.

    A section recurses; an architecture counts only when it is the model trained.

    Raises:
        TypeError: a field its section does not classify (so nothing is silently left out).
    """
    declared = learning_of(type(obj))
    if declared is None:
        raise TypeError(f"{where}: {type(obj).__name__} declares no LEARNING")
    out: dict[str, Any] = {}
    for f in yaml_fields(type(obj)):
        group, value = declared.of(f.name), getattr(obj, f.name)
        if group is None:
            raise TypeError(
                f"{where}.{f.name}: declared in none (or several) of changes, keeps, "
                f"sections and architectures of {type(obj).__name__}.LEARNING"
            )
        trained = group == "architecture" and getattr(obj, "model", None) == f.name
        if group == "changes":
            out[f.name] = to_plain(value)
        elif group == "section" or trained:
            out[f.name] = learned_plain(value, f"{where}.{f.name}")
    return out


def to_plain(obj: Any) -> Any:
    """The config as plain dicts/lists (for YAML dumps, MLflow params and hashing)."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_plain(getattr(obj, f.name)) for f in yaml_fields(type(obj))}
    if isinstance(obj, Mapping):
        return {k: to_plain(v) for k, v in obj.items()}
    if isinstance(obj, tuple | list):
        return [to_plain(v) for v in obj]
    return obj


def section_of(tp: Any) -> tuple[type | None, str]:
    """The dataclass a field holds, directly or as map values or list items, and its key suffix."""
    tp, suffix = strip_optional(tp), ""
    if get_origin(tp) in (dict, Mapping, typing.Mapping):
        tp, suffix = strip_optional(get_args(tp)[1]), ".<name>"
    elif get_origin(tp) is tuple:
        tp, suffix = strip_optional(get_args(tp)[0]), "[]"
    return (tp, suffix) if dataclasses.is_dataclass(tp) else (None, "")


def strip_optional(tp: Any) -> Any:
    """``X | None`` -> ``X``; anything else as it is."""
    if get_origin(tp) in (Union, types.UnionType):
        rest = [o for o in get_args(tp) if o is not type(None)]
        if len(rest) == 1:
            return rest[0]
    return tp


def summary(cls: type) -> str:
    """The first paragraph of a class docstring, Sphinx roles (``:mod:``) dropped."""
    text = (inspect.getdoc(cls) or "").split("\n\n")[0].replace("\n", " ")
    return re.sub(r":\w+:`~?", "`", text).replace("``", "`")


def _info(cls: type, f: dataclasses.Field, path: str, inherited: Learned | None) -> FieldInfo:
    tp = hints(cls)[f.name]
    has_default, default = _default(f)
    declared = learning_of(cls)
    learned = declared.of(f.name) if declared is not None else inherited
    if inherited in ("keeps", "architecture") and learned in ("changes", "keeps", None):
        learned = inherited  # inside a kept section, or an architecture: the section decides
    inner = section_of(tp)[0]
    meaning = _meanings(cls).get(f.name) or (summary(inner) if inner else "")
    return FieldInfo(path, cls, f, tp, has_default, default, meaning, learned)


def _default(f: dataclasses.Field) -> tuple[bool, Any]:
    if f.default is not dataclasses.MISSING:
        return True, to_plain(f.default)
    if f.default_factory is not dataclasses.MISSING:
        return True, to_plain(f.default_factory())
    return False, None


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


# --- meanings from the source ---------------------------------------------------------------------


@functools.cache
def _meanings(cls: type) -> dict[str, str]:
    """Field name -> meaning, from the source of ``cls``.

    A field's trailing comment wins, else the comment lines just above it (joined).
    """
    source, comments = _module(inspect.getsourcefile(cls) or "")
    lines = source.splitlines()
    tree = ast.parse(source)
    node = next(n for n in ast.walk(tree) if isinstance(n, ast.ClassDef) and n.name == cls.__name__)
    out = {}
    for stmt in node.body:
        if not (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)):
            continue
        text = comments.get(stmt.end_lineno or stmt.lineno, "")
        if not text:
            above, row = [], stmt.lineno - 2  # 0-based index of the line above
            while row >= 0 and lines[row].lstrip().startswith("#"):
                above.insert(0, comments.get(row + 1, ""))
                row -= 1
            text = " ".join(t for t in above if t)
        if text:
            out[stmt.target.id] = text
    return {name: _sentence(text) for name, text in out.items()}


def _sentence(text: str) -> str:
    """A comment as a table cell's sentence: a plain first word capitalized, a final period."""
    if re.match(r"[a-z][a-z-]* ", text):
        text = text[0].upper() + text[1:]
    return text if text.endswith(".") else f"{text}."


@functools.cache
def _module(filename: str) -> tuple[str, dict[int, str]]:
    """A module's source, and line number -> comment text (pragmas such as fmt: skip left out)."""
    source = Path(filename).read_text(encoding="utf-8")
    comments = {}
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT and not _PRAGMA.match(tok.string):
            comments[tok.start[0]] = tok.string.lstrip("#").strip()
    return source, comments
