"""spark-submit options from the resolved config, for ``./spark-submit.sh``.

The shell wrapper cannot read YAML, and the master and driver memory must be fixed before the
driver JVM starts (a running session cannot change them), so this module turns the same config the
job will load into spark-submit flags::

    python -m deepspark.submit --conf conf/flights.yaml spark.master=local[4]

prints one option per line (``--null``: NUL-separated): ``--master``, ``--driver-memory``, one
``--conf k=v`` per Spark setting, ``--files`` with every config file involved, and ``--py-files``
with the library zipped into ``dist/``. A user-facing error prints one ``error: ...`` line.
"""

from __future__ import annotations

import argparse
import os
import sys
import zipfile
from collections.abc import Mapping, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from deepspark.config import Config, load_config, spark_value
from deepspark.errors import ConfigError, DeepsparkError, SetupError

PACKAGE_DIR = Path(__file__).resolve().parent


def submit_args(
    cfg: Config,
    *,
    python: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> list[str]:
    """The spark-submit options that the config's ``spark`` section implies.

    Args:
        cfg: The resolved config of the job's first pipeline (the one its session is built from).
        python: The interpreter for the driver and executors (``spark.pyspark.python`` and
            ``spark.pyspark.driver.python``); not set when None.
        environ: Where to look up ``SPARK_MASTER``, which, when set and non-empty, overrides the
            configured master; ``os.environ`` when None.

    Returns:
        ``["--master", m, "--driver-memory", mem, "--conf", "k=v", ...]`` with booleans rendered
        lower-case, as Spark expects.

    Raises:
        ConfigError: A value cannot be passed on a command line (it holds a newline).
    """
    env = os.environ if environ is None else environ
    master = env.get("SPARK_MASTER") or cfg.spark.master
    args = ["--master", master, "--driver-memory", cfg.spark.driver_memory]
    settings = {key: spark_value(value) for key, value in cfg.spark.settings.items()}
    if python:
        settings["spark.pyspark.python"] = python
        settings["spark.pyspark.driver.python"] = python
    for key, value in settings.items():
        args += ["--conf", f"{key}={value}"]
    for arg in args:
        if "\n" in arg or "\0" in arg:
            raise ConfigError(f"spark option {arg!r} cannot be passed to spark-submit")
    return args


def conf_files(configs: Sequence[Config], extra: Sequence[str] = ()) -> list[str]:
    """Every config file to ship with ``--files``: each config's base profile, then the file.

    spark-submit puts shipped files in the driver's working directory under their base name, and
    ``deepspark.cli`` finds them there; two different files with one name would clash.

    Args:
        configs: The loaded configs (``Config.files`` lists what each was read from).
        extra: More files to ship, e.g. every default config when the job is given none.

    Returns:
        The paths, first occurrence first, without duplicates.

    Raises:
        ConfigError: Two different files share a base name.
    """
    files: dict[str, str] = {}
    for path in [*(f for cfg in configs for f in cfg.files), *extra]:
        name = Path(path).name
        seen = files.setdefault(name, path)
        if Path(seen).resolve() != Path(path).resolve():
            raise ConfigError(
                f"cannot ship both {seen} and {path}: spark-submit --files puts both at ./{name}"
            )
    return list(files.values())


def library_zip(dist: str | Path = "dist", src: str | Path = PACKAGE_DIR) -> Path:
    """Zip the ``deepspark`` package for ``--py-files``, rebuilding only when it is out of date.

    Out of date means: no zip yet, a source file newer than the zip, or a source file added or
    removed since it was built. Compiled files and caches are left out.

    Args:
        dist: The folder the zip goes in (created when missing).
        src: The package directory to zip; its name is the top-level name inside the zip.

    Returns:
        ``{dist}/deepspark-{version}.zip``.
    """
    src = Path(src)
    target = Path(dist) / f"{src.name}-{_version(src.name)}.zip"
    sources = sorted(
        p
        for p in src.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix not in (".pyc", ".pyo")
    )
    names = [p.relative_to(src.parent).as_posix() for p in sources]
    if target.exists():
        built = target.stat().st_mtime
        with zipfile.ZipFile(target) as zf:
            same_files = sorted(zf.namelist()) == sorted(names)
        if same_files and all(p.stat().st_mtime <= built for p in sources):
            return target
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".zip.tmp")
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as zf:
        for path, name in zip(sources, names, strict=True):
            zf.write(path, name)
    partial.replace(target)  # atomic: a concurrent submit never ships a half-written zip
    return target


def main(argv: Sequence[str] | None = None) -> int:
    """Print the spark-submit options for ``--conf FILE... [key=value ...]``; the exit code."""
    parser = argparse.ArgumentParser(
        prog="python -m deepspark.submit",
        description="Print spark-submit options derived from a deepspark config.",
    )
    parser.add_argument("--conf", action="append", required=True, metavar="FILE")
    parser.add_argument(
        "--ship",
        action="append",
        default=[],
        metavar="FILE",
        help="another file for --files (e.g. a job's default configs)",
    )
    parser.add_argument("--python", help="interpreter for spark.pyspark.[driver.]python")
    parser.add_argument("--dist", default="dist", help="where the library zip goes")
    parser.add_argument("--null", action="store_true", help="NUL-separated output")
    parser.add_argument("overrides", nargs="*", metavar="key=value")
    args = parser.parse_args(argv)
    try:
        bad = [o for o in args.overrides if "=" not in o]
        if bad:
            raise ConfigError(f"expected key=value overrides, found {' '.join(bad)}")
        configs = [load_config(path, args.overrides) for path in args.conf]
        out = submit_args(configs[0], python=args.python)
        out += ["--files", ",".join(conf_files(configs, args.ship))]
        out += ["--py-files", str(library_zip(args.dist))]
    except DeepsparkError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    end = "\0" if args.null else "\n"
    sys.stdout.write("".join(arg + end for arg in out))
    return 0


def _version(dist_name: str) -> str:
    try:
        return version(dist_name)
    except PackageNotFoundError as e:
        raise SetupError(
            f"{dist_name} is not installed: run ./test.sh or ./spark-submit.sh once to install it"
        ) from e


if __name__ == "__main__":
    raise SystemExit(main())
