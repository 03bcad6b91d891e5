"""The config reference, generated from the dataclasses: the JSON Schema and docs/CONFIG.md.

Everything here walks the type hints of :class:`~deepspark.config.Config` the way the loader reads
them, and takes each key's meaning from its comment in the dataclass source (trailing, or the
comment lines just above it; a section without one says what its class docstring says), so the
source stays the one truth and ``docs/CONFIG.md`` can be regenerated and tested for staleness.
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
from typing import Any, Literal, NamedTuple, Union, get_args, get_origin, get_type_hints

from deepspark.config import to_plain
from deepspark.config.pipeline import Config
from deepspark.config.show import one_line_yaml

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
_SCALARS = {str: "string", int: "integer", float: "number", bool: "boolean"}
_PRAGMA = re.compile(r"#\s*(fmt:|noqa\b|type: *ignore|pragma:)")


class ConfigKey(NamedTuple):
    """One documented key: its dotted path, type, default (markdown) and meaning."""

    key: str
    type: str
    default: str
    meaning: str


def json_schema(*, resolved: bool = False) -> dict[str, Any]:
    """A JSON Schema (draft 2020-12) of one pipeline or base file, as the loader checks it.

    Args:
        resolved: describe the merged data (base file, pipeline file and overrides) instead: keys
            without a default are then ``required``. A single file lists none, because its base
            file may supply any of them (the loader checks required keys after merging).
    """
    defs: dict[str, Any] = {}
    top = _object(Config, defs, resolved)
    title = "resolved deepspark config" if resolved else "deepspark config file"
    schema = {"$schema": SCHEMA_DIALECT, "title": title, "type": "object", **top}
    return {**schema, "$defs": dict(sorted(defs.items()))}


def reference_keys() -> list[ConfigKey]:
    """Every key below :class:`Config` as CONFIG.md lists them: a section, then those inside it."""
    return [key for _prefix, _cls, keys in _sections(Config, "") for key in keys]


def markdown() -> str:
    """The text of ``docs/CONFIG.md``: how files merge, then one table per config section."""
    out = [_INTRO]
    for prefix, cls, keys in _sections(Config, ""):
        out += [f"## `{prefix or '<top level>'}`", "", _cell(_summary(cls)), ""]
        out += ["| Key | Type | Default | Meaning |", "|---|---|---|---|"]
        out += [f"| `{k.key}` | {' | '.join(map(_cell, k[1:]))} |" for k in keys]
        out.append("")
    return "\n".join(out)


_INTRO = """\
# Configuration reference

<!-- Generated from the config dataclasses (lib/deepspark/config/) by
`deepspark config reference > docs/CONFIG.md`: edit their comments, not this file. -->

A job's config is read in three layers, each over the one before:

1. the base profile named by the pipeline file's `base:` key, relative to that file
   (`conf/base.yaml`; a base cannot name another base);
2. the pipeline file itself (`conf/flights.yaml`);
3. `key=value` overrides, with dotted keys (`pipeline.train.epochs=5`,
   `spark.settings.spark.sql.shuffle.partitions=4`); the value is read as YAML, so `4` is an int,
   `true` a bool and `[a, b]` a list.

Mappings merge key by key; anything else (a value, a list) is replaced whole. Each file is checked
on its own: an unknown key or a wrong type is an error naming the file and the dotted key. Keys
marked *required* are checked once the layers are merged, so a base file may supply them. A key
left out takes its default. `deepspark config show -c conf/flights.yaml [key=value ...]` prints the
resolved config with the source of every value; `deepspark config schema` prints a JSON Schema of
a config file, for editors and CI.

`<name>` stands for a name you choose (a source, a table, a column), `[]` for any item of a list.
A `float` also accepts an integer; a *section* is a mapping documented in its own table.

