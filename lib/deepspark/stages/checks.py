"""Data checks inside the stages that write tables: statistics observed on the write, then checked.

A stage calls :meth:`Checker.watch` on each output DataFrame before writing it: one observed
aggregate (:func:`deepspark.etl.table_stats.table_stats`) rides on that write, so the statistics
cost no extra pass over the data. After the writes, :meth:`Checker.check` reads them, checks the
expectations and compares with the last good run (the ``_stats.json`` beside the output now),
stages the new ``_stats.json`` into the output so it moves into place with it, and reports:
one log line per finding, ``anomalies.csv``/``anomalies.json`` and ``checks.png`` under
``{data}/checks/{pipeline}/{stage}/`` and in the stage's MLflow run. A ``fail`` finding
raises before the stage commits, so the previous outputs stay as they were.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import shutil
import tempfile
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import pandas as pd
from pyspark.sql import DataFrame, Observation, SparkSession
from pyspark.sql import types as T

from deepspark import plots, tracking
from deepspark.checks import (
    STATS_FILE,
    Finding,
    TableStats,
    anomalies,
    expectations,
    ks_distance,
)
from deepspark.config import Config
from deepspark.config.checks import CHECKED_LAYERS, TableChecks
from deepspark.data import to_url
from deepspark.data.arrow import footer_rows, footer_stats
from deepspark.errors import ConfigError, DataCheckError
from deepspark.etl.table_stats import (
    HOUR,
    UNIT,
    StatsRequest,
    profiled,
    sample_fraction,
    table_stats,
    with_time_grid,
)
from deepspark.io import FileSystem, StagedOutputs, delta, is_delta, local_path
from deepspark.layout import Layout
from deepspark.schema import require_columns

log = logging.getLogger("deepspark")
FIELDS = ("table", "check", "column", "severity", "value", "limit", "message")


@dataclass
class _Watched:
    key: str
    final: str
    spec: TableChecks
    observation: Observation
    reference: TableStats | None
    columns: list[tuple[str, str, bool]]


class Checker:
    """The statistics and checks of one stage's output tables."""

    def __init__(self, cfg: Config, spark: SparkSession, stage: str) -> None:
        self.cfg = cfg.pipeline.checks
        self.spark = spark
        self.stage = stage
        self.layer = CHECKED_LAYERS[stage]
        self.fs = FileSystem(spark)
        self.layout = Layout(cfg.paths, cfg.pipeline.name)
        self._watched: list[_Watched] = []

    def watch(self, df: DataFrame, table: str, final: str, source: str | None = None) -> DataFrame:
        """``df`` with its statistics observed; write the result to ``final`` (staged).

        ``source``, the Parquet table ``df`` comes from, bounds its rows: on a first run (no
        last run to take the row count from) its footers set the sampling rate.
        """
        if not self.cfg.enabled:
            return df
        key = f"{self.layer}/{table}"
        spec = self.cfg.table(key)
        # Footers are read with pyarrow on the driver; elsewhere the aggregate counts.
        request = replace(_request(spec), counts=local_path(final) is None)
        where = f"checks.tables.{key}"
        mentioned = [*spec.columns, *request.categorical, *request.keys, *spec.drift,
                     *spec.ignore_drift]  # fmt: skip
        schema = df.schema  # one round trip to the JVM, not one per use
        require_columns(schema.fieldNames(), [*dict.fromkeys(mentioned)], f"{key} ({where})")
        if request.time is not None:
            require_columns(schema.fieldNames(), [request.time], f"{key} ({where}.time)")
            dtype = schema[request.time].dataType
            if not isinstance(dtype, (T.TimestampType, T.TimestampNTZType, T.DateType)):
                raise ConfigError(
                    f"{where}.time.column: {request.time} is {dtype.simpleString()}; expected a "
                    "timestamp or date column"
                )
        reference = self._reference(final)
        # Bronze gets the exact counts but no sample: the same rows reach silver, where drift is
        # measured, so ingest (the stage nearest its floor) pays for no distribution twice.
        fraction = 0.0
        if self.stage != "ingest":
            if reference is not None:
                rows = reference.rows
            else:  # a first run: the source's footers bound the rows
                rows = footer_rows(self._files(source)) if source else None
            fraction = sample_fraction(rows)
        columns = [
            (f.name, f.dataType.simpleString(), isinstance(f.dataType, T.NumericType))
            for f in profiled(schema)
        ]
        observation = Observation()
        stats = table_stats(schema, request, fraction).alias("stats")
        self._watched.append(_Watched(key, final, spec, observation, reference, columns))
        gridded = with_time_grid(df, request)
        observed = gridded.observe(observation, stats)
        return observed.drop(UNIT, HOUR) if request.time else observed

    def _reference(self, final: str) -> TableStats | None:
        path = f"{final}/{STATS_FILE}"
        if not self.fs.exists(path):
            return None
        try:
            return TableStats.from_json(self.fs.read_text(path))
        except (ValueError, KeyError, TypeError) as e:  # an older or damaged file: start afresh
            log.warning("%s: unreadable (%s); no anomaly checks against the last run", path, e)
            return None

    def check(self, out: StagedOutputs) -> list[str]:
        """Judge every watched table (after its write); the warnings, or raise on a failure.

        Raises:
            DataCheckError: A finding with severity ``fail``; nothing has been committed.
        """
        findings: list[Finding] = []
        chart: list[dict] = []
        remembered: list[tuple[str, str]] = []
        for w in self._watched:
            grid = w.spec.time
            time = (grid.column, grid.unit, grid.timezone) if grid else None
            staged = out.staged(w.final)
            footers = footer_stats(out.files(w.final)) if local_path(staged) else {}
            stats = TableStats.observed(w.key, w.observation.get["stats"], w.columns, footers, time)
            findings += expectations(stats, w.spec)
            findings += anomalies(stats, w.reference, w.spec, self.cfg.thresholds)
            kept = stats.remembering(w.reference)  # categories: every value seen so far
            remembered.append((f"{staged}/{STATS_FILE}", kept.to_json()))
            chart += _chart_rows(stats, w.reference)
        if not self._watched:
            return []
        warnings = judge(self.layout, self.stage, findings, chart, self.cfg.thresholds.drift)
        # Only statistics that passed become the next run's reference (a Delta table's folder
        # is its final one: a failed check must not leave them there).
        for path, text in remembered:
            out.fs.write_text(path, text)
        return warnings

    def _files(self, path: str) -> str | list[str]:
        """A table's data files for pyarrow: a Parquet folder's URL, a Delta version's files."""
        return delta.version_files(self.spark, path) if is_delta(self.spark, path) else to_url(path)


