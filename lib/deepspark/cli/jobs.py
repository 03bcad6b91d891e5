"""The jobs: one per stage plus the whole pipeline, and the runner every entry point shares.

``deepspark run clean -c conf/flights.yaml spark.master=local[4]``, ``python jobs/clean.py -c
conf/flights.yaml`` and ``spark-submit .../cli/submit/resource/job.py clean -c ...`` all end in
:func:`main`: it parses the config files and overrides, builds the one SparkSession, calls the
stage's ``run(cfg, spark)`` for each config, and on a user-facing error prints a single
``error: ...`` line and exits non-zero.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
import traceback
from collections.abc import Mapping, Sequence

from deepspark.cli import logs
from deepspark.config import load_config
from deepspark.config.files import find
from deepspark.config.loader import non_overrides
from deepspark.config.stages import ALIASES, BOTH, BY_NAME, FLIGHTS, RENAMED, RunFn, Stage
from deepspark.errors import ConfigError, DeepsparkError

log = logging.getLogger("deepspark")

# A job is a stage of the stage table, or the whole pipeline: both run as `run(cfg, spark)`.
Job = Stage
PIPELINE = Stage(
    "pipeline", "deepspark.stages.pipeline",
    "every configured stage in order, one MLflow parent run",
    reads=("sources",), writes=("every layer", "mlflow"), in_pipeline=False, defaults=BOTH,
)  # fmt: skip
JOBS: Mapping[str, Job] = {PIPELINE.name: PIPELINE, **BY_NAME}


def lookup(name: str) -> Job:
    """The job called ``name`` (or an alias of it); a ConfigError lists the known ones."""
    job = JOBS.get(ALIASES.get(name, name))
    if job is None:
        raise ConfigError(f"unknown stage {name!r}; expected one of {', '.join(JOBS)}")
    if name in RENAMED:
        log.warning(
            "stage %r is now %r (docs/GLOSSARY.md); the old name still works", name, job.name
        )
    return job


def job(name: str, argv: Sequence[str] | None = None) -> int:
    """Run job ``name`` with command-line arguments ``argv``; returns the exit code."""
    try:
        spec = lookup(name)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return main(spec.load(), job=spec.name, default_confs=spec.defaults, argv=argv,
                spark=spec.spark)  # fmt: skip


def parser(prog: str, default_confs: Sequence[str] = FLIGHTS) -> argparse.ArgumentParser:
    """The arguments every job takes: config files, the log level, and overrides."""
    p = argparse.ArgumentParser(
        prog=prog,
        description="Overrides are dotted config keys, e.g. spark.master=local[4] "
        "paths.data=/tmp/data pipeline.train.epochs=5",
    )
    p.add_argument(
        "-c", "--config", action="append", metavar="FILE",
        help=f"pipeline config YAML, repeatable (default: {' '.join(default_confs)})",
    )  # fmt: skip
    # The flag's old name: spark-submit has its own --conf key=value, so ours became -c/--config.
    p.add_argument("--conf", dest="old_conf", action="append", help=argparse.SUPPRESS)
    logs.add_arguments(p)
    p.add_argument(
        "--full", action="store_true",
        help="rebuild every table from all the source files (pipeline.incremental=false)",
    )  # fmt: skip
    p.add_argument("overrides", nargs="*", metavar="key=value")
    return p


def parse_args(
    argv: Sequence[str], prog: str, default_confs: Sequence[str]
) -> tuple[list[str], list[str], str | None]:
    """(config paths, overrides, log level) from a job's command line."""
    args = parser(prog, default_confs).parse_args(list(argv))
    if args.old_conf:
        raise ConfigError(
            f"--conf {args.old_conf[0]}: the config file option is -c/--config FILE "
            "(--conf key=value is spark-submit's own option)"
        )
    bad = non_overrides(args.overrides)
    if bad:
        raise ConfigError(f"expected key=value overrides, found {' '.join(bad)}")
    paths = [str(find(c)) for c in (args.config or default_confs)]
    full = ["pipeline.incremental=false"] if args.full else []
    return paths, [*args.overrides, *full], args.log_level


def main(
    run: RunFn,
    *,
    job: str,
    default_confs: Sequence[str] = FLIGHTS,
    argv: Sequence[str] | None = None,
    spark: bool = True,
) -> int:
    """Run ``run(cfg, spark, tracker)`` for each config; returns the process exit code.

    ``spark=False`` is for entry points that must work without Java: ``run`` gets ``None``, and
    a config asking for MLflow where it is not installed runs untracked, with one warning.
    """
    session = None
    try:
        paths, overrides, level = parse_args(
            sys.argv[1:] if argv is None else argv, job, default_confs
        )
        level = logs.setup(level)
        from deepspark.tracking import Tracking, check_reachable

        tracker = Tracking()  # this job's one tracker, handed to the stage (and its stages)
        # Without Spark (python -m deepspark.train) MLflow is optional: missing, tracking is off.
        configs = [tracker.usable(load_config(p, overrides), optional=not spark) for p in paths]
        for cfg in configs:
            check_reachable(cfg.mlflow)
        if spark:
            from deepspark.spark import build_session  # pyspark import is slow: after arg checks

            delta = any(cfg.paths.format == "delta" for cfg in configs)
            session = build_session(
                configs[0].spark, f"deepspark-{job}", log_level=level, delta=delta
            )
        for cfg in configs:
            started = time.perf_counter()
            run(cfg, session, tracker)
            if job != "pipeline":  # the pipeline ends with its own summary
                seconds = time.perf_counter() - started
                log.info("%s %s done in %.1fs", job, cfg.pipeline.name, seconds)
        return 0
    except DeepsparkError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # a bug or a failing dependency: keep the traceback, end on one line
        traceback.print_exc()
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        print(f"error: unexpected {type(e).__name__}: {first}", file=sys.stderr)
        return 1
    finally:
        if session is not None:
            session.stop()
