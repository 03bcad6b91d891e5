"""Schemas as explicit contracts: parsed from config, checked at every job boundary.

Errors list what is missing and what is available, so a renamed column is obvious from one line.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from pyspark.sql import types as T

from deepspark.errors import ConfigError, InputError

_SIMPLE_TYPES: dict[str, T.DataType] = {
    "string": T.StringType(),
    "int": T.IntegerType(),
    "integer": T.IntegerType(),
    "bigint": T.LongType(),
    "long": T.LongType(),
    "short": T.ShortType(),
    "double": T.DoubleType(),
    "float": T.FloatType(),
    "boolean": T.BooleanType(),
    "date": T.DateType(),
    "timestamp": T.TimestampType(),
}
_RANGE = re.compile(r"^(?P<head>[^{}]*)\{(?P<lo>\d+)\.\.(?P<hi>\d+)\}(?P<tail>[^{}]*)$")


def expand_columns(pattern: str) -> list[str]:
    """``"p{0..2}"`` -> ``["p0", "p1", "p2"]``; a name without a range is itself."""
    m = _RANGE.match(pattern)
    if not m:
        return [pattern]
    lo, hi = int(m["lo"]), int(m["hi"])
    if hi < lo:
        raise ConfigError(f"column range {pattern!r}: {hi} is below {lo}")
    return [f"{m['head']}{i}{m['tail']}" for i in range(lo, hi + 1)]


def parse_type(name: str) -> T.DataType:
    """Parse a config type name (``int``, ``double``, ``array<float>``, ...) into a Spark type."""
    text = name.strip().lower()
    if text in _SIMPLE_TYPES:
        return _SIMPLE_TYPES[text]
    if text.startswith("array<") and text.endswith(">"):
        return T.ArrayType(parse_type(text[len("array<") : -1]), containsNull=True)
    raise ConfigError(
        f"unknown column type {name!r} (expected one of: {', '.join(_SIMPLE_TYPES)}, array<...>)"
    )


def struct_from_config(columns: Mapping[str, str]) -> T.StructType:
    """The StructType for a config ``schema:`` mapping, with column ranges expanded."""
    fields = [
        T.StructField(col, parse_type(type_name), nullable=True)
        for pattern, type_name in columns.items()
        for col in expand_columns(pattern)
    ]
    names = [f.name for f in fields]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"schema declares columns more than once: {', '.join(dupes)}")
    return T.StructType(fields)


def require_columns(available: Iterable[str], required: Iterable[str], where: str) -> None:
    """Raise one line naming ``where``, the missing columns and the available ones."""
    have = list(available)
    missing = [c for c in required if c not in have]
    if missing:
        raise InputError(
            f"{where}: missing column(s) {', '.join(missing)}; available: {', '.join(have)}"
        )


def check_schema(actual: T.StructType, expected: T.StructType, where: str) -> None:
    """Every expected column must exist with its declared type (extra columns are allowed)."""
    require_columns(actual.fieldNames(), expected.fieldNames(), where)
    found = {f.name: f.dataType for f in actual.fields}
    wrong = [
        f"{f.name} is {found[f.name].simpleString()}, expected {f.dataType.simpleString()}"
        for f in expected.fields
        if found[f.name] != f.dataType
    ]
    if wrong:
        raise InputError(f"{where}: wrong column type(s): {'; '.join(wrong)}")


def ddl(schema: T.StructType) -> str:
    """A compact one-line rendering of a schema, for logs and manifests."""
    return ", ".join(f"{f.name} {f.dataType.simpleString()}" for f in schema.fields)
