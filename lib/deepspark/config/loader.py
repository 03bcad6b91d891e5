"""Strict YAML -> frozen dataclass loading, driven by the dataclasses' type hints.

Every error names the file and the dotted key, and says what was expected and what was found.
Lists become tuples and mappings become read-only proxies, so a loaded config cannot be mutated.
"""

from __future__ import annotations

import dataclasses
import datetime
import re
import types
import typing
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

import yaml

from deepspark.config.fields import hints, strip_optional, yaml_fields
from deepspark.config.frozen import FrozenMap
from deepspark.errors import ConfigError

T = TypeVar("T")
_MISSING = dataclasses.MISSING


def read_yaml(path: Path) -> dict[str, Any]:
    """Read one YAML file that must hold a mapping (an empty file is an empty mapping)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as e:
        raise ConfigError(f"{path}: config file not found") from e
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        raise ConfigError(f"{path}: invalid YAML{where}: {getattr(e, 'problem', e)}") from e
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, found {_kind(data)}")
    return data


def build(cls: type[T], data: Any, *, file: str, partial: bool = False) -> T:
    """Build ``cls`` from plain YAML data, or only check it when ``partial`` (no required keys)."""
    return _build(cls, data, file=file, key="", partial=partial)


def deep_merge(base: Mapping[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    """Merge ``top`` over ``base``; nested mappings merge, anything else is replaced."""
    out = dict(base)
    for k, v in top.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def non_overrides(items: Iterable[str]) -> list[str]:
    """The items that are not ``key=value`` assignments (command lines and cluster files)."""
    return [o for o in items if "=" not in o]


def apply_override(cls: type, data: dict[str, Any], assignment: str) -> None:
    """Apply one ``a.b.c=value`` override to raw config data, in place.

    The dotted path is walked along the dataclass fields; once it reaches a mapping-typed field the
    rest of the path is one key, so ``spark.settings.spark.sql.shuffle.partitions=4`` works.
    The value is parsed as a YAML scalar (``4`` is an int, ``true`` a bool, ``[a, b]`` a list).
    """
    where = f"command-line override {assignment!r}"
    name, sep, raw = assignment.partition("=")
    if not sep or not name.strip():
        raise ConfigError(f"{where}: expected key=value")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as e:
        raise ConfigError(f"{where}: value is not valid YAML") from e
    node = data
    walked: list[str] = []
    for part, last in _override_keys(cls, name, where):
        walked.append(part)
        if last:
            node[part] = value
            return
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"{where}: {'.'.join(walked)!r} is not a section")


def override_target(cls: type, assignment: str) -> tuple[tuple[str, ...], Any]:
    """The key path and the parsed value of one ``a.b.c=value`` override, as applied to ``cls``.

    The path is what :func:`apply_override` sets: ``spark.settings.spark.sql.shuffle.partitions=4``
    is ``("spark", "settings", "spark.sql.shuffle.partitions")`` and ``4``. ``deepspark config
    show`` uses it to tell which values an override set.

    Raises:
        ConfigError: the same errors :func:`apply_override` raises for the assignment itself.
    """
    holder: dict[str, Any] = {}
    apply_override(cls, holder, assignment)
    name = assignment.partition("=")[0]
    path = tuple(part for part, _last in _override_keys(cls, name, ""))
    node: Any = holder
    for part in path[:-1]:
        node = node[part]
    return path, node[path[-1]]


def _override_keys(cls: type, name: str, where: str) -> Iterator[tuple[str, bool]]:
    """Walk a dotted override key along the dataclass fields: each key with whether it is last.

    Once the walk reaches a mapping-typed field the rest of the path is one key, except in a
    mapping of sections (``pipeline.sources.flights.uri``), where one part names the entry.
    """
    parts = name.strip().split(".")
    tp: Any = cls
    walked: list[str] = []
    while parts:
        tp = strip_optional(tp)
        if dataclasses.is_dataclass(tp):
            part = parts.pop(0)
            fields = {f.name: f for f in yaml_fields(tp)}
            if part not in fields:
                raise ConfigError(
                    f"{where}: unknown key {'.'.join([*walked, part])!r} "
                    f"(expected one of: {', '.join(fields)})"
                )
            walked.append(part)
            yield part, not parts
            tp = hints(tp)[part]
        elif get_origin(tp) in (dict, Mapping, typing.Mapping):
            val_tp = strip_optional(get_args(tp)[1])
            if dataclasses.is_dataclass(val_tp) and len(parts) > 1:
                part = parts.pop(0)
                walked.append(part)
                yield part, False
                tp = val_tp
                continue
            yield ".".join(parts), True
            return
        else:
            raise ConfigError(f"{where}: {'.'.join(walked)!r} is not a section")


def _build(tp: Any, value: Any, *, file: str, key: str, partial: bool) -> Any:
    at = f"{file}: {key or '<top>'}"
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        options = get_args(tp)
        if value is None and type(None) in options:
            return None
        non_none = [o for o in options if o is not type(None)]
        if len(non_none) == 1:
            return _build(non_none[0], value, file=file, key=key, partial=partial)
        for option in non_none:
            try:
                return _build(option, value, file=file, key=key, partial=partial)
            except ConfigError:
                continue
        names = " or ".join(_type_name(o) for o in non_none)
        raise ConfigError(f"{at}: expected {names}, found {_kind(value)} {value!r}")
    if dataclasses.is_dataclass(tp):
        return _build_dataclass(tp, value, file=file, key=key, partial=partial)
    if origin is Literal:
        choices = get_args(tp)
        if value not in choices:
            raise ConfigError(
                f"{at}: expected one of {', '.join(map(str, choices))}, found {value!r}"
            )
        return value
    if origin is tuple:
        if not isinstance(value, Sequence) or isinstance(value, str):
            raise ConfigError(f"{at}: expected a list, found {_kind(value)} {value!r}")
        (item_tp, *_rest) = get_args(tp)
        return tuple(
            _build(item_tp, v, file=file, key=f"{key}[{i}]", partial=partial)
            for i, v in enumerate(value)
        )
    if origin in (dict, Mapping, typing.Mapping):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{at}: expected a mapping, found {_kind(value)} {value!r}")
        _key_tp, val_tp = get_args(tp)
        built = {
            str(k): _build(
                val_tp, v, file=file, key=f"{key}.{k}" if key else str(k), partial=partial
            )
            for k, v in value.items()
        }
        return FrozenMap(built)
    return _build_scalar(tp, value, at)


def _build_scalar(tp: Any, value: Any, at: str) -> Any:
    # bool is an int subclass in Python: refuse it where a number is expected, and vice versa.
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    elif tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, datetime.date):
            # YAML reads an unquoted 2013-10-01T00:00:00Z as a datetime: keep it as ISO text.
            return value.isoformat()
    elif tp is Any:
        return value
    else:  # pragma: no cover - a type hint this loader does not know is a programming error
        raise TypeError(f"unsupported config type {tp!r}")
    raise ConfigError(f"{at}: expected {_type_name(tp)}, found {_kind(value)} {value!r}")


def _build_dataclass(cls: type, value: Any, *, file: str, key: str, partial: bool) -> Any:
    at = f"{file}: {key or '<top>'}"
    if not isinstance(value, Mapping):
        raise ConfigError(f"{at}: expected a mapping, found {_kind(value)} {value!r}")
    fields = {f.name: f for f in yaml_fields(cls)}
    unknown = [k for k in value if k not in fields]
    if unknown:
        bad = f"{key}.{unknown[0]}" if key else str(unknown[0])
        hint = ""
        if isinstance(unknown[0], bool):
            # YAML 1.1 reads on/off/yes/no as booleans: `on:` arrives here as True.
            hint = "; a bare on/off/yes/no key is a boolean in YAML, quote it"
        raise ConfigError(
            f"{file}: unknown key {bad!r} (expected one of: {', '.join(fields) or 'nothing'}){hint}"
        )
    types_of = hints(cls)
    kwargs: dict[str, Any] = {}
    for name, f in fields.items():
        sub = f"{key}.{name}" if key else name
        if name in value:
            kwargs[name] = _build(types_of[name], value[name], file=file, key=sub, partial=partial)
            _check_pattern(f, types_of[name], kwargs[name], f"{file}: {sub}")
        elif f.default is _MISSING and f.default_factory is _MISSING and not partial:
            raise ConfigError(f"{file}: missing required key {sub!r}")
    if partial:
        return None
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as e:
        raise ConfigError(f"{at}: {e}") from e


def _check_pattern(f: dataclasses.Field, tp: Any, value: Any, at: str) -> None:
    """A string field's ``pattern`` (metadata) holds, or the value is one of its Literal choices.

    ``pipeline.train.model``: a built-in name or ``package.module:factory``; checked here so the
    error names the key, as the type checks do (``__post_init__`` errors name the section).
    """
    pattern = f.metadata.get("pattern")
    if pattern is None or not isinstance(value, str) or re.fullmatch(pattern, value):
        return
    choices = [c for o in get_args(tp) if get_origin(o) is Literal for c in get_args(o)]
    if value not in choices:
        raise ConfigError(f"{at}: expected {f.metadata.get('expected', pattern)}, found {value!r}")


def _type_name(tp: Any) -> str:
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    if get_origin(tp) is tuple:
        return "a list"
    if get_origin(tp) in (dict, Mapping, typing.Mapping):
        return "a mapping"
    return getattr(tp, "__name__", str(tp))


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    return {dict: "a mapping", list: "a list"}.get(type(value), type(value).__name__)
