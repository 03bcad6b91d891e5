"""Aggregate: silver -> gold tables declared in the pipeline's ``aggregates:`` section."""

from __future__ import annotations

from pyspark.sql import SparkSession

from deepspark import tracking
from deepspark.config import Config, to_plain
from deepspark.etl.aggregate import build_aggregate
from deepspark.io import Layout, counting, read_parquet, staged_outputs
from deepspark.schema import require_columns
from deepspark.stages import StageResult
from deepspark.stages.accounting import log_input
from deepspark.stages.checks import Checker
from deepspark.tracking import Tracking

STAGE = "aggregate"


def run(cfg: Config, spark: SparkSession, tracker: Tracking | None = None) -> StageResult:
    """Build every declared aggregate; all gold outputs move into place together."""
    layout = Layout(cfg.paths, cfg.pipeline.name)
    specs = cfg.pipeline.aggregates
    metrics: dict[str, float] = {}
    outputs: dict[str, str] = {}
    checks = Checker(cfg, spark, STAGE)
    with (
        (tracker or Tracking()).stage_run(cfg, STAGE, to_plain(specs)),
        staged_outputs(spark) as out,
    ):
        needed = {s.source for s in specs.values()} | {
            s.join.source for s in specs.values() if s.join is not None
        }
        tables = {t: read_parquet(spark, layout.path("silver", t)) for t in sorted(needed)}
        # Each source's rows are counted as they flow into its first aggregate's write, not by
        # a scan of their own.
        sources, seen = {}, {}
        for t in {s.source for s in specs.values()}:
            sources[t], seen[t] = counting(tables[t])
        for name, spec in specs.items():
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
            metrics[f"{name}.rows_out"] = out.write_counted(
                checks.watch(built, name, gold, source), gold
            )
            metrics[f"{name}.rows_in"] = seen[spec.source]()
            outputs[name] = gold
        counts = {t: rows() for t, rows in seen.items()}
        for t, df in tables.items():
            path = layout.path("silver", t)
            log_input(spark, f"{cfg.pipeline.name}/silver/{t}", path, df, counts.get(t))
        warnings = checks.check(out)
        out.commit()
        # Stage totals: each source table counted once, however many aggregates read it.
        metrics["rows_in"] = sum(counts.values())
        metrics["rows_out"] = sum(v for k, v in metrics.items() if k.endswith(".rows_out"))
        tracking.log_metrics(metrics)
    return StageResult(STAGE, metrics, outputs, tuple(warnings))
