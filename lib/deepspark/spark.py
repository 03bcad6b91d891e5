"""The one place a SparkSession is built.

Entry points call :func:`build_session` once and pass the session down; library code never calls
the builder.
"""

from __future__ import annotations

import os
import shutil

from pyspark import SparkConf, SparkContext
from pyspark.sql import SparkSession

from deepspark.config import spark_value
from deepspark.config.pipeline import SparkConfig
from deepspark.errors import SetupError

JAVA_HINT = (
    "java not found: Spark needs Java 17 "
    "(Debian/Ubuntu: apt-get install -y openjdk-17-jre-headless; or set JAVA_HOME)"
)


def require_java() -> None:
    """Fail in one line, before Spark's own stack trace, when no JVM can be found."""
    java_home = os.environ.get("JAVA_HOME")
    if java_home and os.path.exists(os.path.join(java_home, "bin", "java")):
        return
    if shutil.which("java") is None:
        raise SetupError(JAVA_HINT)


def build_session(cfg: SparkConfig, app_name: str | None = None) -> SparkSession:
    """Build (or, under spark-submit, join) the process's SparkSession from config.

    Under spark-submit its flags win: the master and driver memory are fixed before this process
    starts, and a setting it was given (a cluster profile's, say) is not replaced by the config's.
    Run as a plain Python process, config supplies everything.
    """
    require_java()
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    submitted: dict[str, str] = {}
    # spark-submit starts the JVM first and hands this process its gateway; only then does a
    # SparkConf see the submitted settings (without one, SparkConf() is empty and the config's
    # local master would silently replace the cluster's).
    if os.environ.get("PYSPARK_GATEWAY_PORT"):
        SparkContext._ensure_initialized()  # joins spark-submit's JVM, starts none
        submitted = dict(SparkConf().getAll())
    builder = SparkSession.builder.appName(app_name or cfg.app_name)
    if "spark.master" not in submitted:
        builder = builder.master(cfg.master).config("spark.driver.memory", cfg.driver_memory)
    for key, value in cfg.settings.items():
        if key not in submitted:
            builder = builder.config(key, spark_value(value))
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark
