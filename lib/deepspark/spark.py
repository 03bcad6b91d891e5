"""The one place a SparkSession is built.

Entry points call :func:`build_session` once and pass the session down; library code never calls
the builder.
"""

from __future__ import annotations

import os
import shutil

from pyspark import SparkConf
from pyspark.sql import SparkSession

from deepspark.config import spark_value
from deepspark.config.model import SparkConfig
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

    Under spark-submit the master and driver memory are already fixed by its flags, so config
    never overrides them there; run as a plain Python process, config supplies both.
    """
    require_java()
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    submitted = SparkConf().contains("spark.master")
    builder = SparkSession.builder.appName(app_name or cfg.app_name)
    if not submitted:
        builder = builder.master(cfg.master).config("spark.driver.memory", cfg.driver_memory)
    for key, value in cfg.settings.items():
        builder = builder.config(key, spark_value(value))
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark
