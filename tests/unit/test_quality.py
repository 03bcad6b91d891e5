"""Row rules and the quarantine: first broken rule wins, every row lands exactly once."""

from __future__ import annotations

import pytest
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.testing import assertDataFrameEqual

from deepspark.etl.quality import (
    QUARANTINE_SCHEMA,
    VIOLATION,
    clean_rows,
    mark_duplicates,
    mark_violations,
    quarantined_rows,
    range_rule,
    required_rule,
)

SCHEMA = T.StructType(
    [
        T.StructField("id", T.IntegerType()),
        T.StructField("name", T.StringType()),
        T.StructField("x", T.DoubleType()),
    ]
)
ROWS = [
    (1, "a", 5.0),  # clean
    (2, None, -1.0),  # breaks required:name and range:x -> required:name (first rule)
    (3, "c", 11.0),  # breaks range:x only
    (4, "d", None),  # null passes the range
    (5, "e", 0.0),  # bounds are inclusive
    (6, "f", 10.0),
]
VIOLATION_SCHEMA = T.StructType(
    [
        T.StructField("id", T.IntegerType()),
        T.StructField("rule", T.StringType()),
        T.StructField("reason", T.StringType()),
    ]
)


@pytest.fixture
def table(spark):
    return spark.createDataFrame(ROWS, SCHEMA)


def _violations(marked):
    """Just (id, rule, reason) of a marked table, nulls for clean rows."""
    return marked.select(
        "id", F.col(f"{VIOLATION}.rule").alias("rule"), F.col(f"{VIOLATION}.reason").alias("reason")
    )


def test_range_rule_both_bounds(spark, table):
    marked = mark_violations(table, [range_rule("x", 0, 10)])
    expected = [
        (1, None, None),
        (2, "range:x", "x=-1.0 outside [0, 10]"),
        (3, "range:x", "x=11.0 outside [0, 10]"),
        (4, None, None),
        (5, None, None),
        (6, None, None),
    ]
    assertDataFrameEqual(_violations(marked), spark.createDataFrame(expected, VIOLATION_SCHEMA))


def test_range_rule_only_min(spark, table):
    marked = mark_violations(table, [range_rule("x", 0.5, None)])
    expected = [
        (1, None, None),
        (2, "range:x", "x=-1.0 outside [0.5, inf]"),
        (3, None, None),
        (4, None, None),
        (5, "range:x", "x=0.0 outside [0.5, inf]"),
        (6, None, None),
    ]
    assertDataFrameEqual(_violations(marked), spark.createDataFrame(expected, VIOLATION_SCHEMA))


def test_range_rule_only_max(spark, table):
    marked = mark_violations(table, [range_rule("x", None, 10)])
    expected = [
        (1, None, None),
        (2, None, None),
        (3, "range:x", "x=11.0 outside [-inf, 10]"),
        (4, None, None),
        (5, None, None),
        (6, None, None),
    ]
    assertDataFrameEqual(_violations(marked), spark.createDataFrame(expected, VIOLATION_SCHEMA))


def test_range_rule_on_int_column(spark):
    df = spark.createDataFrame([(1, 7), (2, 120)], "id int, age int")
    got = mark_violations(df, [range_rule("age", 0, 99)])
    expected = [(1, None, None), (2, "range:age", "age=120 outside [0, 99]")]
    assertDataFrameEqual(_violations(got), spark.createDataFrame(expected, VIOLATION_SCHEMA))


def test_required_rule(spark, table):
    marked = mark_violations(table, [required_rule("name"), required_rule("x")])
    expected = [
        (1, None, None),
        (2, "required:name", "name is null"),
        (3, None, None),
        (4, "required:x", "x is null"),
        (5, None, None),
        (6, None, None),
    ]
    assertDataFrameEqual(_violations(marked), spark.createDataFrame(expected, VIOLATION_SCHEMA))


def test_mark_violations_records_the_first_broken_rule(spark, table):
    rules = [required_rule("name"), range_rule("x", 0, 10)]
    expected = [
        (1, None, None),
        (2, "required:name", "name is null"),
        (3, "range:x", "x=11.0 outside [0, 10]"),
        (4, None, None),
        (5, None, None),
        (6, None, None),
    ]
    got = _violations(mark_violations(table, rules))
    assertDataFrameEqual(got, spark.createDataFrame(expected, VIOLATION_SCHEMA))
    # The other order: row 2 now reports the range.
    got = _violations(mark_violations(table, rules[::-1]))
    assert got.filter("id = 2").collect()[0]["rule"] == "range:x"


def test_mark_violations_without_rules_keeps_every_row(spark, table):
    marked = mark_violations(table, [])
    assert marked.schema[VIOLATION].dataType.simpleString() == "struct<rule:string,reason:string>"
    assertDataFrameEqual(clean_rows(marked), table)
    assert quarantined_rows(marked, source="s", stage="clean").count() == 0


def test_clean_and_quarantined_rows_partition_the_input(spark, table):
    marked = mark_violations(table, [required_rule("name"), range_rule("x", 0, 10)])
    clean = clean_rows(marked)
    bad = quarantined_rows(marked, source="t", stage="clean")

    assertDataFrameEqual(
        clean,
        spark.createDataFrame([r for r in ROWS if r[0] in (1, 4, 5, 6)], SCHEMA),
    )
    expected_bad = [
        ("t", "clean", "required:name", "name is null", '{"id":2,"name":null,"x":-1.0}'),
        ("t", "clean", "range:x", "x=11.0 outside [0, 10]", '{"id":3,"name":"c","x":11.0}'),
    ]
    assertDataFrameEqual(bad, spark.createDataFrame(expected_bad, QUARANTINE_SCHEMA))
    assert [f.name for f in bad.schema] == QUARANTINE_SCHEMA.fieldNames()

    # Every input row exactly once: the clean ids and the quarantined records' ids.
    bad_ids = [
        r["id"]
        for r in bad.select(F.from_json("record", "id int").alias("r")).select("r.*").collect()
    ]
    clean_ids = [r["id"] for r in clean.collect()]
    assert sorted(clean_ids + bad_ids) == [r[0] for r in ROWS]


