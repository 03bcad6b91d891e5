"""``deepspark submit``: a stage (or a job file) under spark-submit, set up from the config.

    deepspark submit STAGE|JOB.py [-c FILE]... [--cluster P] [--master URL] [--dry-run]
                     [--log-level L | -v | -q] [spark-submit options] [key=value ...]

The master, driver memory and Spark settings come from the same resolved config the job loads,
with a cluster file on top (conf/clusters/; ``--master`` and SPARK_MASTER win over it), the
library zip and a ``package.module:factory`` model's source (``--py-files``) and every config
file involved (``--files``). spark-submit's own
options (``--conf k=v``, ``--packages``, ``--jars``, ``--py-files``, ...) pass through: they come
after ours, so theirs win, and the comma-separated lists are merged with ours. ``-c`` is our
config file (spark-submit's short ``-c`` for ``--conf`` is not available here; write ``--conf``).
"""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from deepspark import environ
from deepspark.cli import logs
from deepspark.cli.jobs import ALIASES, JOBS, Job, lookup
from deepspark.cli.submit.options import (
    conf_files,
    library_zip,
    local_key_override,
    model_files,
    submit_args,
)
from deepspark.config import load_config
from deepspark.config.clusters import cluster_names, load_cluster
from deepspark.config.files import PACKAGED, conf_root, find
from deepspark.config.loader import non_overrides
from deepspark.envpack import archive_path, packed_env
from deepspark.errors import ConfigError, DeepsparkError

ENTRY = Path(__file__).resolve().parent / "resource" / "job.py"
# spark-submit's options that take a value (Spark 3.5 and 4.x), and those that do not.
VALUED = frozenset(
    [
        "--conf",
        "--packages",
        "--jars",
        "--py-files",
        "--files",
        "--archives",
        "--exclude-packages",
        "--repositories",
        "--properties-file",
        "--driver-memory",
        "--driver-java-options",
        "--driver-library-path",
        "--driver-class-path",
        "--driver-cores",
        "--executor-memory",
        "--executor-cores",
        "--num-executors",
        "--total-executor-cores",
        "--name",
        "--queue",
        "--principal",
        "--keytab",
        "--proxy-user",
        "--deploy-mode",
        "--class",
    ]
)
FLAGS = frozenset({"--supervise", "--verbose"})
MERGED = ("--py-files", "--files", "--archives", "--jars", "--packages")  # ours + theirs, one list
USAGE = __doc__.split("\n\n")[1].strip("\n")


@dataclass
class SubmitArgs:
    """A ``deepspark submit`` command line, taken apart."""

    target: str = ""
    configs: list[str] = field(default_factory=list)
    cluster: str | None = None
    master: str | None = None
    dry_run: bool = False
    log_level: str | None = None
    spark: list[tuple[str, str | None]] = field(default_factory=list)  # passed-through options
    overrides: list[str] = field(default_factory=list)
    help: bool = False


def parse(argv: Sequence[str]) -> SubmitArgs:
    """Split the command line into ours, spark-submit's and the job's overrides.

    A hand-written loop, not argparse: spark-submit's options are not ours to declare, and a
    ``--conf spark.x=1`` value must not be mistaken for a ``key=value`` override.
    """
    out = SubmitArgs()
    args = list(argv)
    while args:
        arg = args.pop(0)
        name, eq, inline = arg.partition("=") if arg.startswith("--") else (arg, "", "")

        def value(name: str = name, eq: str = eq, inline: str = inline) -> str:
            if eq:
                return inline
            if not args:
                raise ConfigError(f"{name} needs a value")
            return args.pop(0)

        if arg in ("-h", "--help"):
            out.help = True
        elif arg == "--dry-run":
            out.dry_run = True
        elif name in ("-c", "--config"):
            out.configs.append(value())
        elif name == "--cluster":
            out.cluster = value()
        elif name == "--master":
            out.master = value()
        elif name == "--log-level":
            out.log_level = value().upper()
            if out.log_level not in logs.LEVELS:
                raise ConfigError(f"--log-level {out.log_level}: expected one of {logs.LEVELS}")
        elif arg in ("-v", "-q"):
            out.log_level = "DEBUG" if arg == "-v" else "WARNING"
        elif name in VALUED:
            out.spark.append((name, value()))
        elif arg in FLAGS:
            out.spark.append((arg, None))
        elif arg.startswith("-"):
            raise ConfigError(f"unknown option {arg} (see deepspark submit --help)")
        elif "=" in arg:
            out.overrides.append(arg)
        elif out.target:
            raise ConfigError(f"unexpected argument {arg} (overrides are key=value)")
        else:
            out.target = arg
    bad = non_overrides(out.overrides)
    if bad:
        raise ConfigError(f"expected key=value overrides, found {' '.join(bad)}")
    return out


