"""Expectations, anomalies against the last run, and train/serve skew, over :class:`TableStats`.

Every check returns :class:`Finding` rows; the stage reports them and fails on ``fail``.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from deepspark.checks.stats import ColumnStats, Finding, TableStats
from deepspark.config.checks import ColumnExpectation, TableChecks, Thresholds


@dataclass
class _Found:
    """The findings on one table, each built by :meth:`add`: the one way a check says what fired.

    ``level`` gives a check's severity by its name where the thresholds set it (the anomalies);
    an expectation or skew check passes its own.
    """

    table: str
    level: Callable[[str], str] | None = None
    findings: list[Finding] = field(default_factory=list)

    def add(
        self,
        check: str,
        message: str,
        *,
        column: str | None = None,
        value: float | None = None,
        limit: float | None = None,
        severity: str | None = None,
    ) -> None:
        """One finding; without a ``severity``, the one ``level`` gives ``check``."""
        if severity is None:
            if self.level is None:
                raise ValueError(f"{check}: no severity, and no thresholds to give one")
            severity = self.level(check)
        self.findings.append(Finding(self.table, check, column, severity, value, limit, message))


def expectations(stats: TableStats, spec: TableChecks) -> list[Finding]:
    """Every expectation of ``spec`` that ``stats`` breaks."""
    found = _Found(stats.table)
    if spec.rows is not None and not spec.rows.holds(stats.rows):
        found.add(
            "expect.rows", f"{stats.rows} rows, expected {spec.rows.text()}",
            value=stats.rows, severity=spec.rows_severity,
        )  # fmt: skip
    for name, exp in spec.columns.items():
        _expect_column(stats, name, exp, found)
    return found.findings


def _expect_column(stats: TableStats, name: str, exp: ColumnExpectation, found: _Found) -> None:
    """What ``exp`` asserts of column ``name``, each broken assertion at the column's severity."""
    sev = exp.severity
    if name not in stats.columns:
        found.add(
            "expect.column", f"{name}: no such column with statistics", column=name, severity=sev
        )
        return
    frac = stats.null_fraction(name)
    if exp.max_null_fraction is not None and frac > exp.max_null_fraction:
        found.add(
            "expect.nulls",
            f"{name}: {frac:.1%} null, expected at most {exp.max_null_fraction:.1%}",
            column=name, value=frac, limit=exp.max_null_fraction, severity=sev,
        )  # fmt: skip
    if exp.min_distinct is not None and stats.distinct.get(name, 0) < exp.min_distinct:
        n = stats.distinct.get(name, 0)
        found.add(
            "expect.distinct",
            f"{name}: about {n} distinct values, expected at least {exp.min_distinct}",
            column=name, value=n, limit=exp.min_distinct, severity=sev,
        )  # fmt: skip
    if exp.allowed and stats.outside.get(name, (0, None))[0]:
        n, example = stats.outside[name]
        found.add(
            "expect.allowed", f"{name}: {n} values outside the allowed set, e.g. {example!r}",
            column=name, value=n, limit=0, severity=sev,
        )  # fmt: skip
    for stat, bounds in (("mean", exp.mean), ("stddev", exp.stddev)):
        value = getattr(stats.columns[name], stat)
        if bounds is not None and (value is None or not bounds.holds(value)):
            shown = "none" if value is None else f"{value:.4g}"
            found.add(
                f"expect.{stat}", f"{name}: {stat} {shown}, expected {bounds.text()}",
                column=name, value=value, severity=sev,
            )  # fmt: skip


def anomalies(
    stats: TableStats, ref: TableStats | None, spec: TableChecks, th: Thresholds
) -> list[Finding]:
    """What changed since ``ref`` (the last good run) beyond ``th``; all-null and gaps always."""
    found = _Found(stats.table, level=th.level)
    _all_null(stats, ref, found)
    _gaps(stats, spec, found)
    if ref is None:
        return found.findings
    _schema(stats, ref, found)
    if ref.rows:
        ratio = stats.rows / ref.rows
        if abs(ratio - 1) > th.rows_change:
            found.add(
                "rows", f"{stats.rows} rows, {ratio:.2f}x the last run's {ref.rows} "
                f"(tolerance +-{th.rows_change:.0%})", value=ratio, limit=th.rows_change,
            )  # fmt: skip
    for name, c in stats.columns.items():
        was = ref.columns.get(name)
        if was is None or was.type != c.type or not stats.rows or not ref.rows:
            continue
        if c.nulls == stats.rows:
            continue  # reported as all-null
        _column_changes(stats, ref, name, spec, th, found)
    _new_categories(stats, ref, found)
    _hours_moved(stats, ref, th, found)
    return found.findings


def _all_null(stats: TableStats, ref: TableStats | None, found: _Found) -> None:
    """Columns null on every row; one that was all-null in the last run too is not news."""
    for name, c in stats.columns.items():
        was = ref.columns.get(name) if ref else None
        if stats.rows and c.nulls == stats.rows and (was is None or was.nulls < ref.rows):
            found.add(
                "all_null", f"{name}: every value is null ({stats.rows} rows)", column=name,
                value=1.0,
            )  # fmt: skip


