"""Which settings change what training learns: declared beside the fields, read by one walk.

A training setting "changes what is learned" when it changes the sequence of parameter updates:
the model and the architecture actually used, the objective, optimizer and schedule, the global
batch, the seed, the sample order, precision, the residual, EMA, label smoothing, augmentation.
It does not when it says where or how a run executes (processes on the driver or on executors, a
GPU, decoding threads), what is logged, or what happens after training (the registry, and the
stopping rule: a run resumed with another patience simply stops at another point).

Each section of ``pipeline.train`` declares every one of its fields in exactly one of four groups
(``tests/test_config_fields.py`` fails on a field declared nowhere, or twice), and
:func:`deepspark.config.fields.learned_plain` hashes exactly the first group, recursing into
sections and into the architecture that is trained.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Learned = Literal["changes", "keeps", "section", "architecture"]


@dataclass(frozen=True)
class Learning:
    """A section's fields by what they do to training (see the module docstring)."""

    changes: frozenset[str] = frozenset()  # change the sequence of parameter updates
    keeps: frozenset[str] = frozenset()  # where, how or what is logged; what happens after
    sections: frozenset[str] = frozenset()  # sections whose own Learning decides, field by field
    # Sections named like a built-in model: they count only when that model is the one trained.
    architectures: frozenset[str] = frozenset()

    def of(self, name: str) -> Learned | None:
        """The group ``name`` is declared in, or None when it is declared in none."""
        groups: tuple[tuple[Learned, frozenset[str]], ...] = (
            ("changes", self.changes),
            ("keeps", self.keeps),
            ("section", self.sections),
            ("architecture", self.architectures),
        )
        found = [group for group, names in groups if name in names]
        return found[0] if len(found) == 1 else None


def learning(
    *, changes: str = "", keeps: str = "", sections: str = "", architectures: str = ""
) -> Learning:
    """A :class:`Learning` from space-separated field names, as the sections declare it."""
    return Learning(*(frozenset(s.split()) for s in (changes, keeps, sections, architectures)))