def _job_of(target: str) -> tuple[Job, list[str]]:
    """The job, and what spark-submit runs for it: a job file as given, or our entry script.

    A job file of no known stage (a user's own) gets the pipeline's default configs.
    """
    if target.endswith(".py"):
        stem = Path(target).stem
        return (lookup(stem) if stem in JOBS or stem in ALIASES else JOBS["pipeline"]), [target]
    job = lookup(target)
    return job, [str(ENTRY), job.name]


def spark_submit_binary() -> Path:
    """The spark-submit inside the installed pyspark: always the version the venv holds."""
    import importlib.util

    spec = importlib.util.find_spec("pyspark")
    if spec is None or spec.origin is None:
        raise ConfigError("pyspark is not installed in this environment")
    return Path(spec.origin).parent / "bin" / "spark-submit"


def command(args: SubmitArgs, *, python: str | None = None, dist: str = "dist") -> list[str]:
    """The spark-submit command line for ``args``.

    Builds the library zip, and the packed venv of a ``packed`` cluster unless it is a dry run.
    """
    if not args.target:
        raise ConfigError(f"no stage or job file given\n{USAGE}")
    job, primary = _job_of(args.target)
    cluster = load_cluster(args.cluster) if args.cluster else None
    cluster_overrides = list(cluster.overrides) if cluster else []
    given = [str(find(c)) for c in args.configs]
    defaults = [str(find(c)) for c in job.defaults]
    configs = [load_config(p, [*cluster_overrides, *args.overrides]) for p in given or defaults]
    archive = None
    if cluster is not None and cluster.python_env == "packed":
        archive = archive_path(dist) if args.dry_run else packed_env(dist)
    python = python or sys.executable
    options = submit_args(
        configs[0], python=python, cluster=cluster, master=args.master, archive=archive
    )
    cluster_overrides += local_key_override(configs, master=options[1], create=not args.dry_run)
    # Without -c the job runs its defaults: ship every config so each default can be read.
    conf = conf_root() / "conf"
    extra = [] if given else sorted(str(p) for p in conf.glob("*.yaml"))
    extra += [str(conf / f) for f in (cluster.files if cluster else ())]
    lists = {
        "--files": conf_files(configs, extra),
        # A package.module:factory model's source too: the driver, the ranks and Spark's workers
        # import it (docs/TRAINING.md: Your own model).
        "--py-files": [str(library_zip(dist)), *model_files(configs, dist)],
    }
    if "--archives" in options:  # the packed venv: first in the one --archives list
        i = options.index("--archives")
        lists["--archives"] = [options[i + 1]]
        del options[i : i + 2]
    theirs: list[str] = []
    for name, val in args.spark:
        if name in MERGED and val is not None:
            lists.setdefault(name, []).extend(v for v in val.split(",") if v)
        else:
            theirs += [name] if val is None else [name, val]
    for name in MERGED:
        if lists.get(name):
            options += [name, ",".join(lists[name])]
    job_args = [a for c in args.configs for a in ("-c", c)]
    if args.log_level:
        job_args += ["--log-level", args.log_level]
    job_args += [*cluster_overrides, *args.overrides]  # the user's last: theirs win
    return [str(spark_submit_binary()), *options, *theirs, *primary, *job_args]


def main(argv: Sequence[str]) -> int:
    """``deepspark submit``: exec spark-submit (its exit status is ours), or print the command."""
    try:
        args = parse(argv)
        if args.help:
            print(_help())
            return 0
        cmd = command(args)
        if args.dry_run:
            print(shlex.join(cmd))
            return 0
        from deepspark.spark import require_java

        require_java()
    except DeepsparkError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    env = {**environ.snapshot(), "SPARK_HOME": str(Path(cmd[0]).parents[1])}
    env.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    sys.stdout.flush()
    os.execve(cmd[0], cmd, env)
    return 0  # not reached: the process is spark-submit's now


def _help() -> str:
    stages = "\n".join(f"  {j.name:<10} {j.summary}" for j in JOBS.values())
    return (
        f"usage:\n{USAGE}\n\n{__doc__.split(chr(10) * 2, 2)[2]}\n"
        f"stages:\n{stages}\n  (or a job file, e.g. jobs/train.py)\n\n"
        f"cluster files: {', '.join(cluster_names())} (deepspark clusters)\n"
        f"packaged configs: {PACKAGED}"
    )
