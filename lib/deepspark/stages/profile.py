"""Profile: per-column statistics and plots of any stage's output, for exploration.

For each ``layer/table`` in ``pipeline.profile.tables`` this writes, into
``{data}/profiles/{pipeline}/{layer}_{table}/``:

- ``stats.csv`` and ``stats.json``: :func:`deepspark.etl.profile.describe`, one row per column;
- ``histograms.png``: up to ``max_histograms`` numeric columns, binned over the full table;
- ``correlation.png``: Pearson r of the non-constant numeric columns, on a seeded sample of at
  most ``sample_rows`` rows (r to about +-0.01 at 50,000 rows; a full-table pass over every pair
  of columns costs far more than it adds to a heatmap);
- ``line_<i>_<y>_by_<by>.png``: each ``pipeline.profile.lines`` plot of that table.

Statistics and histograms are native Spark aggregations over every row; only their small results
reach the driver. The same files are logged to MLflow under ``profile/<layer>_<table>``. Outputs
are written to staging folders and moved into place together at the end, so a failure leaves the
previous profiles untouched. On remote storage (HDFS, S3) the files go to MLflow only.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import re
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any

from pyspark.errors import AnalysisException
from pyspark.sql import DataFrame, SparkSession

from deepspark import plots, tracking
from deepspark.config import Config, to_plain
from deepspark.config.pipeline import LinePlot, ProfileConfig
from deepspark.errors import ConfigError
from deepspark.etl.profile import (
    DESCRIBE_SCHEMA,
    bin_range,
    bounded_sample,
    col,
    describe,
    histograms,
    line_series,
    numeric_columns,
)
from deepspark.io import local_path, read_table
from deepspark.layout import Layout
from deepspark.stages import StageResult
from deepspark.tracking import Tracking

STAGE = "profile"
# The driver collects each line plot's points; a finer x than this is a config mistake.
MAX_LINE_POINTS = 100_000
# Pairs grow quadratically and an annotated matrix stops being readable well before 20 x 20.
MAX_CORRELATION_COLUMNS = 20

log = logging.getLogger("deepspark")


def run(cfg: Config, spark: SparkSession, tracker: Tracking | None = None) -> StageResult:
    """Profile every configured table; the profile folders move into place together.

    Raises:
        InputError: A configured table is missing or empty.
        ConfigError: A line plot's expression does not resolve against its table.
    """
    layout = Layout(cfg.paths, cfg.pipeline.name)
    prof = cfg.pipeline.profile
    metrics: dict[str, float] = {}
    outputs: dict[str, str] = {}
    staged: list[tuple[Path, str | None]] = []  # (staging folder, final local folder or None)
    try:
        with (tracker or Tracking()).stage_run(cfg, STAGE, to_plain(prof)):
            for table, full in _targets(prof):
                key = table.replace("/", "_")
                final = layout.path("profiles", key)
                target = local_path(final)
                work = _staging_dir(target, key)
                staged.append((work, target))
                df = read_table(spark, layout.qualified(table))
                if full:
                    table_metrics = profile_table(df, table, prof, work)
                    metrics.update({f"{key}.{k}": v for k, v in table_metrics.items()})
                for i, plot in enumerate(prof.lines):
                    if plot.table == table:
                        write_line_plot(df, plot, i, work)
                tracking.log_artifacts(str(work), f"{STAGE}/{key}")
                outputs[key] = final if target else f"mlflow:{STAGE}/{key}"
                log.debug("profile %s: %s", table, outputs[key])
            _commit(staged)
            metrics["rows_in"] = sum(v for k, v in metrics.items() if k.endswith(".rows"))
            tracking.log_metrics(metrics)
    finally:
        for work, _ in staged:  # whatever was not moved into place
            shutil.rmtree(work, ignore_errors=True)
    return StageResult(STAGE, metrics, outputs)


def profile_table(df: DataFrame, table: str, prof: ProfileConfig, out: Path) -> dict[str, float]:
    """Write stats.csv, stats.json, histograms.png and correlation.png for one table.

    Returns:
        The table's metrics: ``rows``, ``columns`` and ``null_cells``.
    """
    stats = [row.asDict() for row in describe(df).collect()]  # one small row per column
    rows = stats[0]["count"] + stats[0]["nulls"] if stats else df.count()
    _write_stats(stats, table, rows, out)

    by_name = {s["column"]: s for s in stats}
    numeric = [c for c in numeric_columns(df) if _finite_range(by_name[c])]
    shown = numeric[: prof.max_histograms]
    bins = prof.histogram_bins
    if shown:
        types = {f.name: f.dataType for f in df.schema.fields}
        specs = {
            c: bin_range(types[c], float(by_name[c]["min"]), float(by_name[c]["max"]), bins)
            for c in shown
        }
        hist = histograms(df, specs).toPandas()
        more = (
            f"first {len(shown)} of {len(numeric)} numeric columns, "
            if numeric[len(shown) :]
            else ""
        )
        plots.histogram_grid(
            {c: hist[hist["column"] == c] for c in shown},
            out / "histograms.png",
            f"{table}: value distributions ({more}{rows:,} rows, up to {bins} bins)",
        )

    # Constant columns (min == max: their float stddev can be 1e-13, not 0) have no correlation
    # to show; the sample bounds what reaches the driver.
    varying = [c for c in numeric if by_name[c]["min"] != by_name[c]["max"]]
    varying = varying[:MAX_CORRELATION_COLUMNS]
    if len(varying) >= 2:
        numbers = df.select(*(col(c).cast("double").alias(c) for c in varying))
        sample = bounded_sample(numbers, prof.sample_rows, rows).toPandas()
        which = "all" if len(sample) == rows else f"a seeded sample of {len(sample):,} of {rows:,}"
        plots.correlation_heatmap(
            sample,
            out / "correlation.png",
            f"{table}: Pearson correlation\n(pairwise-complete, {which} rows)",
        )
    return {
        "rows": rows,
        "columns": len(stats),
        "null_cells": sum(s["nulls"] for s in stats),
    }


def write_line_plot(df: DataFrame, plot: LinePlot, index: int, out: Path) -> Path:
    """Draw one configured line plot of ``df`` into ``out``.

    Raises:
        ConfigError: An expression does not resolve, or ``x`` has too many distinct values.
    """
    where = f"profile.lines[{index}] ({plot.table})"
    try:
        series = line_series(df, plot.x, plot.y, plot.by).limit(MAX_LINE_POINTS + 1).toPandas()
    except AnalysisException as e:
        first = str(e).strip().splitlines()[0]
        raise ConfigError(f"{where}: cannot evaluate x/y/by: {first}") from e
    if len(series) > MAX_LINE_POINTS:
        raise ConfigError(
            f"{where}: more than {MAX_LINE_POINTS:,} points; use a coarser x than {plot.x!r}"
        )
    name = f"{plot.y} by {plot.by}" if plot.by else plot.y
    slug = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")[:60]
    title = plot.title or f"{plot.table}: mean {plot.y} by {plot.x}"
    path = out / f"line_{index}_{slug}.png"
    return plots.line_plot(series, path, title, plot.x, f"mean {plot.y}", legend_title=plot.by)


def _targets(prof: ProfileConfig) -> list[tuple[str, bool]]:
    # A table named only by a line plot gets its line plot, not a full profile.
    targets = [(t, True) for t in dict.fromkeys(prof.tables)]
    extra = dict.fromkeys(p.table for p in prof.lines if p.table not in prof.tables)
    return targets + [(t, False) for t in extra]


def _finite_range(stat: dict[str, Any]) -> bool:
    # min/max are null on an all-null column; NaN sorts above every number in Spark.
    if stat["min"] is None or stat["max"] is None:
        return False
    return math.isfinite(float(stat["min"])) and math.isfinite(float(stat["max"]))


def _write_stats(stats: list[dict[str, Any]], table: str, rows: int, out: Path) -> None:
    fields = DESCRIBE_SCHEMA.fieldNames()
    with open(out / "stats.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(stats)
    # JSON has no NaN or Infinity: a non-finite statistic is written as null.
    clean = [
        {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in s.items()}
        for s in stats
    ]
    doc = {"table": table, "rows": rows, "columns": clean}
    with open(out / "stats.json", "w", encoding="utf-8") as fh:
        json.dump(doc, fh, indent=2, allow_nan=False)
        fh.write("\n")


def _staging_dir(target: str | None, key: str) -> Path:
    if target is None:  # remote storage: the files live only as MLflow artifacts
        return Path(tempfile.mkdtemp(prefix=f"deepspark-profile-{key}-"))
    # Beside the final folder, so moving it into place is a rename on one filesystem.
    parent = Path(target).parent
    parent.mkdir(parents=True, exist_ok=True)
    work = parent / f"_staging-{key}-{uuid.uuid4().hex[:8]}"
    work.mkdir()
    return work


def _commit(staged: list[tuple[Path, str | None]]) -> None:
    for work, target in staged:
        if target is None:
            continue
        final = Path(target)
        backup = final.with_name(f"{final.name}.__replaced-{uuid.uuid4().hex[:8]}")
        had_previous = final.exists()
        if had_previous:
            final.rename(backup)
        work.rename(final)
        if had_previous:
            shutil.rmtree(backup)
