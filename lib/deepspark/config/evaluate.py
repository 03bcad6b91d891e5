"""The ``pipeline.evaluate`` section: test-split evaluation and interpretation of a model."""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class EvaluateConfig:
    """Which registered model is evaluated on the test features, and how much interpretation.

    ``model`` is an alias (``champion``, ``challenger``) or a version number; in a pipeline, an
    alias that names no version (the gate refused every version) evaluates the newest version,
    and the run says it is not the champion. Integrated gradients
    (zero baseline, ``ig_steps`` midpoint Riemann steps) explain ``samples`` test images, drawn
    with their attribution maps, or, for sequences, a seeded sample of at most
    ``attribution_rows`` test windows, averaged into one step x input heatmap. Permutation
    importance shuffles each sequence input ``permutation_repeats`` times. MAPE is computed on the
    rows whose target is at least ``mape_min_abs`` away from zero (in target units), since a
    percentage of a zero or near-zero target is undefined or meaningless.
    """

    # Alias (champion, challenger) or version number of the model evaluated; in a pipeline, an
    # alias that names no version (no champion yet) evaluates the newest version instead.
    model: str | int = "champion"
    samples: int = 16  # test images explained with integrated gradients
    attribution_rows: int = 2048  # test windows in the sequence attribution heatmap, at most
    ig_steps: int = 32  # integrated-gradients steps (midpoint Riemann sum)
    permutation_repeats: int = 3  # shuffles of each input for permutation importance
    mape_min_abs: float = 1.0  # MAPE leaves out targets closer to zero than this
    seed: int = 0  # seeds the samples, the shuffles and the baseline refit

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[A-Za-z0-9_]+", str(self.model)):
            raise ValueError(f"model {self.model!r}: expected an alias or a version number")
        for name in ("samples", "attribution_rows", "ig_steps", "permutation_repeats"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: expected >= 1, found {getattr(self, name)}")
        if self.mape_min_abs <= 0:
            raise ValueError(f"mape_min_abs: expected > 0, found {self.mape_min_abs}")
