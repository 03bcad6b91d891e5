"""Cleaning: native HMAC pseudonyms, timestamp normalization, and the whole clean_table split."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime

import pytest
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.testing import assertDataFrameEqual, assertSchemaEqual

from deepspark.config.pipeline import CleanConfig, RangeRule, TimestampRule
from deepspark.etl.clean import (
    clean_table,
    fill_nulls,
    hmac_sha256_hex,
    pseudonymize,
    timestamp_expr,
    with_key_pads,
)
from deepspark.etl.quality import QUARANTINE_SCHEMA

KEY = b"unit-test-key-0123456789"
VALUES = ["N14228", "N24211", "", "ünïcödé ✈ 東京", "a" * 200, None]


def _hmac(key: bytes, value: str | None) -> str | None:
    if value is None:
        return None
    return hmac.new(key, value.encode("utf-8"), hashlib.sha256).hexdigest()


def _utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


KEYS = {
    "short": KEY,
    "one_byte": b"k",
    "block_size": bytes(range(64)),
    "longer_than_block": b"a-key-longer-than-the-sha256-block-" * 4,  # hashed first (RFC 2104)
}


def test_hmac_sha256_hex_matches_python_hmac(spark):
    df = spark.createDataFrame([(i, v) for i, v in enumerate(VALUES)], "i int, v string")
    for name, key in KEYS.items():
        pads = (f"{name}_ipad", f"{name}_opad")
        df = with_key_pads(df, key, pads)
        df = df.withColumn(name, hmac_sha256_hex(F.col("v"), *map(F.col, pads))).drop(*pads)
    rows = sorted(df.collect(), key=lambda r: r["i"])
    for name, key in KEYS.items():
        assert [r[name] for r in rows] == [_hmac(key, v) for v in VALUES], name
        assert rows[-1][name] is None  # null stays null
    # Each key gives its own pseudonyms.
    assert len({rows[0][name] for name in KEYS}) == len(KEYS)


def test_pseudonymize_is_stable_so_joins_still_work(spark):
    left = spark.createDataFrame([("N1", 1), ("N2", 2), (None, 3)], "tail string, a int")
    right = spark.createDataFrame([("N2", "x"), ("N1", "y"), ("N3", "z")], "tail string, b string")
    pl, pr = pseudonymize(left, ("tail",), KEY), pseudonymize(right, ("tail",), KEY)
    joined = pl.join(pr, "tail").select("a", "b")
    assertDataFrameEqual(joined, spark.createDataFrame([(1, "y"), (2, "x")], "a int, b string"))
    assertDataFrameEqual(
        pl,
        spark.createDataFrame(
            [(_hmac(KEY, "N1"), 1), (_hmac(KEY, "N2"), 2), (None, 3)], "tail string, a int"
        ),
    )


def test_fill_nulls(spark):
    df = spark.createDataFrame([(None, None, 1), ("a", 2.5, None)], "s string, d double, i int")
    got = fill_nulls(df, {"s": "none", "d": 0.0})
    assertDataFrameEqual(
        got,
        spark.createDataFrame([("none", 0.0, 1), ("a", 2.5, None)], "s string, d double, i int"),
    )


def test_timestamp_expr_parses_a_string_with_an_offset(spark):
    rule = TimestampRule(column="t", format="yyyy-MM-dd'T'HH:mm:ssX")
    df = spark.createDataFrame(
        [
            (1, "2013-01-01T05:17:00Z"),
            (2, "2013-07-01T12:00:00-04"),
            (3, "2013-07-01T12:00:00+0530"),
            (4, "2013-07-01 12:00:00"),  # wrong format
            (5, "not a time"),
            (6, None),
        ],
        "i int, t string",
    )
    got = df.select("i", timestamp_expr(rule).alias("ts"))
    expected = [
        (1, _utc(2013, 1, 1, 5, 17)),
        (2, _utc(2013, 7, 1, 16, 0)),
        (3, _utc(2013, 7, 1, 6, 30)),
        (4, None),
        (5, None),
        (6, None),
    ]
    assertDataFrameEqual(got, spark.createDataFrame(expected, "i int, ts timestamp"))


def test_timestamp_expr_string_in_a_local_timezone(spark):
    rule = TimestampRule(column="t", format="yyyy-MM-dd HH:mm", timezone="America/New_York")
    df = spark.createDataFrame(
        [(1, "2013-01-15 08:30"), (2, "2013-07-15 08:30")], "i int, t string"
    )
    got = df.select("i", timestamp_expr(rule).alias("ts"))
    expected = [(1, _utc(2013, 1, 15, 13, 30)), (2, _utc(2013, 7, 15, 12, 30))]
    assertDataFrameEqual(got, spark.createDataFrame(expected, "i int, ts timestamp"))


CLOCK = TimestampRule(fields=("year", "month", "day", "hhmm"), timezone="America/New_York")


def test_timestamp_expr_from_local_clock_fields(spark):
    rows = [
        (1, 2013, 1, 1, 517, _utc(2013, 1, 1, 10, 17)),  # EST, UTC-5
        (2, 2013, 7, 1, 1200, _utc(2013, 7, 1, 16, 0)),  # EDT, UTC-4
        (3, 2013, 1, 1, 0, _utc(2013, 1, 1, 5, 0)),  # start of the day
        (4, 2013, 1, 1, 2400, _utc(2013, 1, 2, 5, 0)),  # 24:00 = next day's 00:00 EST
        (5, 2013, 7, 1, 2400, _utc(2013, 7, 2, 4, 0)),  # next day's 00:00 EDT
        (6, 2013, 12, 31, 2400, _utc(2014, 1, 1, 5, 0)),  # across the year
        (7, 2013, 3, 9, 2400, _utc(2013, 3, 10, 5, 0)),  # night before spring forward
        (8, 2013, 11, 2, 2400, _utc(2013, 11, 3, 4, 0)),  # night before fall back (still EDT)
        (9, 2013, 3, 10, 1200, _utc(2013, 3, 10, 16, 0)),  # spring-forward day, after the jump
        (10, 2013, 13, 1, 600, None),  # month 13
        (11, 2013, 1, 1, 2460, None),  # minute 60 of hour 24
        (12, 2013, 1, 1, 2430, None),  # only 24:00 is allowed past 23:59
        (13, 2013, 1, 1, 1260, None),  # minute 60
        (14, 2013, 2, 30, 1200, None),  # no such day
        (15, 2013, 1, 1, 2500, None),
        (16, None, 1, 1, 1200, None),
        (17, 2013, 1, 1, None, None),
    ]
    schema = "i int, year int, month int, day int, hhmm int"
    df = spark.createDataFrame([r[:5] for r in rows], schema)
    got = df.select("i", timestamp_expr(CLOCK).alias("ts"))
    expected = spark.createDataFrame([(r[0], r[5]) for r in rows], "i int, ts timestamp")
    assertDataFrameEqual(got, expected)


SRC = T.StructType(
    [
        T.StructField("flight", T.IntegerType()),
        T.StructField("tailnum", T.StringType()),
        T.StructField("carrier", T.StringType()),
        T.StructField("year", T.IntegerType()),
        T.StructField("month", T.IntegerType()),
        T.StructField("day", T.IntegerType()),
        T.StructField("hhmm", T.IntegerType()),
        T.StructField("delay", T.DoubleType()),
        T.StructField("note", T.StringType()),
    ]
)
SPEC = CleanConfig(
    dedupe=("flight", "dep_time"),
    required=("carrier",),
    fill={"note": "none"},
    ranges={"delay": RangeRule(min=-60, max=1440)},
    timestamps={"dep_time": CLOCK},
    pseudonymize=("tailnum",),
)


def test_clean_table_end_to_end(spark):
    rows = [
        (1, "N1", "AA", 2013, 1, 1, 517, 2.0, "x"),  # duplicate of the next, larger delay: out
        (1, "N1", "AA", 2013, 1, 1, 517, 1.0, "z"),  # kept: smallest by the other columns
        (2, "N2", None, 2013, 1, 1, 600, -100.0, None),  # required first, though range breaks too
        (3, "N3", "UA", 2013, 13, 1, 600, 1.0, "y"),  # not a valid local time
        (4, "N4", "UA", 2013, 7, 1, 1200, -100.0, None),  # range
        (5, None, "B6", 2013, 7, 1, 2400, None, None),  # clean: nulls pass, 24:00 is next day
        (7, "N7", "AA", None, None, None, None, 5.0, "w"),  # no clock fields at all: no time
        (8, "N8", "AA", 2013, 1, 1, 2460, 0.0, "v"),  # not a valid local time
        (9, "N9", "DL", 2013, 1, 1, 517, 1440.0, "u"),  # inclusive bound, another flight
    ]
    df = spark.createDataFrame(rows, SRC)
    clean, quarantine = clean_table(df, SPEC, source="flights", key=KEY)

    h = {t: _hmac(KEY, t) for t in ("N1", "N2", "N3", "N4", "N7", "N8", "N9")}
    clean_schema = T.StructType([*SRC.fields, T.StructField("dep_time", T.TimestampType())])
    expected_clean = [
        (1, h["N1"], "AA", 2013, 1, 1, 517, 1.0, "z", _utc(2013, 1, 1, 10, 17)),
        (5, None, "B6", 2013, 7, 1, 2400, None, "none", _utc(2013, 7, 2, 4, 0)),
        (7, h["N7"], "AA", None, None, None, None, 5.0, "w", None),
        (9, h["N9"], "DL", 2013, 1, 1, 517, 1440.0, "u", _utc(2013, 1, 1, 10, 17)),
    ]
    clean_rows = clean.collect()
    assertSchemaEqual(clean.schema, clean_schema)
    assertDataFrameEqual(clean_rows, spark.createDataFrame(expected_clean, clean_schema))

    def rec(flight, tail, carrier, y, m, d, hhmm, delay, note, extra=""):
        carrier = "null" if carrier is None else f'"{carrier}"'
        return (
            f'{{"flight":{flight},"tailnum":"{h[tail]}","carrier":{carrier},"year":{y},'
            f'"month":{m},"day":{d},"hhmm":{hhmm},"delay":{delay},"note":"{note}"{extra}}}'
        )

    ny = "a valid local time in America/New_York"
    expected_quarantine = [
        (
            "required:carrier",
            "carrier is null",
            rec(2, "N2", None, 2013, 1, 1, 600, -100.0, "none"),
        ),
        (
            "timestamp:dep_time",
            f"year=2013 month=13 day=1 hhmm=600 is not {ny}",
            rec(3, "N3", "UA", 2013, 13, 1, 600, 1.0, "y"),
        ),
        (
            "range:delay",
            "delay=-100.0 outside [-60, 1440]",
            rec(4, "N4", "UA", 2013, 7, 1, 1200, -100.0, "none"),
        ),
        (
            "timestamp:dep_time",
            f"year=2013 month=1 day=1 hhmm=2460 is not {ny}",
            rec(8, "N8", "AA", 2013, 1, 1, 2460, 0.0, "v"),
        ),
        (
            "duplicate",
            "duplicate of key (flight=1, dep_time=2013-01-01 10:17:00)",
            # Like every quarantine record: the row as it arrived (pseudonymized), nothing derived.
            rec(1, "N1", "AA", 2013, 1, 1, 517, 2.0, "x"),
        ),
    ]
    bad_rows = quarantine.collect()
    assertSchemaEqual(quarantine.schema, QUARANTINE_SCHEMA)
    assertDataFrameEqual(
        bad_rows,
        spark.createDataFrame(
            [("flights", "clean", *q) for q in expected_quarantine], QUARANTINE_SCHEMA
        ),
    )
    # rows_in == clean + quarantined: with both sides exact above, every row is there once.
    assert len(clean_rows) + len(bad_rows) == len(rows)


def test_clean_table_without_rules_passes_everything(spark):
    df = spark.createDataFrame([(1, "a")], "i int, s string")
    clean, quarantine = clean_table(df, CleanConfig(), source="t", key=None)
    assertDataFrameEqual(clean, df)
    assert quarantine.count() == 0
    assert quarantine.schema.fieldNames() == QUARANTINE_SCHEMA.fieldNames()


def test_clean_table_pseudonymize_needs_a_key(spark):
    df = spark.createDataFrame([(1, "a")], "i int, s string")
    with pytest.raises(ValueError, match="pseudonymize needs a key"):
        clean_table(df, CleanConfig(pseudonymize=("s",)), source="t", key=None)


def test_clean_table_string_timestamp_replaces_its_column(spark):
    fmt = "yyyy-MM-dd'T'HH:mm:ssX"
    spec = CleanConfig(timestamps={"t": TimestampRule(column="t", format=fmt)}, dedupe=("t",))
    df = spark.createDataFrame(
        [
            (1, "2013-01-01T05:17:00Z"),
            (2, "2013-01-01T00:17:00-05"),  # the same instant as row 1: a duplicate
            (3, "01/01/2013 05:17"),
            (4, None),
        ],
        "i int, t string",
    )
    clean, quarantine = clean_table(df, spec, source="s", key=None)
    assertDataFrameEqual(
        clean,
        spark.createDataFrame([(1, _utc(2013, 1, 1, 5, 17)), (4, None)], "i int, t timestamp"),
    )
    # A rule's record keeps the raw text; a duplicate's record has the parsed timestamp.
    expected = [
        (
            "s",
            "clean",
            "timestamp:t",
            f"t=01/01/2013 05:17 is not format {fmt!r}",
            '{"i":3,"t":"01/01/2013 05:17"}',
        ),
        (
            "s",
            "clean",
            "duplicate",
            "duplicate of key (t=2013-01-01 05:17:00)",
            '{"i":2,"t":"2013-01-01T00:17:00-05"}',  # the raw text, as the source said it
        ),
    ]
    assertDataFrameEqual(quarantine, spark.createDataFrame(expected, QUARANTINE_SCHEMA))
