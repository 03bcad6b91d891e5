"""The one place a SparkSession is built.

Entry points call :func:`build_session` once and pass the session down; library code never calls
the builder.
"""

from __future__ import annotations

import os
import shutil
import sys
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
        from deepspark.io import delta as delta_lake

        settings = delta_lake.session_settings(settings)
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
