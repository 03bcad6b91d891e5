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

from deepspark.schema import expand_columns

CORRUPT = "_corrupt_record"
STAGE = "ingest"


def with_corrupt_column(schema: T.StructType) -> T.StructType:
    """The read schema: the declared columns plus Spark's raw-text column for bad rows."""
    return T.StructType([*schema.fields, T.StructField(CORRUPT, T.StringType(), True)])


def parsed_rows(raw: DataFrame) -> DataFrame:
    """Rows that parsed against the schema, without the corrupt-record column."""
    return raw.filter(F.col(CORRUPT).isNull()).drop(CORRUPT)


def unparsed_rows(
    raw: DataFrame,
    schema: T.StructType,
    *,
    source: str,
    fmt: str,
    sep: str = ",",
    null_value: str = "",
) -> DataFrame:
    """Rows that did not parse, as quarantine records: the raw line and why it failed."""
    reason = _csv_reason(schema, sep, null_value) if fmt == "csv" else _json_reason(schema)
    return raw.filter(F.col(CORRUPT).isNotNull()).select(
        F.lit(source).alias("source"),
        F.lit(STAGE).alias("stage"),
        F.lit("parse").alias("rule"),
        reason.alias("reason"),
        F.col(CORRUPT).alias("record"),
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
