"""Schema contracts: column ranges, type names, and the one-line errors at job boundaries."""

from __future__ import annotations

import pytest
from pyspark.sql import types as T

from deepspark.errors import ConfigError, InputError
from deepspark.schema import (
    check_schema,
    ddl,
    expand_columns,
    parse_type,
    require_columns,
    struct_from_config,
)


def test_expand_columns_range_and_plain_name():
    assert expand_columns("p{0..2}") == ["p0", "p1", "p2"]
    assert expand_columns("px{8..10}_v") == ["px8_v", "px9_v", "px10_v"]
    assert expand_columns("p{3..3}") == ["p3"]
    assert expand_columns("plain") == ["plain"]


def test_expand_columns_reversed_range_is_a_config_error():
    with pytest.raises(ConfigError, match=r"^column range 'p\{2\.\.0\}': 0 is below 2$"):
        expand_columns("p{2..0}")


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("string", T.StringType()),
        ("int", T.IntegerType()),
        ("integer", T.IntegerType()),
        ("bigint", T.LongType()),
        ("long", T.LongType()),
        ("short", T.ShortType()),
        ("double", T.DoubleType()),
        ("float", T.FloatType()),
        ("boolean", T.BooleanType()),
        ("date", T.DateType()),
        ("timestamp", T.TimestampType()),
        (" Double ", T.DoubleType()),
        ("array<float>", T.ArrayType(T.FloatType(), containsNull=True)),
        ("array<array<int>>", T.ArrayType(T.ArrayType(T.IntegerType(), True), True)),
    ],
)
def test_parse_type(name, expected):
    assert parse_type(name) == expected


def test_parse_type_unknown_names_the_type_and_the_choices():
    with pytest.raises(ConfigError) as err:
        parse_type("decimal")
    assert str(err.value) == (
        "unknown column type 'decimal' (expected one of: string, int, integer, bigint, long, "
        "short, double, float, boolean, date, timestamp, array<...>)"
    )


def test_struct_from_config_expands_ranges_in_order():
    got = struct_from_config({"id": "bigint", "p{0..1}": "float", "label": "int"})
    assert got == T.StructType(
        [
            T.StructField("id", T.LongType(), True),
            T.StructField("p0", T.FloatType(), True),
            T.StructField("p1", T.FloatType(), True),
            T.StructField("label", T.IntegerType(), True),
        ]
    )
    assert ddl(got) == "id bigint, p0 float, p1 float, label int"


def test_struct_from_config_duplicate_columns():
    with pytest.raises(ConfigError) as err:
        struct_from_config({"p{0..2}": "int", "p1": "int", "a": "string", "p2": "double"})
    assert str(err.value) == "schema declares columns more than once: p1, p2"


def test_require_columns_passes_and_fails_with_one_line():
    require_columns(["a", "b"], ["b"], "where")
    with pytest.raises(InputError) as err:
        require_columns(["a", "c"], ["a", "b"], "where")
    assert str(err.value) == "where: missing column(s) b; available: a, c"


def test_check_schema_allows_extra_columns():
    actual = T.StructType(
        [T.StructField("a", T.IntegerType()), T.StructField("extra", T.StringType())]
    )
    check_schema(actual, T.StructType([T.StructField("a", T.IntegerType())]), "t")


def test_check_schema_missing_column():
    actual = T.StructType([T.StructField("a", T.IntegerType())])
    expected = T.StructType([T.StructField("a", T.IntegerType()), T.StructField("b", T.LongType())])
    with pytest.raises(InputError) as err:
        check_schema(actual, expected, "bronze/t")
    assert str(err.value) == "bronze/t: missing column(s) b; available: a"


def test_check_schema_wrong_types_listed_together():
    actual = T.StructType(
        [
            T.StructField("a", T.IntegerType()),
            T.StructField("b", T.StringType()),
            T.StructField("c", T.ArrayType(T.DoubleType())),
        ]
    )
    expected = T.StructType(
        [
            T.StructField("a", T.LongType()),
            T.StructField("b", T.StringType()),
            T.StructField("c", T.ArrayType(T.FloatType())),
        ]
    )
    with pytest.raises(InputError) as err:
        check_schema(actual, expected, "silver/t")
    assert str(err.value) == (
        "silver/t: wrong column type(s): a is int, expected bigint; "
        "c is array<double>, expected array<float>"
    )
