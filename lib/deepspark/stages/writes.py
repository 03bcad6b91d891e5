"""The frame every table-writing stage shares: its MLflow run, staged outputs, checks, totals.

Ingest, clean and aggregate each open a stage run, stage their tables, check them, move them into
place together and log their counts; only what happens between is theirs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from pyspark.sql import SparkSession

from deepspark import tracking
from deepspark.config import Config
from deepspark.io import StagedOutputs, staged_outputs
from deepspark.stages import StageResult
from deepspark.stages.accounting import add_totals
from deepspark.stages.checks import Checker
from deepspark.tracking import Tracking


@dataclass
class TableWrites:
    """One stage's staged tables and what it counted, until :meth:`finish` commits them."""

    stage: str
    out: StagedOutputs
    checks: Checker
    metrics: dict[str, float] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)  # table -> its final path

    def finish(self, totals: Callable[[dict[str, float]], None] = add_totals) -> StageResult:
        """Check the staged tables, move them into place together, then total and log the counts.

        ``totals`` adds the stage-wide metrics; the default sums the per-table ones.
        """
        warnings = self.checks.check(self.out)  # a failed check raises before anything moves
        self.out.commit()
        totals(self.metrics)
        tracking.log_metrics(self.metrics)
        return StageResult(self.stage, self.metrics, self.outputs, tuple(warnings))


@contextmanager
def table_writes(
    cfg: Config,
    spark: SparkSession,
    tracker: Tracking | None,
    stage: str,
    params: Mapping[str, Any],
) -> Iterator[TableWrites]:
    """The stage's MLflow run (``params`` logged) around its staged writes."""
    checks = Checker(cfg, spark, stage)
    with (
        (tracker or Tracking()).stage_run(cfg, stage, params),
        staged_outputs(spark, cfg.paths.format) as out,
    ):
        yield TableWrites(stage, out, checks)
