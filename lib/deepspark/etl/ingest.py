"""Pure transforms of ingest: split a permissive read into parsed rows and quarantined raw lines.

The stage reads raw CSV/JSON with an explicit schema plus Spark's corrupt-record column; rows that
do not parse keep their raw text there. This module turns those into quarantine records with a
precise reason (which field, which value, which type) using native expressions only.
"""

from __future__ import annotations

from collections.abc import Mapping

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from deepspark.etl.quality import QUARANTINE_SCHEMA as BASE_QUARANTINE_SCHEMA
from deepspark.schema import expand_columns

CORRUPT = "_corrupt_record"
STAGE = "ingest"
RAW_BYTES = "_raw_bytes"
UNDECODABLE = "_undecodable"
# What a UTF-8 decoder puts in place of bytes that are not UTF-8. A valid file may hold the
# character itself (EF BF BD); such a row is quarantined too, with its bytes, to be looked at.
REPLACEMENT = "\ufffd"
LATIN1 = "ISO-8859-1"  # one character per byte: a re-read in it keeps every byte
# The ingest quarantine: the common one, plus the raw bytes of a record that is not UTF-8.
QUARANTINE_SCHEMA = T.StructType(
    [*BASE_QUARANTINE_SCHEMA.fields, T.StructField("raw_base64", T.StringType(), True)]
)


def with_corrupt_column(schema: T.StructType) -> T.StructType:
    """The read schema: the declared columns plus Spark's raw-text column for bad rows."""
    return T.StructType([*schema.fields, T.StructField(CORRUPT, T.StringType(), True)])


def parsed_rows(raw: DataFrame) -> DataFrame:
    """Rows that parsed against the schema, without the corrupt-record column.

    After :func:`with_undecodable`, rows whose text was not valid UTF-8 are left out too:
    :func:`unparsed_rows` quarantines them with their bytes.
    """
    if UNDECODABLE in raw.columns:
        return raw.filter(F.col(CORRUPT).isNull() & ~F.col(UNDECODABLE)).drop(CORRUPT, UNDECODABLE)
    return raw.filter(F.col(CORRUPT).isNull()).drop(CORRUPT)


def with_undecodable(raw: DataFrame, schema: T.StructType) -> DataFrame:
    """``raw`` flagging rows with text that is not UTF-8, once per row (see :func:`undecodable`)."""
    return raw.withColumn(UNDECODABLE, undecodable(schema))


def undecodable(schema: T.StructType) -> Column:
    """True where a string field holds U+FFFD: bytes that did not decode as UTF-8."""
    hits = [
        F.coalesce(F.col(f.name).contains(REPLACEMENT), F.lit(False))
        for f in schema.fields
        if isinstance(f.dataType, T.StringType)
    ]
    out = F.lit(False)
    for hit in hits:
        out = out | hit
    return out


def from_latin1(raw: DataFrame, schema: T.StructType) -> DataFrame:
    """A read in ISO-8859-1 of UTF-8 text -> as read in UTF-8, plus each record's raw bytes.

    ``_raw_bytes`` holds the unparseable line's bytes, or for a row that parsed, its fields as
    JSON in their original bytes; text columns are then decoded as UTF-8 (U+FFFD for bytes that
    are not), as a UTF-8 read would have given them.
    """
    strings = [f.name for f in schema.fields if isinstance(f.dataType, T.StringType)]
    row_json = F.to_json(F.struct(*[F.col(f.name) for f in schema.fields]))
    source = F.coalesce(F.col(CORRUPT), row_json)
    decoded = {c: utf8_text(F.encode(F.col(c), LATIN1)) for c in [*strings, CORRUPT]}
    return raw.withColumn(RAW_BYTES, F.encode(source, LATIN1)).withColumns(decoded)


def utf8_text(data: Column) -> Column:
    """Bytes as UTF-8 text, U+FFFD for what is not UTF-8 (as Spark's CSV reader decodes)."""
    if hasattr(F, "make_valid_utf8"):  # Spark 4: decode() raises on bad bytes under ANSI
        return F.make_valid_utf8(data.cast("string"))
    return F.decode(data, "UTF-8")  # Spark 3.5: replaces them


def is_utf8(data: Column) -> Column:
    """Whether bytes are valid UTF-8."""
    if hasattr(F, "is_valid_utf8"):
        return F.is_valid_utf8(data.cast("string"))
    return F.encode(F.decode(data, "UTF-8"), "UTF-8") == data


