"""Expectations and anomalies: a table's statistics checked against the config and the last run.

Floor 1, pure Python. :class:`TableStats` is what :func:`deepspark.etl.validate.table_stats`
observed, and what is stored beside each output as ``_stats.json``: the reference of the next
run. :func:`expectations` checks what the config asserts; :func:`anomalies` compares with that
reference. Both return :class:`Finding` rows; the stage reports them and fails on ``fail``.
"""

from __future__ import annotations

import bisect
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from deepspark.config.validation import TableValidation, Thresholds

STATS_FILE = "_stats.json"
STATS_VERSION = 1


@dataclass(frozen=True)
class ColumnStats:
    """One column's statistics.

    Nulls and min/max (as text) are exact, from the footers; a numeric column's NaNs, moments and
    101 percentiles are read from the sample.
    """

    type: str
    nulls: int
    nan: int = 0
    min: str | None = None
    max: str | None = None
    mean: float | None = None
    stddev: float | None = None
    percentiles: tuple[float, ...] = ()


@dataclass(frozen=True)
class TableStats:
    """A table's statistics as one stage wrote it."""

    table: str
    rows: int
    columns: Mapping[str, ColumnStats]
    categories: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    distinct: Mapping[str, int] = field(default_factory=dict)
    outside: Mapping[str, tuple[int, str | None]] = field(default_factory=dict)
    time_column: str | None = None
    time_unit: str | None = None
    units: tuple[str, ...] = ()  # "key|...|unit" per series with rows, or just the unit
    hours: tuple[int, ...] = ()
    sampled: int = 0  # rows behind the numeric columns' moments and percentiles

    @classmethod
    def observed(
        cls,
        table: str,
        text: str,
        columns: Sequence[tuple[str, str, bool]],
        footers: Mapping[str, tuple[int | None, str | None, str | None]],
        time: tuple[str, str] | None = None,
    ) -> TableStats:
        """From the JSON :func:`~deepspark.etl.validate.table_stats` aggregated and the footers.

        Args:
            table: ``layer/table``.
            text: The observed aggregate.
            columns: ``(name, type, numeric)`` of each profiled column, in schema order; the
                numeric ones are the sample's fields, in that order.
            footers: ``{column: (nulls, min, max)}`` of the written files.
            time: ``(column, unit)`` of the time grid, if one was observed.
        """
        doc = json.loads(text)
        rows = int(doc["rows"])
        names = [name for name, _, is_number in columns if is_number]
        picked = doc.get("sample") or []
        sample = np.array(
            [[np.nan if v is None else v for v in r] for r in picked], dtype=float
        ).reshape(len(picked), len(names))
        nulls = {n: np.array([r[i] is None for r in picked], dtype=bool) for i, n in
                 enumerate(names)}  # fmt: skip
        out: dict[str, ColumnStats] = {}
        for name, dtype, is_number in columns:
            n_null, lo, hi = footers.get(name, (None, None, None))
            stats = ColumnStats(type=dtype, nulls=int(n_null or 0), min=lo, max=hi)
            if is_number:
                i = names.index(name)
                values = sample[~nulls[name], i]
                finite = values[~np.isnan(values)]
                nan_share = 1 - len(finite) / len(values) if len(values) else 0.0
                stats = replace(
                    stats,
                    nan=round(nan_share * (rows - stats.nulls)),
                    mean=float(finite.mean()) if len(finite) else None,
                    stddev=float(finite.std()) if len(finite) else None,
                    percentiles=tuple(
                        float(q) for q in np.percentile(finite, range(101), method="inverted_cdf")
                    )
                    if len(finite)
                    else (),
                )
            out[name] = stats
        t = doc.get("time") or {}
        return cls(
            table=table,
            rows=rows,
            columns=out,
            categories={k: tuple(v) for k, v in (doc.get("categories") or {}).items()},
            distinct={k: int(v) for k, v in (doc.get("distinct") or {}).items()},
            outside={
                k: (int(v["count"]), v.get("example"))
                for k, v in (doc.get("outside") or {}).items()
            },
            time_column=time[0] if time else None,
            time_unit=time[1] if time else None,
            units=tuple(t.get("units") or ()),
            hours=tuple(int(h) for h in t.get("hours") or ()),
            sampled=len(sample),
        )

    def to_json(self) -> str:
        """The stored form (``_stats.json``)."""
        doc = {"version": STATS_VERSION, **asdict(self)}
        return json.dumps(doc, allow_nan=False, default=list) + "\n"

    @classmethod
    def from_json(cls, text: str) -> TableStats:
        """Read a stored ``_stats.json``."""
        doc = json.loads(text)
        doc.pop("version", None)
        doc["columns"] = {
            k: ColumnStats(**{**v, "percentiles": tuple(v["percentiles"])})
            for k, v in doc["columns"].items()
        }
        doc["categories"] = {k: tuple(v) for k, v in doc["categories"].items()}
        doc["outside"] = {k: tuple(v) for k, v in doc["outside"].items()}
        doc["units"], doc["hours"] = tuple(doc["units"]), tuple(doc["hours"])
        return cls(**doc)

    def remembering(self, ref: TableStats | None) -> TableStats:
        """These statistics with each categorical column's values seen in ``ref`` added.

        What is stored for the next run: a value is new once, not every time it comes back
        after a delivery without it (a carrier that flies some months only).
        """
        if ref is None:
            return self
        merged = {
            k: tuple(sorted(set(v) | set(ref.categories.get(k, ()))))
            for k, v in self.categories.items()
        }
        return replace(self, categories=merged)

    def null_fraction(self, column: str) -> float:
        """Nulls (and NaNs) over rows; 0 for an empty table."""
        c = self.columns[column]
        return (c.nulls + c.nan) / self.rows if self.rows else 0.0


