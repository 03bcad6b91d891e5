"""Aggregate: silver -> gold tables declared in the pipeline's ``aggregates:`` section."""

from __future__ import annotations

from pyspark.sql import SparkSession

from deepspark.config import Config, to_plain
from deepspark.etl.aggregate import build_aggregate
from deepspark.io import counting, read_table
from deepspark.layout import Layout
from deepspark.schema import require_columns
from deepspark.stages import StageResult
from deepspark.stages.accounting import log_input
from deepspark.stages.writes import built_from, inputs_metadata, skipped, table_writes
from deepspark.tracking import Tracking

STAGE = "aggregate"


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
        # Each source's rows are counted as they flow into its first aggregate's write, not by
        # a scan of their own.
        sources, seen = {}, {}
        for t in {s.source for s, _ in todo.values()}:
            sources[t], seen[t] = counting(tables[t])
        for name, (spec, inputs) in todo.items():
            src = sources[spec.source]
            where = f"{layout.path('silver', spec.source)} (aggregate {name})"
            columns = [
                *spec.keys,
                *([spec.time.column] if spec.time else []),
                *(m.column for m in spec.metrics.values() if m.column),
            ]
            require_columns(src.columns, columns, where)
            if spec.join is not None:
                require_columns(
                    tables[spec.join.source].columns,
                    [*spec.join.match.values(), *spec.join.columns],
                    f"{layout.path('silver', spec.join.source)} (join of {name})",
                )
            gold = layout.path("gold", name)
            # An aggregate has at most its source's rows: a first run samples at that rate.
            built = build_aggregate(src, spec, tables)
            source = layout.path("silver", spec.source)
            w.metrics[f"{name}.rows_out"] = w.out.write_counted(
                w.checks.watch(built, name, gold, source),
                gold,
                metadata=inputs_metadata(STAGE, inputs, spec),
            )
            w.metrics[f"{name}.rows_in"] = seen[spec.source]()
            w.outputs[name] = gold
        counts = {t: rows() for t, rows in seen.items()}
        for t, df in tables.items():
            path = layout.path("silver", t)
            log_input(spark, f"{cfg.pipeline.name}/silver/{t}", path, df, counts.get(t))
        return w.finish(lambda metrics: _totals(metrics, counts))


def _totals(metrics: dict[str, float], counts: dict[str, int]) -> None:
    # Stage totals: each source table counted once, however many aggregates read it.
    metrics["rows_in"] = sum(counts.values())
    metrics["rows_out"] = sum(v for k, v in metrics.items() if k.endswith(".rows_out"))
