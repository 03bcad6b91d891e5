"""Running jobs through ./spark-submit.sh, and comparing what two runs wrote."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

ROOT = Path(__file__).resolve().parents[2]
# The key tests/conftest.py gives in-process runs: spark-submit runs get the same, so pseudonyms
# (and so checksums) agree between the two.
KEY = os.environ.setdefault("DEEPSPARK_PSEUDONYM_KEY", "test-only-key-0123456789abcdef")


def submit_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("SPARK_MASTER", "SPARK_HOME")}
    env.update(DEEPSPARK_PSEUDONYM_KEY=KEY, **extra)
    return env


def submit(
    job: str,
    *args: str,
    log: Path,
    env: dict[str, str] | None = None,
    timeout_s: float = 900,
) -> subprocess.CompletedProcess:
    """``./spark-submit.sh JOB ARGS`` from the repo root; output kept in ``log`` for debugging.

    The output is stdout and stderr in one, in order (``proc.stdout``): under spark-submit the
    Python driver's stderr reaches the terminal through the JVM's stdout anyway.
    """
    started = time.monotonic()
    proc = subprocess.run(
        ["./spark-submit.sh", job, *args],
        cwd=ROOT,
        env=env or submit_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout_s,
    )
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text(
        f"$ ./spark-submit.sh {job} {' '.join(args)}\n"
        f"exit {proc.returncode} after {time.monotonic() - started:.0f}s\n{proc.stdout}"
    )
    return proc


def start(job: str, *args: str, log: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    """``./spark-submit.sh`` in the background, in its own process group (killable as a unit)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as out:
        return subprocess.Popen(
            ["./spark-submit.sh", job, *args],
            cwd=ROOT,
            env=env or submit_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )


def tables(data: Path) -> list[str]:
    """Every table a run wrote, as ``layer/pipeline/name`` paths relative to ``data``."""
    return sorted(str(p.parent.relative_to(data)) for p in data.rglob("_SUCCESS"))


def fingerprint(spark: SparkSession, path: Path) -> tuple[int, int]:
    """(rows, order-independent checksum) of a table.

    Doubles are rounded to 9 significant digits first: a sum over the same rows in another order
    (executors finish in any order) may differ in the last bit, which is not a different result.
    """
    df = spark.read.parquet(str(path))
    cols = [_rounded(df, f) for f in df.schema.fields]
    row = df.select(F.count(F.lit(1)), F.sum(F.xxhash64(*cols).cast("decimal(38,0)"))).first()
    return int(row[0]), int(row[1] or 0)


def _rounded(df: DataFrame, f: T.StructField):
    col = F.col(f.name)
    if isinstance(f.dataType, T.DoubleType | T.FloatType):
        return _round(col)
    if isinstance(f.dataType, T.ArrayType) and isinstance(
        f.dataType.elementType, T.DoubleType | T.FloatType
    ):
        return F.transform(col, _round)
    return col


def _round(col):
    # Round to 9 significant digits: scale by the value's own magnitude.
    scale = F.pow(F.lit(10.0), F.lit(8) - F.floor(F.log10(F.abs(col))))
    return F.when(col == 0, F.lit(0.0)).otherwise(F.round(col * scale) / scale)


def bare_executor_cluster(tmp: Path) -> Path:
    """A standalone cluster whose executors have the locked stack but not deepspark.

    That is what YARN and Kubernetes executors run (a packed venv, an image): the library reaches
    them only as the --py-files zip. Their venv lists the project venv's site-packages in a .pth;
    a path added that way is taken as is, so the .pth files inside it (the editable hook that
    makes deepspark importable in the project venv) are not processed.
    """
    bare = tmp / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True)
    site = next(bare.glob("lib/python*/site-packages"))
    (site / "stack.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    python = bare / "bin" / "python"
    probe = "import torch, pyspark, importlib.util as u; print(u.find_spec('deepspark'))"
    found = subprocess.run([python, "-c", probe], cwd=tmp, capture_output=True, text=True)
    assert found.stdout.strip() == "None", found.stderr  # the stack, without the library
    cluster = tmp / "bare-executors.yaml"
    cluster.write_text(
        "description: standalone, executors without deepspark installed\n"
        "extends: standalone\n"
        "python_env: image\n"
        "settings:\n"
        f"  spark.pyspark.python: {python}\n"
        f"  spark.pyspark.driver.python: {sys.executable}\n"
    )
    return cluster