@dataclass(frozen=True)
class Finding:
    """One check that fired: where, what was measured against what limit, and how serious."""

    table: str
    check: str
    column: str | None
    severity: str
    value: float | None
    limit: float | None
    message: str

    def line(self) -> str:
        """``table: message`` as the log and the error say it."""
        return f"{self.table}: {self.message}"


def _number(x: Any) -> float | None:
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def expectations(stats: TableStats, spec: TableValidation) -> list[Finding]:
    """Every expectation of ``spec`` that ``stats`` breaks."""
    out: list[Finding] = []
    t = stats.table
    if spec.rows is not None and not spec.rows.holds(stats.rows):
        out.append(
            Finding(
                t,
                "expect.rows",
                None,
                spec.rows_severity,
                stats.rows,
                None,
                f"{stats.rows} rows, expected {spec.rows.text()}",
            )
        )
    for name, exp in spec.columns.items():
        if name not in stats.columns:
            out.append(
                Finding(
                    t,
                    "expect.column",
                    name,
                    exp.severity,
                    None,
                    None,
                    f"{name}: no such column with statistics",
                )
            )
            continue
        c, sev = stats.columns[name], exp.severity
        frac = stats.null_fraction(name)
        if exp.max_null_fraction is not None and frac > exp.max_null_fraction:
            out.append(
                Finding(
                    t,
                    "expect.nulls",
                    name,
                    sev,
                    frac,
                    exp.max_null_fraction,
                    f"{name}: {frac:.1%} null, expected at most {exp.max_null_fraction:.1%}",
                )
            )
        if exp.min_distinct is not None and stats.distinct.get(name, 0) < exp.min_distinct:
            n = stats.distinct.get(name, 0)
            out.append(
                Finding(
                    t,
                    "expect.distinct",
                    name,
                    sev,
                    n,
                    exp.min_distinct,
                    f"{name}: about {n} distinct values, expected at least {exp.min_distinct}",
                )
            )
        if exp.allowed and stats.outside.get(name, (0, None))[0]:
            n, example = stats.outside[name]
            out.append(
                Finding(
                    t,
                    "expect.allowed",
                    name,
                    sev,
                    n,
                    0,
                    f"{name}: {n} values outside the allowed set, e.g. {example!r}",
                )
            )
        for stat, bounds in (("mean", exp.mean), ("stddev", exp.stddev)):
            value = getattr(c, stat)
            if bounds is not None and (value is None or not bounds.holds(value)):
                shown = "none" if value is None else f"{value:.4g}"
                out.append(
                    Finding(
                        t,
                        f"expect.{stat}",
                        name,
                        sev,
                        value,
                        None,
                        f"{name}: {stat} {shown}, expected {bounds.text()}",
                    )
                )
    return out