def unparsed_rows(
    raw: DataFrame,
    schema: T.StructType,
    *,
    source: str,
    fmt: str,
    sep: str = ",",
    null_value: str = "",
) -> DataFrame:
    """Rows that did not parse, as quarantine records: the raw line and why it failed.

    After :func:`from_latin1`, rows that parsed but hold text that is not UTF-8 are quarantined
    too (rule ``encoding``), and every record keeps its bytes as ``raw_base64`` where they are not
    valid UTF-8 (the ingest :data:`QUARANTINE_SCHEMA`).
    """
    reason = _csv_reason(schema, sep, null_value) if fmt == "csv" else _json_reason(schema)
    corrupt = F.col(CORRUPT).isNotNull()
    columns = [
        F.lit(source).alias("source"),
        F.lit(STAGE).alias("stage"),
        F.lit("parse").alias("rule"),
        reason.alias("reason"),
        F.col(CORRUPT).alias("record"),
    ]
    if RAW_BYTES not in raw.columns:
        return raw.filter(corrupt).select(*columns)
    strings = [f.name for f in schema.fields if isinstance(f.dataType, T.StringType)]
    first_bad = F.coalesce(*[F.when(F.col(c).contains(REPLACEMENT), F.lit(c)) for c in strings],
                           F.lit("a field"))  # fmt: skip
    raw_bytes = F.col(RAW_BYTES)
    valid = is_utf8(raw_bytes)
    return raw.filter(corrupt | undecodable(schema)).select(
        *columns[:2],
        F.when(corrupt, "parse").otherwise("encoding").alias("rule"),
        F.when(corrupt, reason)
        .otherwise(F.concat(first_bad, F.lit(" is not valid UTF-8")))
        .alias("reason"),
        F.coalesce(
            F.col(CORRUPT),
            F.to_json(
                F.struct(*[F.col(f.name) for f in schema.fields]), {"ignoreNullFields": "false"}
            ),
        ).alias("record"),
        # One line: Spark's base64 breaks MIME-style every 76 characters.
        F.when(~valid, F.regexp_replace(F.base64(raw_bytes), r"\s", "")).alias("raw_base64"),
    )


def _csv_reason(schema: T.StructType, sep: str, null_value: str) -> Column:
    # Splitting on the separator ignores quoting: good enough to name the culprit, and the
    # generic fallback below covers lines it cannot explain.
    tokens = F.split(F.col(CORRUPT), _regex_escape(sep), -1)
    n = len(schema.fields)
    count = F.size(tokens)
    field_errors = [
        F.when(
            (F.col(f.name).isNull())
            & (F.get(tokens, i).isNotNull())
            & (F.trim(F.get(tokens, i)) != F.lit(""))
            & (F.get(tokens, i) != F.lit(null_value)),
            F.concat(
                F.lit(f"{f.name}: "),
                F.get(tokens, i),
                F.lit(f" is not a valid {f.dataType.simpleString()}"),
            ),
        )
        for i, f in enumerate(schema.fields)
        if not isinstance(f.dataType, T.StringType)
    ]
    return F.coalesce(
        F.when(
            count != F.lit(n),
            F.concat(F.lit(f"expected {n} fields, found "), count.cast("string")),
        ),
        *field_errors,
        _fields_parsed(schema),
    )


def _json_reason(schema: T.StructType) -> Column:
    field_errors = [
        F.when(
            F.col(f.name).isNull() & F.get_json_object(F.col(CORRUPT), f"$.{f.name}").isNotNull(),
            F.concat(
                F.lit(f"{f.name}: "),
                F.get_json_object(F.col(CORRUPT), f"$.{f.name}"),
                F.lit(f" is not a valid {f.dataType.simpleString()}"),
            ),
        )
        for f in schema.fields
    ]
    return F.coalesce(*field_errors, _fields_parsed(schema, "malformed JSON record"))


def _fields_parsed(schema: T.StructType, what: str = "does not parse") -> Column:
    # Referencing every field also keeps Spark from refusing the query: a read that needs only the
    # corrupt-record column is refused (UNSUPPORTED_FEATURE.QUERY_ONLY_CORRUPT_RECORD_COLUMN).
    parsed = F.size(
        F.array_compact(F.array(*[F.col(f.name).cast("string") for f in schema.fields]))
    )
    n = len(schema.fields)
    return F.concat(
        F.lit(f"{what} against the declared schema ("),
        parsed.cast("string"),
        F.lit(f" of {n} fields parsed)"),
    )


def assemble_arrays(df: DataFrame, arrays: Mapping[str, str]) -> DataFrame:
    """Gather column ranges into array columns: ``{"pixels": "p{0..63}"}`` -> one array column."""
    for out, pattern in arrays.items():
        cols = expand_columns(pattern)
        df = df.withColumn(out, F.array(*[F.col(c) for c in cols])).drop(*cols)
    return df


def _regex_escape(sep: str) -> str:
    return "".join(f"\\{ch}" if ch in r".^$*+?()[]{}|\/" else ch for ch in sep)
