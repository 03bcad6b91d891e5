"""A table's statistics as a stage observed them, and a check's finding.

:class:`TableStats` is built from what :func:`deepspark.etl.table_stats.table_stats` aggregated and
the written files' footers, and stored beside each output as ``_stats.json``: the reference of
the next run.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import numpy as np

STATS_FILE = "_stats.json"
EPOCH = date(1970, 1, 1)
HOUR_FIELD = "__hour"  # the sample's last field when a time grid was observed
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
    units: tuple[str, ...] = ()  # "key|...|index" per series with rows: hours or days since 1970
    hours: tuple[int, ...] = ()  # sampled rows per UTC hour of day (silver and gold)
    sampled: int = 0  # rows behind the numeric columns' moments and percentiles

    @classmethod
    def observed(
        cls,
        table: str,
        text: str,
        columns: Sequence[tuple[str, str, bool]],
        footers: Mapping[str, tuple[int | None, str | None, str | None]],
        time: tuple[str, str, str | None] | None = None,
    ) -> TableStats:
        """From the JSON :func:`~deepspark.etl.table_stats.table_stats` aggregated and the footers.

        Args:
            table: ``layer/table``.
            text: The observed aggregate.
            columns: ``(name, type, numeric)`` of each profiled column, in schema order; the
                numeric ones are the sample's fields, in that order.
            footers: ``{column: (nulls, min, max)}`` of the written files (or ``{}`` when the
                aggregate counted them itself).
            time: ``(column, unit, timezone)`` of the time grid, if one was observed.
        """
        doc = json.loads(text)
        rows = int(doc["rows"])
        names = [name for name, _, is_number in columns if is_number]
        names += [HOUR_FIELD] if time else []
        sample, nulls = _read_sample(doc.get("sample") or [], names)
        counted = {
            k: (v.get("nulls"), v.get("min"), v.get("max"))
            for k, v in (doc.get("counts") or {}).items()
        }
        out: dict[str, ColumnStats] = {}
        for name, dtype, is_number in columns:
            n_null, lo, hi = counted.get(name) or footers.get(name, (None, None, None))
            stats = ColumnStats(type=dtype, nulls=int(n_null or 0), min=lo, max=hi)
            if is_number:
                stats = _numeric(stats, sample[~nulls[name], names.index(name)], rows)
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
            units=_units(t.get("units") or (), *time[1:]) if time else (),
            hours=_hours(sample[:, -1]) if time and len(sample) else (),
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


def _read_sample(picked: list, names: list[str]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The sample as floats (NaN where null), and which of each field's cells were null."""
    # Vectorized: JSON null is a missing value; Spark writes NaN as the string "NaN".
    cells = np.array(picked, dtype=object).reshape(len(picked), len(names))
    missing = cells == None  # noqa: E711 - elementwise over an object array
    sample = np.where(missing, np.nan, cells).astype(float)
    return sample, {n: missing[:, i] for i, n in enumerate(names)}


def _numeric(stats: ColumnStats, values: np.ndarray, rows: int) -> ColumnStats:
    """``stats`` with what a numeric column's sampled non-null ``values`` say of all ``rows``."""
    finite = values[~np.isnan(values)]
    nan_share = 1 - len(finite) / len(values) if len(values) else 0.0
    return replace(
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


def _hours(values: np.ndarray) -> tuple[int, ...]:
    # The sampled rows per UTC hour of day.
    hours = values[~np.isnan(values)].astype(int)
    return tuple(int(n) for n in np.bincount(hours, minlength=24)[:24])


def _units(observed: Sequence[Mapping], unit: str, timezone: str | None) -> tuple[str, ...]:
    # Observed: (series key, hour since 1970 in UTC). Kept: "key|index", the index in hours
    # (UTC) or in days, read in ``timezone`` when given: a local day's flights span two UTC
    # dates, so a missing local day leaves no empty UTC date.
    zone = ZoneInfo(timezone) if timezone else UTC
    out = set()
    for u in observed:
        if unit == "hour":
            index = int(u["h"])
        else:
            local = datetime.fromtimestamp(int(u["h"]) * 3600, zone).date()
            index = (local - EPOCH).days
        out.add(f"{u['k']}|{index}")
    return tuple(sorted(out))
