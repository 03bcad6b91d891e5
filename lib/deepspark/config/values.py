"""What the section dataclasses share: the scalar a setting holds, the empty-mapping default."""

from __future__ import annotations

from collections.abc import Mapping

from deepspark.config.frozen import FrozenMap

Scalar = str | int | float | bool


def empty_map() -> Mapping:
    """A new empty read-only mapping: the default of a mapping field (a dict would be mutable)."""
    return FrozenMap()