def anomalies(
    stats: TableStats, ref: TableStats | None, spec: TableValidation, th: Thresholds
) -> list[Finding]:
    """What changed since ``ref`` (the last good run) beyond ``th``; all-null and gaps always."""
    t = stats.table
    out: list[Finding] = []

    def add(check: str, column: str | None, value: float | None, limit: float | None, msg: str):
        out.append(Finding(t, check, column, th.level(check), value, limit, msg))

    for name, c in stats.columns.items():
        was = ref.columns.get(name) if ref else None
        if stats.rows and c.nulls == stats.rows and (was is None or was.nulls < ref.rows):
            add("all_null", name, 1.0, None, f"{name}: every value is null ({stats.rows} rows)")
    gaps = missing_units(stats)
    if stats.time_column and len(gaps) > _max_missing(spec):
        shown = ", ".join(gaps[:5]) + (f" and {len(gaps) - 5} more" if len(gaps) > 5 else "")
        add(
            "gaps",
            stats.time_column,
            len(gaps),
            _max_missing(spec),
            f"{stats.time_column}: {len(gaps)} {stats.time_unit}(s) with no rows: {shown}",
        )
    if ref is None:
        return out
    _schema(stats, ref, add)
    if ref.rows:
        ratio = stats.rows / ref.rows
        if abs(ratio - 1) > th.rows_change:
            add(
                "rows",
                None,
                ratio,
                th.rows_change,
                f"{stats.rows} rows, {ratio:.2f}x the last run's {ref.rows} "
                f"(tolerance +-{th.rows_change:.0%})",
            )
    for name, c in stats.columns.items():
        was = ref.columns.get(name)
        if was is None or was.type != c.type or not stats.rows or not ref.rows:
            continue
        if c.nulls == stats.rows:
            continue  # reported as all-null
        jump = stats.null_fraction(name) - ref.null_fraction(name)
        if jump > th.null_increase:
            add(
                "nulls",
                name,
                jump,
                th.null_increase,
                f"{name}: null fraction {ref.null_fraction(name):.1%} -> "
                f"{stats.null_fraction(name):.1%}",
            )
        if c.percentiles and was.percentiles and name not in spec.ignore_drift:
            limit = spec.drift.get(name, th.drift)
            d = ks_distance(was.percentiles, c.percentiles)
            if d > limit:
                add(
                    "drift",
                    name,
                    d,
                    limit,
                    f"{name}: distribution drifted (KS {d:.2f} > {limit:g}; median "
                    f"{was.percentiles[50]:.4g} -> {c.percentiles[50]:.4g})",
                )
            _spread(name, c, was, th, add)
        if c.min is not None and c.min == c.max and was.min != was.max:
            add("constant", name, None, None, f"{name}: every value is {c.min} (it varied before)")
    for name, values in stats.categories.items():
        new = sorted(set(values) - set(ref.categories.get(name, values)))
        if new:
            shown = ", ".join(new[:10]) + (f" and {len(new) - 10} more" if len(new) > 10 else "")
            add("categories", name, len(new), 0, f"{name}: new value(s) {shown}")
    if stats.hours and ref.hours and sum(stats.hours) and sum(ref.hours):
        d = total_variation(ref.hours, stats.hours)
        if d > th.hours:
            peak = lambda h: max(range(24), key=lambda i: h[i])  # noqa: E731
            add(
                "hours",
                stats.time_column,
                d,
                th.hours,
                f"{stats.time_column}: hour-of-day distribution moved (total variation {d:.2f} > "
                f"{th.hours:g}; busiest hour {peak(ref.hours)} -> {peak(stats.hours)})",
            )
    return out


