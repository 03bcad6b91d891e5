"""Aggregate: silver -> gold tables declared in the pipeline's ``aggregates:`` section.

An incremental run on Delta recomputes only the time range its inputs' changes touch: the rows
that commits since the last build added or removed give the first and last bucket, and the
aggregate of that range replaces the gold rows in it (``replaceWhere``), one commit.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from pyspark.sql import DataFrame, SparkSession

from deepspark.config import Config, to_plain
from deepspark.config.pipeline import AggregateConfig
from deepspark.etl.aggregate import bucket_range, build_aggregate, range_predicate, within
from deepspark.io import counting, delta, read_table
from deepspark.layout import Layout, table_name
from deepspark.schema import require_columns
from deepspark.stages import StageResult
from deepspark.stages.accounting import log_input
from deepspark.stages.writes import built_from, built_with, inputs_metadata, skipped, table_writes
from deepspark.tracking import Tracking

log = logging.getLogger(__name__)

STAGE = "aggregate"
_NOTHING: tuple[()] = ()  # the inputs moved, but no row of theirs changed


def run(cfg: Config, spark: SparkSession, tracker: Tracking | None = None) -> StageResult:
    """Build every declared aggregate; all gold outputs move into place together."""
    layout = Layout(cfg.paths, cfg.pipeline.name)
    specs = cfg.pipeline.aggregates
    with table_writes(cfg, spark, tracker, STAGE, to_plain(specs)) as w:
        # Which aggregates have work: the others' inputs and spec have not moved since they were
        # built, so their silver tables are not even read.
        todo = {}
        for name, spec in specs.items():
            read = (spec.source, *([spec.join.source] if spec.join else []))
            inputs = built_from([layout.path("silver", t) for t in read])
            if not skipped(cfg, STAGE, layout.path("gold", name), inputs, spec):
                todo[name] = (spec, inputs)
        needed = {s.source for s, _ in todo.values()} | {
            s.join.source for s, _ in todo.values() if s.join is not None
        }
        tables = {t: read_table(spark, layout.path("silver", t)) for t in sorted(needed)}
        # A source read whole is counted once, as its rows flow into its first aggregate's
        # write, not by a scan of its own; a range of it, by the write of its one aggregate.
        whole: dict[str, tuple[DataFrame, Callable[[], int]]] = {}
        counts: dict[str, int] = {}
        for name, (spec, inputs) in todo.items():
            _require(layout, spec, tables, name)
            gold = layout.path("gold", name)
            meta = inputs_metadata(STAGE, inputs, spec)
            span = _span(spark, cfg, layout, gold, spec, tables)
            if span == _NOTHING:
                log.info("aggregate %s: its inputs' changes touch no row; recorded", name)
                delta.mark(spark, gold, meta)
                w.metrics[f"{name}.rows_in"] = w.metrics[f"{name}.rows_out"] = 0
                continue
            others, where = tables, ""
            if span is None:
                if spec.source not in whole:
                    whole[spec.source] = counting(tables[spec.source])
                src, rows = whole[spec.source]
            else:
                lo, hi = span
                src, rows = counting(within(tables[spec.source], spec, lo, hi))
                if spec.join is not None:
                    joined = within(tables[spec.join.source], spec, lo, hi, joined=True)
                    others = {**tables, spec.join.source: joined}
                assert spec.time is not None
                where = range_predicate(spec.time.output, spec.time.unit, lo, hi)
                log.info("aggregate %s: recomputing %s", name, where)
            source = layout.path("silver", spec.source)
            built = w.checks.watch(build_aggregate(src, spec, others), name, gold, source)
            w.metrics[f"{name}.rows_out"] = w.out.write_counted(
                built, gold, metadata=meta, replace_where=where
            )
            w.metrics[f"{name}.rows_in"] = n = rows()
            counts[spec.source] = max(counts.get(spec.source, 0), n)
            w.outputs[name] = gold
        for t, df in tables.items():
            path = layout.path("silver", t)
            log_input(spark, f"{cfg.pipeline.name}/silver/{t}", path, df, counts.get(t))
        return w.finish(lambda metrics: _totals(metrics, counts))


def _require(layout: Layout, spec: AggregateConfig, tables: dict[str, DataFrame], name: str):
    where = f"{layout.path('silver', spec.source)} (aggregate {name})"
    columns = [
        *spec.keys,
        *([spec.time.column] if spec.time else []),
        *(m.column for m in spec.metrics.values() if m.column),
    ]
    require_columns(tables[spec.source].columns, columns, where)
    if spec.join is not None:
        require_columns(
            tables[spec.join.source].columns,
            [*spec.join.match.values(), *spec.join.columns],
            f"{layout.path('silver', spec.join.source)} (join of {name})",
        )


def _span(
    spark: SparkSession,
    cfg: Config,
    layout: Layout,
    gold: str,
    spec: AggregateConfig,
    tables: dict[str, DataFrame],
) -> tuple[int, int] | tuple[()] | None:
    """The buckets (first, last) whose rows changed since ``gold`` was built; None: rebuild all.

    Whole rebuilds: not incremental, no time bucket, a join not on the bucket, a table that
    was never built by this spec, or an input change that is not a list of files
    (:func:`delta.changed_files`).
    """
    t = spec.time
    if not cfg.pipeline.incremental or t is None:
        return None
    paths = {spec.source: layout.path("silver", spec.source)}
    if spec.join is not None:
        theirs = spec.join.match.get(t.output)
        kind = "timestamp" if t.unit == "hour" else "date"
        if theirs is None or dict(tables[spec.join.source].dtypes).get(theirs) != kind:
            return None
        paths[spec.join.source] = layout.path("silver", spec.join.source)
    built = built_with(gold, spec)
    if built is None or set(built) != set(paths.values()):
        return None
    changed: dict[str, DataFrame] = {}
    for source, path in paths.items():
        files = delta.changed_files(path, built[path])
        if files is None:
            return None
        empty = tables[source].limit(0)
        changed[source] = spark.read.schema(empty.schema).parquet(*files) if files else empty
        log.info("aggregate: %s changed in %d files since v%d", table_name(path), len(files),
                 built[path])  # fmt: skip
    other = changed.get(spec.join.source) if spec.join is not None else None
    row = bucket_range(spec, changed[spec.source], other).first()
    if row is None or row["lo"] is None:
        return _NOTHING
    return int(row["lo"]), int(row["hi"])


def _totals(metrics: dict[str, float], counts: dict[str, int]) -> None:
    # Stage totals: each source table counted once, however many aggregates read it.
    metrics["rows_in"] = sum(counts.values())
    metrics["rows_out"] = sum(v for k, v in metrics.items() if k.endswith(".rows_out"))
