"""The shared entry point behind every ``jobs/<stage>.py``.

``jobs/clean.py --conf conf/flights.yaml spark.master=local[4]`` parses the config files and
overrides, builds the one SparkSession, calls ``run(cfg, spark)`` for each config, and on a
user-facing error prints a single ``error: ...`` line and exits non-zero.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from deepspark.config import Config, load_config
from deepspark.config.loader import non_overrides
from deepspark.errors import ConfigError, DeepsparkError

RunFn = Callable[[Config, Any], Any]
log = logging.getLogger("deepspark")


def parse_args(argv: Sequence[str], prog: str, default_confs: Sequence[str]) -> tuple[list, list]:
    """``--conf FILE`` (repeatable) and ``key=value`` overrides; returns (conf paths, overrides)."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Run a deepspark stage. Overrides are dotted config keys, e.g. "
        "spark.master=local[4] paths.data=/tmp/data",
    )
    parser.add_argument("--conf", action="append", metavar="FILE", help="pipeline config YAML")
    parser.add_argument("overrides", nargs="*", metavar="key=value")
    args = parser.parse_args(list(argv))
    bad = non_overrides(args.overrides)
    if bad:
        raise ConfigError(f"expected key=value overrides, found {' '.join(bad)}")
    return [resolve_conf_path(c) for c in (args.conf or default_confs)], args.overrides


def resolve_conf_path(path: str) -> str:
    """A config path as given, or its basename in the working directory.

    spark-submit's ``--files`` puts shipped configs there when the driver runs on the cluster.
    """
    if not Path(path).exists() and Path(Path(path).name).exists():
        return Path(path).name
    return path


def main(
    run: RunFn,
    *,
    job: str,
    default_confs: Sequence[str] = ("conf/flights.yaml",),
    argv: Sequence[str] | None = None,
    spark: bool = True,
) -> int:
    """Run ``run(cfg, spark)`` for each ``--conf``; returns the process exit code.

    ``spark=False`` is for entry points that must work without Java: ``run`` gets ``None``, and
    a config asking for MLflow where it is not installed runs untracked, with one warning.
    """
    logging.basicConfig(
        level=os.environ.get("DEEPSPARK_LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    session = None
    try:
        paths, overrides = parse_args(sys.argv[1:] if argv is None else argv, job, default_confs)
        from deepspark.tracking import check_reachable, usable

        # Without Spark (python -m deepspark.train) MLflow is optional: missing, tracking is off.
        configs = [usable(load_config(p, overrides), optional=not spark) for p in paths]
        for cfg in configs:
            check_reachable(cfg.mlflow)
        if spark:
            from deepspark.spark import build_session  # pyspark import is slow: after arg checks

            session = build_session(configs[0].spark, app_name=f"deepspark-{job}")
        for cfg in configs:
            started = time.perf_counter()
            run(cfg, session)
            log.info("%s %s done in %.1fs", job, cfg.pipeline.name, time.perf_counter() - started)
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
