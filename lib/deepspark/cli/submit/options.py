"""spark-submit options from the resolved config, for ``deepspark submit``.

The master and driver memory must be fixed before the driver JVM starts (a running session cannot
change them), so the same config the job will load is turned into spark-submit flags: ``--master``
(and ``--deploy-mode``), ``--driver-memory``, one ``--conf k=v`` per Spark setting, ``--archives``
with the packed venv when the cluster file ships one; :func:`conf_files` lists the config files
for ``--files``, :func:`library_zip` builds the ``--py-files`` zip and :func:`model_files` adds
a ``package.module:factory`` model's source.
"""

from __future__ import annotations

import os
import secrets
import sys
import zipfile
from collections.abc import Mapping, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from deepspark.config import Config, spark_value
from deepspark.config.clusters import ClusterConfig
from deepspark.environ import snapshot
from deepspark.envpack import ARCHIVE_ALIAS
from deepspark.errors import ConfigError, SetupError
from deepspark.spark import console_progress, delta_settings, driver_java_options

PACKAGE_DIR = Path(__file__).resolve().parents[2]  # lib/deepspark
LOCAL_KEY_FILE = "work/.pseudonym-key"


def submit_args(
    cfg: Config,
    *,
    python: str | None = None,
    environ: Mapping[str, str] | None = None,
    cluster: ClusterConfig | None = None,
    master: str | None = None,
    archive: str | Path | None = None,
) -> list[str]:
    """The spark-submit options that the config's ``spark`` section and the cluster imply.

    Args:
        cfg: The resolved config of the job's first pipeline (the one its session is built from).
        python: This venv's interpreter: the driver's, and the executors' unless the cluster ships
            or names another (``spark.pyspark.python`` / ``spark.pyspark.driver.python``).
        environ: Where to look up ``SPARK_MASTER``; this process's when None.
        cluster: The cluster file (``--cluster``); its settings win over the config's.
        master: ``--master`` as given on the command line; wins over everything else.
        archive: The packed venv, for a cluster with ``python_env: packed``.

    Returns:
        ``["--master", m, ("--deploy-mode", d,) "--driver-memory", mem, "--conf", "k=v", ...,
        ("--archives", "env.tar.gz#environment")]`` with booleans lower-case, as Spark expects.
        The master is the first of: ``master``, ``SPARK_MASTER``, the cluster's, the config's.

    Raises:
        ConfigError: A value cannot be passed on a command line (it holds a newline), or a
            packed cluster without an archive.
    """
    env = snapshot() if environ is None else environ
    master = master or env.get("SPARK_MASTER") or (cluster and cluster.master) or cfg.spark.master
    args = ["--master", master]
    if cluster is not None and cluster.deploy_mode != "client":
        args += ["--deploy-mode", cluster.deploy_mode]
    args += ["--driver-memory", cfg.spark.driver_memory]
    settings = {key: spark_value(value) for key, value in cfg.spark.settings.items()}
    settings.update(_python_settings(cluster, python))
    if cluster is not None:
        settings.update({key: spark_value(value) for key, value in cluster.settings.items()})
    if cfg.paths.format == "delta":  # spark-submit resolves the jars before the driver starts
        settings = delta_settings(settings)
    java = "spark.driver.extraJavaOptions"
    if cluster is None or cluster.deploy_mode == "client":  # a driver on the cluster lacks the file
        settings[java] = driver_java_options(settings.get(java, ""))
    settings.setdefault("spark.ui.showConsoleProgress", console_progress())
    for key, value in settings.items():
        args += ["--conf", f"{key}={value}"]
    if cluster is not None and cluster.python_env == "packed":
        if archive is None:
            raise ConfigError("python_env: packed needs the packed venv archive")
        args += ["--archives", f"{archive}#{ARCHIVE_ALIAS}"]
    for arg in args:
        if "\n" in arg or "\0" in arg:
            raise ConfigError(f"spark option {arg!r} cannot be passed to spark-submit")
    return args


