"""Command-line entry points: the ``deepspark`` command and the jobs behind it.

:mod:`deepspark.cli.command` is the ``deepspark`` console script; :mod:`deepspark.cli.jobs` runs
one stage (``jobs/<stage>.py`` call it), :mod:`deepspark.cli.submit` hands a stage to spark-submit.
"""

from deepspark.cli.jobs import job, main

__all__ = ["job", "main"]
