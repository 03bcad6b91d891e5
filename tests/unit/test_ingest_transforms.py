"""Ingest transforms on a real permissive CSV read: parsed rows and precise quarantine reasons."""

from __future__ import annotations

from pyspark.sql import types as T
from pyspark.testing import assertDataFrameEqual

from deepspark.etl.ingest import (
    CORRUPT,
    assemble_arrays,
    parsed_rows,
    unparsed_rows,
    with_corrupt_column,
)
from deepspark.etl.quality import QUARANTINE_SCHEMA

SCHEMA = T.StructType(
    [
        T.StructField("a", T.StringType()),
        T.StructField("b", T.IntegerType()),
        T.StructField("c", T.DoubleType()),
    ]
)


def _read(spark, path, schema):
    """The stage's read: explicit schema plus the corrupt-record column, permissive."""
    return (
        spark.read.schema(with_corrupt_column(schema))
        .option("header", "true")
        .option("mode", "PERMISSIVE")
        .option("columnNameOfCorruptRecord", CORRUPT)
        .csv(str(path))
    )


def _write(tmp_path, name, lines):
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_with_corrupt_column_appends_a_string_column():
    got = with_corrupt_column(SCHEMA)
    assert got.fieldNames() == ["a", "b", "c", CORRUPT]
    assert got[CORRUPT].dataType == T.StringType()
    assert SCHEMA.fieldNames() == ["a", "b", "c"]  # the declared schema is untouched


def test_csv_good_and_bad_lines(spark, tmp_path):
    path = _write(
        tmp_path,
        "t.csv",
        [
            "a,b,c",
            "x,1,1.5",
            "y,2,",  # empty = null: parses
            "z,3",  # too few fields
            "w,x,2.0",  # not an int
            "v,4,1e3",
            "u,5,abc",  # not a double
            "t,6,7.0,extra",  # too many fields
            ",7,0.25",  # empty string column = null: parses
        ],
    )
    raw = _read(spark, path, SCHEMA)

    assertDataFrameEqual(
        parsed_rows(raw),
        spark.createDataFrame(
            [("x", 1, 1.5), ("y", 2, None), ("v", 4, 1000.0), (None, 7, 0.25)], SCHEMA
        ),
    )
    expected_bad = [
        ("t.csv", "ingest", "parse", "expected 3 fields, found 2", "z,3"),
        ("t.csv", "ingest", "parse", "b: x is not a valid int", "w,x,2.0"),
        ("t.csv", "ingest", "parse", "c: abc is not a valid double", "u,5,abc"),
        ("t.csv", "ingest", "parse", "expected 3 fields, found 4", "t,6,7.0,extra"),
    ]
    bad = unparsed_rows(raw, SCHEMA, source="t.csv", fmt="csv")
    assertDataFrameEqual(bad, spark.createDataFrame(expected_bad, QUARANTINE_SCHEMA))


def test_csv_custom_separator_and_null_value(spark, tmp_path):
    path = _write(tmp_path, "t.csv", ["a|b|c", "x|NA|1.0", "y|NA|oops", "z|2.5|2.0", "w|3|NA"])
    raw = (
        spark.read.schema(with_corrupt_column(SCHEMA))
        .option("header", "true")
        .option("sep", "|")
        .option("nullValue", "NA")
        .option("mode", "PERMISSIVE")
        .option("columnNameOfCorruptRecord", CORRUPT)
        .csv(str(path))
    )
    assertDataFrameEqual(
        parsed_rows(raw), spark.createDataFrame([("x", None, 1.0), ("w", 3, None)], SCHEMA)
    )
    expected_bad = [
        ("s", "ingest", "parse", "c: oops is not a valid double", "y|NA|oops"),
        ("s", "ingest", "parse", "b: 2.5 is not a valid int", "z|2.5|2.0"),
    ]
    bad = unparsed_rows(raw, SCHEMA, source="s", fmt="csv", sep="|", null_value="NA")
    assertDataFrameEqual(bad, spark.createDataFrame(expected_bad, QUARANTINE_SCHEMA))


def test_csv_with_only_string_columns(spark, tmp_path):
    # Every value of a string column parses, so only the field count can fail; the reason must
    # still compute (Spark refuses a query that references only the corrupt-record column).
    schema = T.StructType([T.StructField("a", T.StringType()), T.StructField("b", T.StringType())])
    path = _write(tmp_path, "s.csv", ["a,b", "x,y", "only-one", "p,q,r", "m,"])
    raw = _read(spark, path, schema)
    assertDataFrameEqual(parsed_rows(raw), spark.createDataFrame([("x", "y"), ("m", None)], schema))
    expected_bad = [
        ("s", "ingest", "parse", "expected 2 fields, found 1", "only-one"),
        ("s", "ingest", "parse", "expected 2 fields, found 3", "p,q,r"),
    ]
    bad = unparsed_rows(raw, schema, source="s", fmt="csv")
    assertDataFrameEqual(bad, spark.createDataFrame(expected_bad, QUARANTINE_SCHEMA))


def test_json_good_and_bad_records(spark, tmp_path):
    path = _write(
        tmp_path,
        "t.json",
        [
            '{"a": "x", "b": 1, "c": 1.5}',
            '{"a": "y", "b": "two", "c": 2.0}',
            '{"a": "z", "b": 3',
            '{"a": "w"}',
        ],
    )
    raw = (
        spark.read.schema(with_corrupt_column(SCHEMA))
        .option("mode", "PERMISSIVE")
        .option("columnNameOfCorruptRecord", CORRUPT)
        .json(str(path))
    )
    assertDataFrameEqual(
        parsed_rows(raw), spark.createDataFrame([("x", 1, 1.5), ("w", None, None)], SCHEMA)
    )
    expected_bad = [
        ("j", "ingest", "parse", "b: two is not a valid int", '{"a": "y", "b": "two", "c": 2.0}'),
        (
            "j",
            "ingest",
            "parse",
            "malformed JSON record against the declared schema (0 of 3 fields parsed)",
            '{"a": "z", "b": 3',
        ),
    ]
    bad = unparsed_rows(raw, SCHEMA, source="j", fmt="json")
    assertDataFrameEqual(bad, spark.createDataFrame(expected_bad, QUARANTINE_SCHEMA))


def test_assemble_arrays(spark):
    schema = T.StructType(
        [
            T.StructField("id", T.IntegerType()),
            T.StructField("p0", T.FloatType()),
            T.StructField("p1", T.FloatType()),
            T.StructField("p2", T.FloatType()),
            T.StructField("label", T.IntegerType()),
        ]
    )
    df = spark.createDataFrame([(1, 0.0, 1.0, 2.0, 7), (2, 3.0, None, 5.0, 8)], schema)
    got = assemble_arrays(df, {"pixels": "p{0..2}"})
    expected_schema = T.StructType(
        [
            T.StructField("id", T.IntegerType()),
            T.StructField("label", T.IntegerType()),
            T.StructField("pixels", T.ArrayType(T.FloatType(), True)),
        ]
    )
    assertDataFrameEqual(
        got,
        spark.createDataFrame([(1, 7, [0.0, 1.0, 2.0]), (2, 8, [3.0, None, 5.0])], expected_schema),
    )
    assertDataFrameEqual(assemble_arrays(df, {}), df)
