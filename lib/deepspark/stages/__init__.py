"""Floor 3: one ``run(cfg, spark) -> StageResult`` per stage.

The only place with dataset I/O: read inputs, apply the pure transforms from :mod:`deepspark.etl`,
write staged outputs, log.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class StageResult:
    """What a stage did: its row-count metrics and where its outputs are."""

    stage: str
    metrics: Mapping[str, float] = field(default_factory=dict)
    outputs: Mapping[str, str] = field(default_factory=dict)