def _gaps(stats: TableStats, spec: TableChecks, found: _Found) -> None:
    gaps = missing_units(stats)
    if stats.time_column and len(gaps) > _max_missing(spec):
        shown = ", ".join(gaps[:5]) + (f" and {len(gaps) - 5} more" if len(gaps) > 5 else "")
        found.add(
            "gaps", f"{stats.time_column}: {len(gaps)} {stats.time_unit}(s) with no rows: {shown}",
            column=stats.time_column, value=len(gaps), limit=_max_missing(spec),
        )  # fmt: skip


def _max_missing(spec: TableChecks) -> int:
    return spec.time.max_missing if spec.time else 0


def _schema(stats: TableStats, ref: TableStats, found: _Found) -> None:
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
        found.add("schema", f"schema changed since the last run: {'; '.join(parts)}")


def _column_changes(
    stats: TableStats,
    ref: TableStats,
    name: str,
    spec: TableChecks,
    th: Thresholds,
    found: _Found,
) -> None:
    """A column of the same type in both runs: its nulls, distribution, spread, constancy."""
    c, was = stats.columns[name], ref.columns[name]
    jump = stats.null_fraction(name) - ref.null_fraction(name)
    if jump > th.null_increase:
        found.add(
            "nulls", f"{name}: null fraction {ref.null_fraction(name):.1%} -> "
            f"{stats.null_fraction(name):.1%}", column=name, value=jump, limit=th.null_increase,
        )  # fmt: skip
    if c.percentiles and was.percentiles and name not in spec.ignore_drift:
        limit = spec.drift.get(name, th.drift)
        d = ks_distance(was.percentiles, c.percentiles)
        if d > limit:
            found.add(
                "drift", f"{name}: distribution drifted (KS {d:.2f} > {limit:g}; median "
                f"{was.percentiles[50]:.4g} -> {c.percentiles[50]:.4g})",
                column=name, value=d, limit=limit,
            )  # fmt: skip
        _spread(name, c, was, th, found)
    if c.min is not None and c.min == c.max and was.min != was.max:
        found.add("constant", f"{name}: every value is {c.min} (it varied before)", column=name)


def _spread(name: str, c: ColumnStats, was: ColumnStats, th: Thresholds, found: _Found) -> None:
    if not c.stddev or not was.stddev:
        return
    ratio = c.stddev / was.stddev
    if ratio > th.spread_ratio or ratio < 1 / th.spread_ratio:
        found.add(
            "spread",
            f"{name}: standard deviation {was.stddev:.4g} -> {c.stddev:.4g} ({ratio:.3g}x)",
            column=name, value=ratio, limit=th.spread_ratio,
        )  # fmt: skip


def _new_categories(stats: TableStats, ref: TableStats, found: _Found) -> None:
    for name, values in stats.categories.items():
        new = sorted(set(values) - set(ref.categories.get(name, values)))
        if new:
            shown = ", ".join(new[:10]) + (f" and {len(new) - 10} more" if len(new) > 10 else "")
            found.add(
                "categories", f"{name}: new value(s) {shown}", column=name, value=len(new), limit=0
            )


def _hours_moved(stats: TableStats, ref: TableStats, th: Thresholds, found: _Found) -> None:
    if not (stats.hours and ref.hours and sum(stats.hours) and sum(ref.hours)):
        return
    d = total_variation(ref.hours, stats.hours)
    if d > th.hours:
        peak = lambda h: max(range(24), key=lambda i: h[i])  # noqa: E731
        found.add(
            "hours", f"{stats.time_column}: hour-of-day distribution moved (total variation "
            f"{d:.2f} > {th.hours:g}; busiest hour {peak(ref.hours)} -> {peak(stats.hours)})",
            column=stats.time_column, value=d, limit=th.hours,
        )  # fmt: skip


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
    hourly = stats.time_unit == "hour"
    fmt = "%Y-%m-%dT%H" if hourly else "%Y-%m-%d"
    epoch, step = datetime(1970, 1, 1), timedelta(hours=1) if hourly else timedelta(days=1)
    series: dict[str, set[int]] = {}
    for u in stats.units:
        key, _, index = u.rpartition("|")
        series.setdefault(key, set()).add(int(index))
    gaps = []
    for key, seen in sorted(series.items()):
        for i in range(min(seen), max(seen) + 1):
            if i not in seen:
                when = (epoch + i * step).strftime(fmt)
                gaps.append(f"{key} {when}" if key else when)
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
    found = _Found(table)
    for k, d in distances.items():
        if d > limit:
            found.add(
                "skew", f"{k}: serving data differs from training (KS {d:.2f} > {limit:g}; "
                f"median {train[k][50]:.3g} -> {serving[k][50]:.3g})",
                column=k, value=d, limit=limit, severity=severity,
            )  # fmt: skip
    return found.findings, distances
