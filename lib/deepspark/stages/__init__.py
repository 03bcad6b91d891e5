"""Floor 3: one ``run(cfg, spark) -> StageResult`` per stage.

Where tables are read and written and Spark jobs run: read inputs, apply the pure transforms from
:mod:`deepspark.etl`, write staged outputs, reconcile counts, log. (Training reads its feature
splits through :mod:`deepspark.data`, the loader seam.)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class StageResult:
    """What a stage did: its row-count metrics, where its outputs are, and its warnings."""

    stage: str
    metrics: Mapping[str, float] = field(default_factory=dict)
    outputs: Mapping[str, str] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()  # data-check findings that did not stop the stage
    skipped: str = ""  # why the stage did nothing, for the summary table ("not scored: ...")
