"""The ``pipeline.score`` section: batch scoring with the pipeline's registered model."""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class ScoreConfig:
    """Which model version scores which table, and where the predictions go.

    ``model`` is an alias of the registered model (``champion``, ``challenger``) or a version
    number; ``input`` a ``layer/table`` of this pipeline with an ``x`` column like the features;
    the predictions land in ``predictions/<pipeline>/<output>``. In a pipeline, an alias that names
    no version (the gate refused every version) skips scoring, in one line with the gate's reason;
    ``deepspark run score`` alone fails with that line.
    """

    # Alias (champion, challenger) or version number of the model that scores; in a pipeline, an
    # alias that names no version (no champion yet) skips scoring, saying why.
    model: str | int = "champion"
    input: str = "features/test"  # layer/table scored; it needs an x column like the features
    output: str = "scored"  # table written: ``predictions/<pipeline>/<output>``

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[a-z]+/[A-Za-z0-9_]+", self.input):
            raise ValueError(f"input {self.input!r}: expected 'layer/table'")
        if not re.fullmatch(r"[A-Za-z0-9_]+", str(self.model)):
            raise ValueError(f"model {self.model!r}: expected an alias or a version number")
