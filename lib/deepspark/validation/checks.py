"""Expectations, anomalies against the last run, and train/serve skew, over :class:`TableStats`.

Every check returns :class:`Finding` rows; the stage reports them and fails on ``fail``.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from deepspark.config.validation import TableValidation, Thresholds
from deepspark.validation.stats import ColumnStats, Finding, TableStats


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
