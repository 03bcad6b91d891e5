"""Which reader a job's loader uses: ``loader.backend`` resolved to ``arrow`` or ``petastorm``.

``auto`` is resolved once, before launch (:func:`deepspark.train.job.prepare`), so every rank
reads with the same backend and the training run records which one it was.
"""

from __future__ import annotations

import importlib.util

from deepspark.errors import SetupError

BACKENDS = ("arrow", "petastorm")  # the concrete readers
CHOICES = ("auto", *BACKENDS)  # what ``pipeline.train.loader.backend`` accepts

# Petastorm delivers batches in the seeded order only with one reader thread; with more, the
# order depends on which thread finishes first, and a resumed run no longer replays the batches
# of an uninterrupted one.
PETASTORM_EXACT_RESUME_WORKERS = 1

# A measured fact, recorded here rather than probed at every launch: whether the petastorm
# backend's samples/s is within 10 % of the arrow backend's, 1 reader thread, shuffling on, on
# both feature kinds. It was on 2026-12-01; since the arrow reader stopped decoding row groups an
# epoch never uses and gathers batches in one copy (issue 17) it is not: 0.57 of arrow on sequences,
# 0.83 on images (BENCHMARKS.md, "The loader at the pyarrow floor"). Re-measure with
# `benchmarks/loader.py --kind both` before changing it.
PETASTORM_WITHIN_10_PERCENT = False

MISSING_PETASTORM = (
    "pipeline.train.loader.backend: petastorm is not installed; install the extra: "
    "pip install 'deepspark[petastorm]' (or use backend: auto/arrow)"
)


def petastorm_installed() -> bool:
    """Whether Petastorm can be imported here (found on the path; not imported)."""
    return importlib.util.find_spec("petastorm") is not None


def choose_backend(requested: str, workers: int) -> str:
    """The concrete backend for ``loader.backend: requested`` with ``workers`` reader threads.

    ``arrow`` and ``petastorm`` are taken as asked (``petastorm`` must be installed). ``auto``
    picks ``petastorm`` only where all three hold: it is installed, exact resume holds with it at
    this ``workers`` count (today: 1), and it measured within 10 % of ``arrow``'s samples/s on
    both feature kinds (:data:`PETASTORM_WITHIN_10_PERCENT`); anywhere else ``arrow``.

    Args:
        requested: ``auto``, ``arrow`` or ``petastorm``.
        workers: the loader's reader threads (``loader.workers``).

    Returns:
        ``"arrow"`` or ``"petastorm"``.

    Raises:
        SetupError: ``petastorm`` was asked for and is not installed.
        ValueError: ``requested`` is not one of :data:`CHOICES`.
    """
    if requested not in CHOICES:
        raise ValueError(f"backend: expected one of {', '.join(CHOICES)}, found {requested!r}")
    if requested == "petastorm" and not petastorm_installed():
        raise SetupError(MISSING_PETASTORM)
    if requested != "auto":
        return requested
    if (
        PETASTORM_WITHIN_10_PERCENT
        and workers == PETASTORM_EXACT_RESUME_WORKERS
        and petastorm_installed()
    ):
        return "petastorm"
    return "arrow"
