"""The ``deepspark`` command.

deepspark run STAGE|pipeline [-c FILE]... [--log-level L | -v | -q] [key=value ...]
deepspark submit STAGE|JOB.py [-c FILE]... [--cluster P] [--master URL] [--dry-run] ...
deepspark config show [-c FILE]... [key=value ...]
deepspark config schema | deepspark config reference
deepspark clusters
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from deepspark.cli import jobs
from deepspark.cli.submit import command as submit_command
from deepspark.config.files import PACKAGED, find
from deepspark.errors import DeepsparkError

EPILOG = (
    "Configs: -c FILE takes a path, or the name of an embedded one (flights, digits, co2, "
    f"glucose; packaged in {PACKAGED}). Every command has --help."
)


def build_parser() -> argparse.ArgumentParser:
    """The command's parser: one sub-command per job of the tool."""
    parser = argparse.ArgumentParser(
        prog="deepspark",
        description="Spark ETL -> distributed PyTorch -> MLflow pipelines.",
        epilog=EPILOG,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    stages = "\n".join(f"  {j.name:<10} {j.summary}" for j in jobs.JOBS.values())
    run = sub.add_parser(
        "run", help="run a stage or the whole pipeline in this process (local Spark)",
        description="Run STAGE in this process: Spark in local mode, as the config says.\n\n"
        f"stages:\n{stages}\n\nSTAGE comes first; `deepspark run STAGE --help` lists its options.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    run.add_argument("stage", choices=[*jobs.JOBS, *jobs.ALIASES], metavar="STAGE")
    run.add_argument("args", nargs=argparse.REMAINDER, help="-c FILE, --log-level, key=value")
    sub.add_parser(
        "submit", add_help=False, prefix_chars="\0",
        help="run a stage or job file under spark-submit (cluster files, pass-through options)",
    )  # fmt: skip
    config = sub.add_parser("config", help="show the resolved config, its schema or reference")
    what = config.add_subparsers(dest="what", metavar="WHAT", required=True)
    show = what.add_parser(
        "show", help="the resolved config, each value with the file it came from",
        description="The config as a job would load it (base file, pipeline file, overrides), "
        "each value annotated with its source.",
    )  # fmt: skip
    _config_arguments(show)
    what.add_parser("schema", help="a JSON Schema for pipeline config files (for editors)")
    what.add_parser("reference", help="the config reference (docs/CONFIG.md) as Markdown")
    sub.add_parser("clusters", help="the cluster files for --cluster, with their descriptions")
    tables = sub.add_parser(
        "tables", help="each Delta table's versions: rows, the run that wrote it, what changed",
        description="Every Delta table of the pipelines (paths.format: delta), each version "
        "with its time, operation, rows, stage and MLflow run, and what it was built from.",
    )  # fmt: skip
    _config_arguments(tables)
    return parser


def _config_arguments(parser: argparse.ArgumentParser) -> None:
    """-c FILE... and key=value overrides, as a job takes them."""
    parser.add_argument(
        "-c", "--config", action="append", metavar="FILE",
        help="pipeline config (default: the embedded flights and digits)",
    )  # fmt: skip
    parser.add_argument("overrides", nargs="*", metavar="key=value")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``deepspark`` console script; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    # submit parses its own arguments (spark-submit's pass through): hand them over untouched.
    if argv[:1] == ["submit"]:
        return submit_command.main(argv[1:])
    args = build_parser().parse_args(argv)
    if args.command == "run":
        return jobs.job(args.stage, args.args)
    try:
        if args.command == "clusters":
            print(_clusters())
        elif args.command == "tables":
            from deepspark.cli.tables import report
            from deepspark.config import load_config

            paths = args.config or list(jobs.BOTH)
            print("\n".join(report(load_config(find(p), args.overrides)) for p in paths))
        elif args.what == "show":
            from deepspark.config.show import show

            paths = args.config or list(jobs.BOTH)
            print(show([str(find(p)) for p in paths], args.overrides), end="")
        elif args.what == "schema":
            from deepspark.config.reference import json_schema

            print(json.dumps(json_schema(), indent=2))
        else:
            from deepspark.config.reference import markdown

            print(markdown(), end="")
    except DeepsparkError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


def _clusters() -> str:
    from deepspark.config.clusters import cluster_names, cluster_path, load_cluster

    rows = []
    for name in cluster_names():
        cluster = load_cluster(name)
        rows.append((name, cluster.master, cluster.description))
    width = max(len(n) for n, _, _ in rows)
    lines = [f"{n:<{width}}  {d} (master {m})" for n, m, d in rows]
    where = cluster_path(rows[0][0]).parent if rows else "conf/clusters"
    return "\n".join([*lines, f"({where}; use: deepspark submit STAGE --cluster NAME)"])
