"""The whole pipeline in one Spark session.

The configured stages run in order, under one MLflow parent run with a nested run per stage. A
model the registry gate refused is an outcome, not a failure: see :func:`_run_stage`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import replace

from pyspark.sql import SparkSession

from deepspark import registry, tracking
from deepspark.config import Config
from deepspark.config.evaluate import EvaluateConfig
from deepspark.config.score import ScoreConfig
from deepspark.config.stages import BY_NAME, RunFn
from deepspark.stages import StageResult
from deepspark.tracking import Tracking

log = logging.getLogger("deepspark")


def stage_runner(stage: str) -> RunFn:
    """The ``run`` function of a stage (its module imported now, through the stage table)."""
    return BY_NAME[stage].load()


def applicable(cfg: Config) -> list[str]:
    """The configured stages that have something to do for this pipeline (the table says)."""
    return [s for s in cfg.pipeline.stages if BY_NAME[s].applies(cfg)]


def run(
    cfg: Config, spark: SparkSession, tracker: Tracking | None = None
) -> dict[str, StageResult]:
    """Run every applicable stage; the first failure stops the pipeline (and is reported).

    Each stage is announced as ``[3/9] aggregate`` with the time since the pipeline started, and
    the pipeline ends with one table: rows in, out and quarantined, and seconds, per stage.
    """
    results: dict[str, StageResult] = {}
    seconds: dict[str, float] = {}
    stages = applicable(cfg)
    name = cfg.pipeline.name
    started = time.perf_counter()
    tracker = tracker or Tracking()
    with tracker.pipeline_run(cfg):  # each stage's run nests under it, through the tracker
        for i, stage in enumerate(stages, 1):
            log.info("[%d/%d] %s %s (%s)", i, len(stages), name, stage, _clock(started))
            begun = time.perf_counter()
            results[stage] = _run_stage(cfg, stage, spark, tracker)
            seconds[stage] = time.perf_counter() - begun
        totals = {
            f"{stage}.{k}": v
            for stage, r in results.items()
            for k, v in r.metrics.items()
            if k in ("rows_in", "rows_out", "rows_quarantined")
        }
        tracking.log_metrics(totals)
    warnings = [w for r in results.values() for w in r.warnings]
    log.info("pipeline %s done in %s:\n%s", name, _clock(started), summary_table(results, seconds))
    if warnings:
        log.warning(
            "pipeline %s finished with %d check warning(s):\n  %s",
            name,
            len(warnings),
            "\n  ".join(warnings),
        )
    return results


def _run_stage(
    cfg: Config, stage: str, spark: SparkSession, tracker: Tracking | None = None
) -> StageResult:
    """One stage's run; evaluate and score first check that the alias they load names a version.

    A model the gate refused is an outcome, not a failure: with no version under the alias (no
    champion), evaluate takes the newest version (its run says it is not the champion) and score
    is skipped, in one line that quotes the gate. ``deepspark run score`` alone still fails.
    """
    section = {"evaluate": cfg.pipeline.evaluate, "score": cfg.pipeline.score}
    if stage not in section:
        return stage_runner(stage)(cfg, spark, tracker)
    chosen = section[stage] or (EvaluateConfig() if stage == "evaluate" else ScoreConfig())
    gap = registry.missing_alias(cfg, chosen.model)
    if gap is None:
        return stage_runner(stage)(cfg, spark, tracker)
    if stage == "score":
        log.info("score skipped: %s", gap.why)
        return StageResult(stage, skipped=f"not scored: no {gap.alias}")
    log.info("evaluate: registered model %r has no %s; evaluating its newest version, v%d",
             gap.name, gap.alias, gap.newest)  # fmt: skip
    newest = replace(chosen, model=gap.newest)
    evaluated = replace(cfg, pipeline=replace(cfg.pipeline, evaluate=newest))
    return stage_runner(stage)(evaluated, spark, tracker)


def summary_table(results: Mapping[str, StageResult], seconds: Mapping[str, float]) -> str:
    """Stage, rows in / out / quarantined and seconds, one row per stage, aligned.

    A stage that moves no rows (train, evaluate) shows a dash, not a zero it never counted; a
    stage skipped for what it found (score with no champion) says why in place of its counts.
    """
    header = ("stage", "rows in", "rows out", "quarantined", "seconds")
    rows = [header]
    for stage, result in results.items():
        counts = [result.metrics.get(k) for k in ("rows_in", "rows_out", "rows_quarantined")]
        cells = [f"{int(c):,}" if c is not None else "-" for c in counts]
        rows.append((stage, *cells, f"{seconds.get(stage, 0.0):.1f}"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = [
        "  "
        + "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        )
        for r in rows
    ]
    for i, (stage, result) in enumerate(results.items(), 1):
        if result.skipped:
            lines[i] = f"  {stage.ljust(widths[0])}  {result.skipped}"
    return "\n".join(lines)


def _clock(started: float) -> str:
    """Seconds since ``started`` as ``m:ss``."""
    elapsed = int(time.perf_counter() - started)
    return f"{elapsed // 60}:{elapsed % 60:02d}"