def judge(
    layout: Layout, stage: str, findings: list[Finding], chart: list[dict], drift_limit: float
) -> list[str]:
    """Report ``findings`` (log, files, MLflow); the warnings, or raise on a failure.

    Raises:
        DataCheckError: A finding with severity ``fail`` (the first one, and how many more).
    """
    report = _report(layout, stage, findings, chart, drift_limit)
    for f in findings:
        log.warning("%s %s [%s %s]", stage, f.line(), f.check, f.severity)
    failed = [f for f in findings if f.severity == "fail"]
    warned = [f for f in findings if f.severity == "warn"]
    tracking.log_metrics({"checks.failures": len(failed), "checks.warnings": len(warned)})
    if failed:
        more = f" (and {len(failed) - 1} more; {report})" if len(failed) > 1 else ""
        raise DataCheckError(f"{failed[0].line()} [{failed[0].check}]{more}")
    return [f"{stage}: {f.line()} [{f.check}]" for f in warned]


def _report(
    layout: Layout, stage: str, findings: list[Finding], chart: list[dict], drift_limit: float
) -> str:
    # Written whether or not the stage fails: a failure is when the report is needed most.
    final = layout.path("checks", stage)
    target = local_path(final)
    work = Path(tempfile.mkdtemp(prefix="deepspark-checks-"))
    try:
        rows = [asdict(f) for f in findings]
        with open(work / "anomalies.csv", "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=FIELDS)
            writer.writeheader()
            writer.writerows(rows)
        (work / "anomalies.json").write_text(json.dumps(rows, indent=1) + "\n")
        if chart and tracking.active():  # the plot is for the MLflow run (0.3-0.8 s to draw)
            plots.checks_chart(
                pd.DataFrame(chart),
                drift_limit,
                work / "checks.png",
                f"{stage}: null fractions and drift ({len(findings)} finding(s))",
            )
        tracking.log_artifacts(str(work), "checks")
        if target is None:
            return "the stage's MLflow run, checks/"
        shutil.rmtree(target, ignore_errors=True)
        Path(target).parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(work, target)
        return f"{target}/anomalies.csv"
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _request(spec: TableChecks) -> StatsRequest:
    return StatsRequest(
        categorical=spec.categorical,
        distinct=[c for c, e in spec.columns.items() if e.min_distinct is not None],
        allowed={c: e.allowed for c, e in spec.columns.items() if e.allowed},
        time=spec.time.column if spec.time else None,
        unit=spec.time.unit if spec.time else "day",
        keys=spec.time.keys if spec.time else (),
        timezone=spec.time.timezone if spec.time else None,
    )


def _chart_rows(stats: TableStats, ref: TableStats | None) -> list[dict]:
    rows = []
    for name, c in stats.columns.items():
        was = ref.columns.get(name) if ref else None
        drift = (
            ks_distance(was.percentiles, c.percentiles)
            if was is not None and was.percentiles and c.percentiles
            else math.nan
        )
        rows.append(
            {
                "label": f"{stats.table}.{name}",
                "nulls": stats.null_fraction(name),
                "nulls_before": ref.null_fraction(name) if was is not None else math.nan,
                "drift": drift,
            }
        )
    return rows