Regenerate this file with `deepspark config reference > docs/CONFIG.md`; a test fails when it is
stale.
"""


# --- walking the dataclasses ---------------------------------------------------------------------


def _sections(cls: type, prefix: str) -> Iterator[tuple[str, type, list[ConfigKey]]]:
    """``(prefix, class, keys)`` for ``cls`` and then, depth first, every section below it."""
    hints = get_type_hints(cls)
    fields = _fields(cls)
    yield prefix, cls, [_key(cls, f, hints[f.name], _join(prefix, f.name)) for f in fields]
    for f in fields:
        inner, suffix = _section_of(hints[f.name])
        if inner is not None:
            yield from _sections(inner, _join(prefix, f.name) + suffix)


def _section_of(tp: Any) -> tuple[type | None, str]:
    """The dataclass a field holds, directly or as map values or list items, and its key suffix."""
    tp, suffix = _strip(tp), ""
    if get_origin(tp) in (dict, Mapping, typing.Mapping):
        tp, suffix = _strip(get_args(tp)[1]), ".<name>"
    elif get_origin(tp) is tuple:
        tp, suffix = _strip(get_args(tp)[0]), "[]"
    return (tp, suffix) if dataclasses.is_dataclass(tp) else (None, "")


def _meaning(cls: type, f: dataclasses.Field) -> str:
    """A field's meaning; a section's field without one says what its class docstring says."""
    inner = _section_of(get_type_hints(cls)[f.name])[0]
    return _meanings(cls).get(f.name) or (_summary(inner) if inner else "")


def _key(cls: type, f: dataclasses.Field, tp: Any, key: str) -> ConfigKey:
    has_default, value = _default(f)
    if dataclasses.is_dataclass(_strip(tp)) and f.default_factory is not dataclasses.MISSING:
        default = "*defaults*"  # the table below has them
    else:
        default = f"`{one_line_yaml(value)}`" if has_default else "*required*"
    return ConfigKey(key, _type_text(tp), default, _meaning(cls, f))


def _fields(cls: type) -> list[dataclasses.Field]:
    return [f for f in dataclasses.fields(cls) if f.metadata.get("yaml", True)]


def _default(f: dataclasses.Field) -> tuple[bool, Any]:
    """Whether ``f`` has a default, and the default as plain YAML/JSON data."""
    if f.default is not dataclasses.MISSING:
        return True, to_plain(f.default)
    if f.default_factory is not dataclasses.MISSING:
        return True, to_plain(f.default_factory())
    return False, None


def _strip(tp: Any) -> Any:
    """``X | None`` -> ``X``; anything else as it is."""
    if get_origin(tp) in (Union, types.UnionType):
        rest = [o for o in get_args(tp) if o is not type(None)]
        if len(rest) == 1:
            return rest[0]
    return tp


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _type_text(tp: Any) -> str:
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        options = [o for o in get_args(tp) if o is not type(None)]
        if set(options) == set(_SCALARS):
            text = "scalar (string, number or bool)"
        else:
            text = " or ".join(_type_text(o) for o in options)
        return f"{text} or null" if type(None) in get_args(tp) else text
    if origin is Literal:
        return "one of " + ", ".join(f"`{c}`" for c in get_args(tp))
    if origin in (tuple, dict, Mapping, typing.Mapping):
        item = get_args(tp)[0 if origin is tuple else 1]
        kind = "list" if origin is tuple else "map"
        if dataclasses.is_dataclass(item):
            return f"{kind} of sections"
        joint = ", each" if get_origin(item) is Literal else " of"
        return f"{kind}{joint} {_type_text(item)}"
    if dataclasses.is_dataclass(tp):
        return "section"
    return {str: "string", int: "int", float: "float", bool: "bool"}.get(tp, "any")


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


def _summary(cls: type) -> str:
    """The first paragraph of a class docstring, Sphinx roles (``:mod:``) dropped."""
    text = (inspect.getdoc(cls) or "").split("\n\n")[0].replace("\n", " ")
    return re.sub(r":\w+:`~?", "`", text).replace("``", "`")


def _cell(text: str) -> str:
    """Text for a markdown table cell: pipes escaped, ``<name>`` outside code kept as text."""
    parts = text.replace("``", "`").replace("|", "\\|").split("`")
    # Even parts are outside code spans, where GitHub would read <name> as an HTML tag.
    return "`".join(
        re.sub(r"<(?=[A-Za-z/])", "&lt;", t) if i % 2 == 0 else t for i, t in enumerate(parts)
    )


# --- JSON Schema ----------------------------------------------------------------------------------


def _object(cls: type, defs: dict[str, Any], resolved: bool) -> dict[str, Any]:
    """The schema of one dataclass, without ``type``.

    The place that refers to it says ``object`` or ``[object, null]``: with an ``anyOf`` instead,
    a wrong key in an optional section would be reported as "not valid under any of the schemas".
    """
    hints = get_type_hints(cls)
    props: dict[str, Any] = {}
    required = []
    for f in _fields(cls):
        schema = _schema(hints[f.name], defs, resolved)
        if "pattern" in f.metadata:  # strings must match it too (the loader checks the same)
            schema = _with_pattern(schema, f"^(?:{f.metadata['pattern']})$")
        props[f.name] = {**schema, "description": _meaning(cls, f)}
        has_default, default = _default(f)
        if has_default:
            props[f.name]["default"] = default
        else:
            required.append(f.name)
    obj = {"description": _summary(cls), "additionalProperties": False, "properties": props}
    return {**obj, "required": required} if resolved and required else obj


def _with_pattern(schema: dict[str, Any], pattern: str) -> dict[str, Any]:
    """``schema`` with ``pattern`` on its string alternative (a Literal's enum stays as it is)."""
    if "anyOf" in schema:
        return {**schema, "anyOf": [_with_pattern(s, pattern) for s in schema["anyOf"]]}
    return {**schema, "pattern": pattern} if schema.get("type") == "string" else schema


def _schema(tp: Any, defs: dict[str, Any], resolved: bool) -> dict[str, Any]:
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        subs = [_schema(o, defs, resolved) for o in get_args(tp) if o is not type(None)]
        null = type(None) in get_args(tp)
        if all("type" in s and "enum" not in s for s in subs) and len(subs) > 1:
            names = [n for s in subs for n in _listed(s["type"])]
            if "number" in names and "integer" in names:
                names.remove("integer")  # every integer is a number already
            return {"type": [*names, "null"] if null else names}
        if len(subs) == 1 and null:  # X | None: the loader's None passes wherever null does
            one = subs[0]
            if "enum" in one:
                return {**one, "enum": [*one["enum"], None]}
            return {**one, "type": [*_listed(one["type"]), "null"]}
        return {"anyOf": subs + [{"type": "null"}] * null}  # no such field today
    if origin is Literal:
        return {"enum": list(get_args(tp))}
    if origin is tuple:
        return {"type": "array", "items": _schema(get_args(tp)[0], defs, resolved)}
    if origin in (dict, Mapping, typing.Mapping):
        return {"type": "object", "additionalProperties": _schema(get_args(tp)[1], defs, resolved)}
    if dataclasses.is_dataclass(tp):
        if tp.__name__ not in defs:
            defs[tp.__name__] = {}  # taken before recursing, so a section is built once
            defs[tp.__name__] = _object(tp, defs, resolved)
        return {"type": "object", "$ref": f"#/$defs/{tp.__name__}"}
    return {"type": _SCALARS[tp]} if tp in _SCALARS else {}  # {}: Any


def _listed(names: str | list[str]) -> list[str]:
    return [names] if isinstance(names, str) else list(names)