def _python_settings(cluster: ClusterConfig | None, python: str | None) -> dict[str, str]:
    """Which interpreter the driver and the executors run.

    ``submitter``: this venv's, at the same path on every node. ``packed``: executors (and a
    driver on the cluster) run the shipped archive's, unpacked into their working directory.
    ``image``: the cluster's settings name it.
    """
    env = cluster.python_env if cluster is not None else "submitter"
    if env == "image":
        return {}
    if env == "packed":
        shipped = f"./{ARCHIVE_ALIAS}/bin/python"
        on_cluster = cluster is not None and cluster.deploy_mode == "cluster"
        driver = shipped if on_cluster else python
        out = {"spark.pyspark.python": shipped}
        if driver:
            out["spark.pyspark.driver.python"] = driver
        return out
    if not python:
        return {}
    return {"spark.pyspark.python": python, "spark.pyspark.driver.python": python}


def conf_files(configs: Sequence[Config], extra: Sequence[str] = ()) -> list[str]:
    """Every config file to ship with ``--files``: each config's base file, then the file.

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
    return _zip_tree(src, Path(dist) / f"{src.name}-{_version(src.name)}.zip")


def model_files(configs: Sequence[Config], dist: str | Path = "dist") -> list[str]:
    """The ``--py-files`` a ``package.module:factory`` model needs: its file or zipped package.

    A package is zipped as ``{dist}/{package}.zip``, the name training ranks on executors look
    for (:mod:`deepspark.train.worker`). Found as training preflight finds it: on ``sys.path``
    or in the working directory. Nothing when it is installed (site-packages: the environment
    ships it) or not found here (the driver's preflight then says so in one line).
    """
    import importlib.machinery

    from deepspark.models.custom import is_custom, top_level

    out: list[str] = []
    for cfg in configs:
        train = cfg.pipeline.train
        if train is None or not is_custom(train.model):
            continue
        top = top_level(train.model)
        spec = importlib.machinery.PathFinder.find_spec(top, [*sys.path, os.getcwd()])
        origin = spec.origin if spec is not None else None
        if origin is None or not os.path.isfile(origin):
            continue
        path = Path(origin)
        if any(part.endswith("-packages") for part in path.parts):
            continue
        if path.name == "__init__.py":
            path = _zip_tree(path.parent, Path(dist) / f"{top}.zip")
        if str(path) not in out:
            out.append(str(path))
    return out


def _zip_tree(src: Path, target: Path) -> Path:
    """``src`` zipped into ``target`` under its own name, rebuilt only when out of date."""
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
    # A name of its own: two submits that find the zip stale at once each write a whole copy.
    partial = target.with_suffix(f".zip.{os.getpid()}.tmp")
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as zf:
        for path, name in zip(sources, names, strict=True):
            zf.write(path, name)
    partial.replace(target)  # atomic: a concurrent submit never ships a half-written zip
    return target


def local_key_override(
    configs: Sequence[Config],
    *,
    master: str,
    environ: Mapping[str, str] | None = None,
    key_file: str | Path = LOCAL_KEY_FILE,
    create: bool = True,
) -> list[str]:
    """``privacy.key_file=...`` for a local run that was given no pseudonymization key.

    Jobs refuse to pseudonymize without a key. A local run gets one generated once into
    ``key_file`` (owner-only, kept, so pseudonyms stay stable across runs). A cluster run, or a
    config or environment that names a key, gets nothing: a key made up here would silently
    differ from the one used before. ``create=False`` (a dry run) names the file without
    writing it.
    """
    env = snapshot() if environ is None else environ
    given = any(env.get(c.privacy.key_env) or c.privacy.key_file for c in configs)
    if given or not master.startswith("local"):
        return []
    path = Path(key_file).resolve()
    if create and not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32) + "\n")
        print(
            f"generated a pseudonymization key in {key_file} (set "
            f"{configs[0].privacy.key_env} or privacy.key_file to use your own key)",
            file=sys.stderr,
        )
    return [f"privacy.key_file={path}"]


def _version(dist_name: str) -> str:
    try:
        return version(dist_name)
    except PackageNotFoundError as e:
        raise SetupError(
            f"{dist_name} is not installed: run ./test.sh or ./spark-submit.sh once to install it"
        ) from e
