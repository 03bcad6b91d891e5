"""One log level for deepspark and Spark: ``--log-level``, ``-v``, ``-q`` or DEEPSPARK_LOG_LEVEL."""

from __future__ import annotations

import argparse
import logging

from deepspark import environ
from deepspark.errors import ConfigError
from deepspark.logconf import ENV, LEVELS, configure, quiet_progress_bars

# Libraries whose INFO lines say what deepspark's own lines already say ("Started local training
# with 2 processes", "Closing down clientserver connection", matplotlib's unit guesses): shown
# from DEBUG (-v) only.
CHATTY = ("TorchDistributor", "py4j", "matplotlib")


class _Quiet(logging.Filter):
    """Drops the chatty libraries' records below WARNING (they set their own logger levels)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or not record.name.startswith(CHATTY)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``--log-level LEVEL``, ``-v`` (DEBUG) and ``-q`` (WARNING), one of them at most."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--log-level", type=str.upper, choices=LEVELS, metavar="LEVEL",
        help=f"deepspark's level, one of {', '.join(LEVELS)} (default INFO, or ${ENV}); "
        "Spark's is one step quieter (INFO shows Spark's warnings)",
    )  # fmt: skip
    group.add_argument(
        "-v", "--verbose", dest="log_level", action="store_const", const="DEBUG",
        help="--log-level DEBUG (and Spark's INFO)",
    )  # fmt: skip
    group.add_argument(
        "-q", "--quiet", dest="log_level", action="store_const", const="WARNING",
        help="--log-level WARNING: warnings, errors and the final summary only",
    )  # fmt: skip


def setup(level: str | None) -> str:
    """Configure logging once per process; returns the level in effect.

    The level also goes into the environment, so the training processes TorchDistributor and
    torchrun start log at the same one (:func:`deepspark.logconf.configure` there too).
    """
    level = (level or environ.get(ENV) or "INFO").upper()
    if level not in LEVELS:
        raise ConfigError(f"{ENV}={level}: expected one of {', '.join(LEVELS)}")
    environ.put(ENV, level)
    configure(level)
    quiet_progress_bars()  # before anything imports tqdm; the ranks inherit it
    if level != "DEBUG":
        for handler in logging.getLogger().handlers:
            handler.addFilter(_Quiet())
        # MLflow configures its own loggers when imported (later), from this variable: its INFO
        # lines ("Creating initial MLflow database tables...") are setup chatter.
        environ.put_default("MLFLOW_LOGGING_LEVEL", "WARNING")
    return level