def _max_missing(spec: TableValidation) -> int:
    return spec.time.max_missing if spec.time else 0


def _schema(stats: TableStats, ref: TableStats, add) -> None:  # noqa: ANN001
    gone = [c for c in ref.columns if c not in stats.columns]
    new = [c for c in stats.columns if c not in ref.columns]
    retyped = [
        f"{c} {ref.columns[c].type} -> {s.type}"
        for c, s in stats.columns.items()
        if c in ref.columns and ref.columns[c].type != s.type
    ]
    parts = [f"removed {', '.join(gone)}"] * bool(gone) + [f"added {', '.join(new)}"] * bool(new)
    parts += [f"retyped {', '.join(retyped)}"] * bool(retyped)
    if parts:
        add("schema", None, None, None, f"schema changed since the last run: {'; '.join(parts)}")


def _spread(name: str, c: ColumnStats, was: ColumnStats, th: Thresholds, add) -> None:  # noqa: ANN001
    if not c.stddev or not was.stddev:
        return
    ratio = c.stddev / was.stddev
    if ratio > th.spread_ratio or ratio < 1 / th.spread_ratio:
        add(
            "spread",
            name,
            ratio,
            th.spread_ratio,
            f"{name}: standard deviation {was.stddev:.4g} -> {c.stddev:.4g} ({ratio:.3g}x)",
        )


def ks_distance(p: Sequence[float], q: Sequence[float]) -> float:
    """Kolmogorov-Smirnov distance of two distributions given by their percentiles 0..100.

    Each CDF is read as a step function from its percentiles, at every point of both: within
    about 1 % (one percentile step) of the exact distance, ties and point masses included.
    """
    if not p or not q:
        return 0.0
    n, m = len(p) - 1, len(q) - 1

    def cdf(sorted_q: Sequence[float], steps: int, x: float) -> float:
        # The fraction of the distribution at or below x: percentiles <= x, one step each.
        return max(0, bisect.bisect_right(sorted_q, x) - 1) / steps if x >= sorted_q[0] else 0.0

    ps, qs = sorted(p), sorted(q)
    return max(abs(cdf(ps, n, x) - cdf(qs, m, x)) for x in (*ps, *qs))


def total_variation(a: Sequence[int], b: Sequence[int]) -> float:
    """Half the L1 distance of two histograms, each normalised to 1."""
    sa, sb = sum(a), sum(b)
    return 0.5 * sum(abs(x / sa - y / sb) for x, y in zip(a, b, strict=True))


def missing_units(stats: TableStats) -> list[str]:
    """Units (hours or days) between each series' first and last with no row: the gaps."""
    if not stats.units or stats.time_unit is None:
        return []
    step = timedelta(hours=1) if stats.time_unit == "hour" else timedelta(days=1)
    fmt = "%Y-%m-%dT%H" if stats.time_unit == "hour" else "%Y-%m-%d"
    series: dict[str, set[datetime]] = {}
    for u in stats.units:
        key, _, unit = u.rpartition("|")
        series.setdefault(key, set()).add(datetime.strptime(unit, fmt))
    gaps = []
    for key, seen in sorted(series.items()):
        t, end = min(seen), max(seen)
        while t < end:
            t += step
            if t not in seen:
                gaps.append(f"{key} {t.strftime(fmt)}" if key else t.strftime(fmt))
    return gaps


def skew(
    train: Mapping[str, Sequence[float]],
    serving: Mapping[str, Sequence[float]],
    table: str,
    limit: float,
    severity: str,
) -> tuple[list[Finding], dict[str, float]]:
    """Each input's KS distance between training and serving percentiles; those above ``limit``."""
    distances = {k: ks_distance(train[k], serving[k]) for k in train if serving.get(k)}
    found = [
        Finding(
            table,
            "skew",
            k,
            severity,
            d,
            limit,
            f"{k}: serving data differs from training (KS {d:.2f} > {limit:g}; median "
            f"{train[k][50]:.3g} -> {serving[k][50]:.3g})",
        )
        for k, d in distances.items()
        if d > limit
    ]
    return found, distances
