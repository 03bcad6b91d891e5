"""What the section dataclasses share: scalars, empty mappings, inclusive bounds."""

from __future__ import annotations

from collections.abc import Mapping

from deepspark.config.frozen import FrozenMap

Scalar = str | int | float | bool


def empty_map() -> Mapping:
    """A new empty read-only mapping: the default of a mapping field (a dict would be mutable)."""
    return FrozenMap()


def check_bounds(low: float | None, high: float | None, *, none: str, name: str = "") -> None:
    """Inclusive bounds: at least one given (else ``none`` is the error), and low <= high.

    ``name`` starts the order error: ``"range "`` gives "range min 5 is above max 1".
    """
    if low is None and high is None:
        raise ValueError(none)
    if low is not None and high is not None and low > high:
        raise ValueError(f"{name}min {low} is above max {high}")