def test_quarantine_record_keeps_null_fields(spark):
    schema = T.StructType(
        [
            T.StructField("id", T.IntegerType()),
            T.StructField("a", T.StringType()),
            T.StructField("b", T.DoubleType()),
            T.StructField("c", T.ArrayType(T.IntegerType())),
        ]
    )
    df = spark.createDataFrame([(1, None, None, None)], schema)
    bad = quarantined_rows(mark_violations(df, [required_rule("a")]), source="s", stage="x")
    assert bad.collect()[0]["record"] == '{"id":1,"a":null,"b":null,"c":null}'


DUP_SCHEMA = T.StructType(
    [
        T.StructField("k", T.IntegerType()),
        T.StructField("b", T.StringType()),
        T.StructField("a", T.IntegerType()),
    ]
)
DUP_ROWS = [
    (1, "z", 3),
    (1, "y", 1),
    (1, None, 1),  # smallest by (a, b) with nulls first: kept
    (1, "x", None),  # a null sorts first: this one is kept over all above
    (2, "q", 9),  # alone: kept
    (3, "m", 5),
    (3, "m", 5),  # an exact copy: one of the two is kept
]


def test_mark_duplicates_keeps_smallest_row_by_other_columns(spark):
    df = spark.createDataFrame(DUP_ROWS, DUP_SCHEMA)
    marked = mark_duplicates(df, ["k"])
    kept = clean_rows(marked)
    assertDataFrameEqual(
        kept, spark.createDataFrame([(1, "x", None), (2, "q", 9), (3, "m", 5)], DUP_SCHEMA)
    )
    dup = quarantined_rows(marked, source="s", stage="clean")
    expected = [
        ("s", "clean", "duplicate", "duplicate of key (k=1)", '{"k":1,"b":"z","a":3}'),
        ("s", "clean", "duplicate", "duplicate of key (k=1)", '{"k":1,"b":"y","a":1}'),
        ("s", "clean", "duplicate", "duplicate of key (k=1)", '{"k":1,"b":null,"a":1}'),
        ("s", "clean", "duplicate", "duplicate of key (k=3)", '{"k":3,"b":"m","a":5}'),
    ]
    assertDataFrameEqual(dup, spark.createDataFrame(expected, QUARANTINE_SCHEMA))


def test_mark_duplicates_is_independent_of_partitioning(spark):
    df = spark.createDataFrame(DUP_ROWS, DUP_SCHEMA)
    one = clean_rows(mark_duplicates(df.coalesce(1), ["k"])).collect()
    for n in (2, 3):
        shuffled = df.repartition(n, F.rand(seed=n)).sortWithinPartitions(F.rand(seed=n + 1))
        assertDataFrameEqual(clean_rows(mark_duplicates(shuffled, ["k"])), one)


def test_mark_duplicates_composite_key_reason(spark):
    df = spark.createDataFrame([(1, "x", 2), (1, "x", 1), (1, "w", 5)], "k int, d string, v int")
    dup = quarantined_rows(mark_duplicates(df, ["k", "d"]), source="s", stage="clean")
    expected = [("s", "clean", "duplicate", "duplicate of key (k=1, d=x)", '{"k":1,"d":"x","v":2}')]
    assertDataFrameEqual(dup, spark.createDataFrame(expected, QUARANTINE_SCHEMA))


def test_mark_duplicates_null_key_is_named_in_the_reason(spark):
    df = spark.createDataFrame([(None, 2), (None, 1)], "k int, v int")
    marked = mark_duplicates(df, ["k"])
    assertDataFrameEqual(clean_rows(marked), spark.createDataFrame([(None, 1)], "k int, v int"))
    dup = quarantined_rows(marked, source="s", stage="clean").collect()
    assert [(r["reason"], r["record"]) for r in dup] == [
        ("duplicate of key (k=null)", '{"k":null,"v":2}')
    ]


@pytest.mark.parametrize(("lo", "hi"), [(0.0, None), (None, 10.0), (0.0, 10.0)])
def test_nan_is_outside_every_range(spark, lo, hi):
    schema = T.StructType([T.StructField("v", T.DoubleType())])
    df = spark.createDataFrame([(float("nan"),), (5.0,), (None,)], schema)
    marked = mark_violations(df, [range_rule("v", lo, hi)])
    got = marked.select(F.col("_violation.rule").alias("rule")).collect()
    assert [r["rule"] for r in got] == ["range:v", None, None]


def test_mark_duplicates_ranks_only_rows_that_broke_no_rule(spark):
    # v=-1 breaks the range and is the smallest row of key 1: it keeps its own violation and
    # is not "the kept one", so v=5 is kept and only v=7 is a duplicate.
    df = spark.createDataFrame([(1, -1), (1, 7), (1, 5), (2, -3)], "k int, v int")
    marked = mark_duplicates(mark_violations(df, [range_rule("v", 0, None)]), ["k"])
    got = marked.select("k", "v", F.col(f"{VIOLATION}.rule").alias("rule"))
    expected = [(1, -1, "range:v"), (1, 5, None), (1, 7, "duplicate"), (2, -3, "range:v")]
    assertDataFrameEqual(got, spark.createDataFrame(expected, "k int, v int, rule string"))
