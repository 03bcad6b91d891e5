"""The config reference, generated from the dataclasses: the JSON Schema and docs/CONFIG.md.

Both read the one walk of the config dataclasses (:mod:`deepspark.config.fields`): each key's
type, default, meaning (its comment in the dataclass source) and what it does to training, so the
source stays the one truth and ``docs/CONFIG.md`` can be regenerated and tested for staleness.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal, NamedTuple, Union, get_args, get_origin

from deepspark.config.fields import FieldInfo, sections, strip_optional, summary
from deepspark.config.pipeline import Config
from deepspark.config.show import one_line_yaml

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
_SCALARS = {str: "string", int: "integer", float: "number", bool: "boolean"}


class ConfigKey(NamedTuple):
    """One documented key: its path, type, default (markdown), meaning, and learned column.

    ``learned`` says what the key does to training (blank outside ``pipeline.train``).
    """

    key: str
    type: str
    default: str
    meaning: str
    learned: str


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
    return [_key(info) for _prefix, _cls, infos in sections(Config) for info in infos]


def markdown() -> str:
    """The text of ``docs/CONFIG.md``: how files merge, then one table per config section."""
    out = [_INTRO]
    for prefix, cls, infos in sections(Config):
        keys = [_key(info) for info in infos]
        learned = any(k.learned for k in keys)  # a fifth column in pipeline.train's tables
        out += [f"## `{prefix or '<top level>'}`", "", _cell(summary(cls)), ""]
        head = ["Key", "Type", "Default", "Meaning", *(["Learned"] * learned)]
        out += [f"| {' | '.join(head)} |", "|---" * len(head) + "|"]
        for k in keys:
            cells = [f"`{k.key}`", *map(_cell, k[1:4]), *([k.learned] * learned)]
            out.append(f"| {' | '.join(cells)} |")
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

In `pipeline.train`'s tables, *Learned* says whether a key changes what training learns (the
sequence of parameter updates): *yes* keys are in the checkpoint folder's hash, so a new value
trains afresh; after a change to *no* keys, a stopped run resumes from its checkpoint; an
architecture's keys count *if trained*, when it is the model. The features reach training through
their manifest, whose digest is in the hash too.

`<name>` stands for a name you choose (a source, a table, a column), `[]` for any item of a list.
A `float` also accepts an integer; a *section* is a mapping documented in its own table.

Regenerate this file with `deepspark config reference > docs/CONFIG.md`; a test fails when it is
stale.
"""


# --- one key of the walk, as a table row --------------------------------------------------------

# What each group of config/learning.py means in the table's Learned column.
_LEARNED = {
    "changes": "yes",
    "keeps": "no",
    "section": "",  # the section's own table says, key by key
    "architecture": "if trained",
}


def _key(info: FieldInfo) -> ConfigKey:
    direct = dataclasses.is_dataclass(strip_optional(info.type))  # not a map or list of them
    if direct and info.field.default_factory is not dataclasses.MISSING:
        default = "*defaults*"  # the table below has them
    else:
        default = f"`{one_line_yaml(info.default)}`" if info.has_default else "*required*"
    learned = _LEARNED[info.learned] if info.learned else ""
    return ConfigKey(info.path, _type_text(info.type), default, info.meaning, learned)


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
    props: dict[str, Any] = {}
    required = []
    _prefix, _cls, infos = next(sections(cls))  # this section's own keys
    for info in infos:
        f = info.field
        schema = _schema(info.type, defs, resolved)
        if "pattern" in f.metadata:  # strings must match it too (the loader checks the same)
            schema = _with_pattern(schema, f"^(?:{f.metadata['pattern']})$")
        props[f.name] = {**schema, "description": info.meaning}
        if info.has_default:
            props[f.name]["default"] = info.default
        else:
            required.append(f.name)
    obj = {"description": summary(cls), "additionalProperties": False, "properties": props}
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
