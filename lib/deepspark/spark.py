"""The one place a SparkSession is built.

Entry points call :func:`build_session` once and pass the session down; library code never calls
the builder.
"""

from __future__ import annotations

import os
import shutil
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING

from deepspark import environ
from deepspark.config import spark_value
from deepspark.config.pipeline import SparkConfig
from deepspark.errors import SetupError

if TYPE_CHECKING:  # pyspark is imported where a session is built: submitting needs none of it
    from pyspark.sql import SparkSession

JAVA_HINT = (
    "java not found: Spark needs Java 17 "
    "(Debian/Ubuntu: apt-get install -y openjdk-17-jre-headless; or set JAVA_HOME)"
)


LOG4J2 = Path(__file__).resolve().parent / "log4j2.properties"
# Spark runs one step quieter than deepspark: at our default INFO it says WARN and worse, and
# -v (DEBUG) shows its INFO lines; Spark's own DEBUG is for debugging Spark.
SPARK_LEVELS = {"DEBUG": "INFO", "INFO": "WARN", "WARNING": "ERROR", "ERROR": "ERROR"}


def driver_java_options(configured: str = "") -> str:
    """``spark.driver.extraJavaOptions``: the configured string, plus our log4j2 file.

    Spark reads one string for the option, so a setting elsewhere replaces, not extends, it:
    the configured flags are kept and the logging file added unless one is already named.
    """
    if "log4j2.configurationFile" in configured:
        return configured
    return f"{configured} -Dlog4j2.configurationFile=file:{LOG4J2}".strip()


def console_progress() -> str:
    """Spark's console progress bar only for a person watching: never in a CI log or a file."""
    return "true" if sys.stderr.isatty() else "false"


def require_java() -> None:
    """Fail in one line, before Spark's own stack trace, when no JVM can be found."""
    java_home = environ.get("JAVA_HOME")
    if java_home and os.path.exists(os.path.join(java_home, "bin", "java")):
        return
    if shutil.which("java") is None:
        raise SetupError(JAVA_HINT)


# Delta Lake. The jars are not configured by hand: the stack's lock pins the delta-spark Python
# package, and its version, with the installed PySpark's, names the one Maven artifact built for
# that Spark (Delta's own configure_spark_with_delta_pip applies the same rule); the lock's
# `# jars:` line states it and tests/test_stack.py holds the two together.
#
# What Delta's artifact brings that Spark already ships (Hadoop's client, Parquet, Jackson,
# logging, codecs): resolved, they are 77 MB more to download on a fresh machine, and a second
# copy of each on the classpath. Spark's own copies are the ones its build was tested with.
DELTA_EXCLUDES = (
    "org.apache.hadoop:hadoop-client-api",
    "org.apache.hadoop:hadoop-client-runtime",
    "org.apache.parquet:parquet-hadoop",
    "org.apache.parquet:parquet-column",
    "org.apache.parquet:parquet-common",
    "org.apache.parquet:parquet-encoding",
    "org.apache.parquet:parquet-format-structures",
    "org.apache.parquet:parquet-jackson",
    "com.fasterxml.jackson.core:jackson-databind",
    "com.fasterxml.jackson.core:jackson-core",
    "com.fasterxml.jackson.core:jackson-annotations",
    "org.apache.logging.log4j:log4j-core",
    "org.apache.logging.log4j:log4j-api",
    "org.apache.logging.log4j:log4j-slf4j2-impl",
    "org.slf4j:slf4j-api",
    "org.xerial.snappy:snappy-java",
    "com.github.luben:zstd-jni",
    "commons-logging:commons-logging",
    "io.airlift:aircompressor",
    "org.roaringbitmap:RoaringBitmap",
)


def delta_package(spark_version: str | None = None, delta: str | None = None) -> str:
    """The Maven coordinates of the Delta build for a Spark and a ``delta-spark`` release.

    Both default to the installed ones.

    Raises:
        SetupError: ``delta-spark`` is not installed, or its release has no build for this Spark.
    """
    spark_version = spark_version or version("pyspark")
    try:
        delta = delta or version("delta-spark")
    except PackageNotFoundError as e:
        raise SetupError(
            "paths.format is delta, but the delta-spark package is not installed "
            "(install a lock from locks/, or set paths.format: parquet)"
        ) from e
    major_minor = ".".join(spark_version.split(".")[:2])
    if int(delta.split(".")[0]) < 4:  # Delta 3.x: one artifact per Scala version, Spark 3.5 only
        if major_minor != "3.5":
            raise SetupError(f"delta-spark {delta} is built for Spark 3.5; found {spark_version}")
        return f"io.delta:delta-spark_2.12:{delta}"
    return f"io.delta:delta-spark_{major_minor}_2.13:{delta}"


