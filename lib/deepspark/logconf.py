"""deepspark's log format and level, the same in every process: the driver and training ranks."""

from __future__ import annotations

import logging

ENV = "DEEPSPARK_LOG_LEVEL"  # the level, inherited by the processes a job starts
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def configure(level: str) -> None:
    """Log to stderr as ``HH:MM:SS LEVEL logger: message`` at ``level``.

    DEBUG is deepspark's only: the libraries' debug output (py4j, matplotlib, urllib3) would
    bury ours.
    """
    logging.basicConfig(
        level="INFO" if level == "DEBUG" else level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    logging.getLogger("deepspark").setLevel(level)
