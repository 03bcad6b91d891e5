"""deepspark's log format and level, the same in every process: the driver and training ranks."""

from __future__ import annotations

import logging
import sys
from typing import TextIO

from deepspark import environ

ENV = "DEEPSPARK_LOG_LEVEL"  # the level, inherited by the processes a job starts
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")

# Each library's own switch for its progress bars: MLflow's for its artifact transfers (read at
# each transfer), and tqdm's default ``disable`` for every other bar, Optuna's included (read when
# tqdm is first imported: the entry points call quiet_progress_bars before anything imports it).
NO_PROGRESS_BARS = {"MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false", "TQDM_DISABLE": "1"}


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


def quiet_progress_bars(stream: TextIO | None = None) -> bool:
    """No library draws a progress bar unless ``stream`` (default stderr) is a terminal.

    A bar redraws itself with carriage returns: one line on a terminal, every redraw kept in a
    file. MLflow's "Downloading artifacts" bars alone wrote 494 of them (about 40 KB) into the
    Quick start's spark-submit log. The switches go into the environment, so the processes this
    one starts (TorchDistributor's and torchrun's ranks) inherit them; a process started by
    Spark (a rank or a tuning trial on an executor) calls this itself, for its own stderr. A
    switch the user set wins. Returns whether the bars are off.
    """
    stream = sys.stderr if stream is None else stream
    if stream is not None and stream.isatty():
        return False
    for key, value in NO_PROGRESS_BARS.items():
        environ.put_default(key, value)
    return True