def delta_settings(configured: dict[str, str]) -> dict[str, str]:
    """The settings a session needs for Delta tables, merged into the ``configured`` ones.

    A package the configuration already names (a cluster's ``hadoop-aws``) is kept beside Delta's.
    """
    packages = [p for p in configured.get("spark.jars.packages", "").split(",") if p]
    excludes = [e for e in configured.get("spark.jars.excludes", "").split(",") if e]
    mine = delta_package()
    return {
        **configured,
        "spark.jars.packages": ",".join([mine, *(p for p in packages if p != mine)]),
        "spark.jars.excludes": ",".join(
            [*excludes, *(e for e in DELTA_EXCLUDES if e not in excludes)]
        ),
        "spark.sql.extensions": _joined(
            configured.get("spark.sql.extensions"), "io.delta.sql.DeltaSparkSessionExtension"
        ),
        "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
        # Delta rebuilds a table's state from its log in a job of this many tasks, 50 by
        # default: on a 2-core machine that job cost each stage ~10 s for a one-file table. The
        # log of a table written once per run is small; the shuffle's setting fits it.
        "spark.databricks.delta.snapshotPartitions": configured.get(
            "spark.databricks.delta.snapshotPartitions",
            configured.get("spark.sql.shuffle.partitions", "8"),
        ),
        # A deletion vector marks rows deleted without rewriting the file; a reader handed a
        # version's file list (pyarrow, Petastorm, the training ranks) would see them again.
        "spark.databricks.delta.properties.defaults.enableDeletionVectors": "false",
    }


def _joined(current: str | None, extension: str) -> str:
    names = [n for n in (current or "").split(",") if n]
    return ",".join(names if extension in names else [*names, extension])


def build_session(
    cfg: SparkConfig,
    app_name: str | None = None,
    log_level: str = "INFO",
    *,
    delta: bool = False,
) -> SparkSession:
    """Build (or, under spark-submit, join) the process's SparkSession from config.

    Under spark-submit its flags win: the master and driver memory are fixed before this process
    starts, and a setting it was given (a cluster file's, say) is not replaced by the config's.
    Run as a plain Python process, config supplies everything, plus our log4j2 file (Spark's
    start-up INFO lines stay quiet) and the console progress bar when stderr is a terminal.
    ``log_level`` is deepspark's (``--log-level``); Spark's is one step quieter. ``delta``
    loads the stack's Delta Lake jars (resolved from Maven into Ivy's cache on first use).
    """
    from pyspark import SparkConf, SparkContext
    from pyspark.sql import SparkSession

    require_java()
    environ.put_default("SPARK_LOCAL_IP", "127.0.0.1")
    submitted: dict[str, str] = {}
    # spark-submit starts the JVM first and hands this process its gateway; only then does a
    # SparkConf see the submitted settings (without one, SparkConf() is empty and the config's
    # local master would silently replace the cluster's).
    if environ.get("PYSPARK_GATEWAY_PORT"):
        SparkContext._ensure_initialized()  # joins spark-submit's JVM, starts none
        submitted = dict(SparkConf().getAll())
    builder = SparkSession.builder.appName(app_name or cfg.app_name)
    if "spark.master" not in submitted:
        builder = builder.master(cfg.master).config("spark.driver.memory", cfg.driver_memory)
    settings = {key: spark_value(value) for key, value in cfg.settings.items()}
    if delta:
        settings = delta_settings(settings)
    java = "spark.driver.extraJavaOptions"
    settings[java] = driver_java_options(settings.get(java, ""))
    settings.setdefault("spark.ui.showConsoleProgress", console_progress())
    # Python workers run this interpreter (its venv has pandas, pyarrow, torch), not whatever
    # `python3` is first on the PATH: `deepspark run` from a plain shell sets nothing else, and
    # the SparkContext reads the variable, not the setting, when it is built in-process.
    environ.put_default(
        "PYSPARK_PYTHON", str(cfg.settings.get("spark.pyspark.python") or sys.executable)
    )
    for key, value in settings.items():
        if key not in submitted:
            builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel(SPARK_LEVELS.get(log_level, "WARN"))
    return spark
