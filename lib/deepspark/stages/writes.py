"""The frame every table-writing stage shares: its MLflow run, staged outputs, checks, totals.

Ingest, clean and aggregate each open a stage run, stage their tables, check them, move them into
place together and log their counts; only what happens between is theirs.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from pyspark.sql import SparkSession

from deepspark import tracking
from deepspark.config import Config, to_plain
from deepspark.io import StagedOutputs, delta, staged_outputs
from deepspark.layout import table_name
from deepspark.stages import StageResult
from deepspark.stages.accounting import add_totals
from deepspark.stages.checks import Checker
from deepspark.tracking import Tracking

log = logging.getLogger(__name__)


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


def built_from(inputs: list[str]) -> dict[str, int] | None:
    """The current version of each input table, or None when one is not a Delta table."""
    versions = {path: delta.latest_version(path) for path in inputs}
    if any(v is None for v in versions.values()):
        return None
    return versions  # type: ignore[return-value]


def skipped(
    cfg: Config,
    stage: str,
    output: str,
    inputs: dict[str, int] | None,
    spec: object,
    *also: str,
) -> bool:
    """Whether an incremental run leaves ``output`` (and ``also``) as it is, said in one line.

    ``also``: the other tables the same build writes (a quarantine): all must be up to date.
    """
    if not cfg.pipeline.incremental:
        return False
    if not all(up_to_date(o, inputs, spec) for o in (output, *also)):
        return False
    assert inputs is not None
    since = ", ".join(f"{table_name(p)} v{v}" for p, v in inputs.items())
    log.info("%s: %s is up to date (built from %s); skipped", stage, table_name(output), since)
    return True


def up_to_date(output: str, inputs: dict[str, int] | None, spec: object) -> bool:
    """Whether ``output``'s last commit was built from exactly these input versions and spec.

    Each Delta write of clean and aggregate records its inputs' versions and a digest of the
    table's config section in the commit's userMetadata; a table whose inputs and rules have not
    moved since has nothing to recompute (a changed rule must rebuild it, new data or not).
    """
    return inputs is not None and built_with(output, spec) == inputs


def built_with(output: str, spec: object) -> dict[str, int] | None:
    """The input versions ``output``'s last commit records, if ``spec`` built it; else None."""
    version = delta.latest_version(output)
    if version is None:
        return None
    recorded = delta.user_metadata(delta.commit_info(output, version))
    inputs = recorded.get("inputs")
    if recorded.get("spec") != _digest(spec) or not isinstance(inputs, dict):
        return None
    return {str(p): int(v) for p, v in inputs.items()}


def appended_since(
    cfg: Config, source: str, outputs: tuple[str, ...], spec: object
) -> tuple[int, list[str]] | None:
    """The version of ``source`` that ``outputs`` were built from, and the files appended since.

    None when an incremental run must rebuild them instead: not incremental, a table missing,
    built by other rules, from other inputs, from different versions of ``source`` (a run
    stopped between their commits), or ``source`` changed since by more than appends.
    """
    if not cfg.pipeline.incremental:
        return None
    built = [built_with(output, spec) for output in outputs]
    first = built[0]
    if first is None or any(b != first for b in built) or set(first) != {source}:
        return None
    files = delta.appended_since(source, first[source])
    return None if files is None else (first[source], files)


def _digest(spec: object) -> str:
    return hashlib.sha256(json.dumps(to_plain(spec), sort_keys=True).encode()).hexdigest()[:16]


def commit_metadata(stage: str, **fields: object) -> str:
    """A Delta commit's userMetadata: the stage and MLflow run that wrote it, and ``fields``.

    ``deepspark tables`` shows it for each version; :func:`up_to_date` reads ``inputs``.
    """
    run = tracking.run_id()
    return json.dumps({"stage": stage, **({"run": run} if run else {}), **fields}, sort_keys=True)


def inputs_metadata(stage: str, inputs: dict[str, int] | None, spec: object) -> str:
    """The userMetadata of a table built from ``inputs`` (their versions) by ``spec``."""
    if not inputs:
        return commit_metadata(stage)
    return commit_metadata(stage, inputs=inputs, spec=_digest(spec))


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
