"""Scoring benchmark: Spark batch scoring (spark_udf, as jobs/score.py does) vs one process.

    python benchmarks/score.py [-c conf/flights.yaml] [--rows 500000] [--repeat 3]

Needs the pipeline's registered champion (run ./spark-submit.sh jobs/pipeline.py first). The
pipeline's test features are replicated with pyarrow to ``--rows`` rows (real windows, so real
values), then, in one process: (a) the reference, ``mlflow.pyfunc`` on the same rows read with
pyarrow, batch by batch, in this plain Python process (torch uses its default threads); (b)
Spark local[2] (conf/base.yaml's profile) reading the Parquet and scoring with
``mlflow.pyfunc.spark_udf`` into Spark's ``noop`` sink, so writing is not measured on either side.
Target: Spark >= 1.5x the single process. Results: benchmarks/results/score-<date>.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from etl import code_hash, machine

ROOT = Path(__file__).resolve().parents[1]
TARGET = 1.5


def replicate(src: Path, rows: int, out: Path) -> Path:
    """The split's rows repeated to ``rows`` rows, 8 files (Spark gets parallel input)."""
    table = pq.read_table(src, columns=["x"])
    reps = -(-rows // table.num_rows)
    big = pa.concat_tables([table] * reps).slice(0, rows)
    out.mkdir(parents=True, exist_ok=True)
    per = -(-rows // 8)
    for i in range(8):
        pq.write_table(big.slice(i * per, per), out / f"part-{i}.parquet", row_group_size=65536)
    return out


def single_process(uri: str, data: Path, batch: int) -> float:
    """Seconds to score every row with the pyfunc model in this process."""
    import mlflow

    model = mlflow.pyfunc.load_model(uri)
    start = time.perf_counter()
    for f in sorted(data.glob("*.parquet")):
        for rb in pq.ParquetFile(f).iter_batches(batch_size=batch, columns=["x"]):
            col = rb.column(0)
            x = col.flatten().to_numpy(zero_copy_only=False).reshape(len(col), -1)
            model.predict(x.astype(np.float32, copy=False))
    return time.perf_counter() - start


def spark_scoring(spark: object, uri: str, data: Path, classes: bool) -> float:
    """Seconds for Spark to read and score every row (noop sink: nothing written)."""
    import mlflow
    from pyspark.sql import functions as F

    from deepspark.etl.score import result_type

    udf = mlflow.pyfunc.spark_udf(spark, uri, result_type=result_type(classes), env_manager="local")
    start = time.perf_counter()
    spark.read.parquet(str(data)).select(udf(F.col("x")).alias("p")).write.format("noop").mode(
        "overwrite"
    ).save()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    """Measure both paths ``--repeat`` times and report medians and the ratio."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("-c", "--config", default="conf/flights.yaml")
    p.add_argument("--rows", type=int, default=500_000)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--batch", type=int, default=10_000)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="overrides")
    args = p.parse_args(argv)
    sys.path.insert(0, str(ROOT / "lib"))
    from deepspark import registry, tracking
    from deepspark.config import load_config
    from deepspark.layout import Layout
    from deepspark.spark import build_session

    cfg = load_config(ROOT / args.config, args.set)
    mlflow = tracking.setup(cfg.mlflow)
    name = cfg.pipeline.train.register.name or cfg.pipeline.name
    uri, version = registry.resolve(mlflow, name, "champion")
    info = mlflow.models.get_model_info(uri)
    classes = registry.model_io(info).classes is not None
    test = Path(Layout(cfg.paths, cfg.pipeline.name).path("features", "test"))
    with tempfile.TemporaryDirectory() as tmp:
        data = replicate(test, args.rows, Path(tmp) / "rows")
        spark = build_session(cfg.spark, app_name="deepspark-bench-score")
        try:
            spark_scoring(spark, uri, data, classes)  # warm-up: workers start, model cached
            runs = {"single": [], "spark": []}
            for _ in range(args.repeat):
                runs["single"].append(single_process(uri, data, args.batch))
                runs["spark"].append(spark_scoring(spark, uri, data, classes))
        finally:
            spark.stop()
    med = {k: statistics.median(v) for k, v in runs.items()}
    ratio = med["single"] / med["spark"]
    result = {
        "command": "python benchmarks/score.py " + " ".join(argv or sys.argv[1:]),
        "date": dt.date.today().isoformat(),
        "machine": machine(),
        "code_sha": code_hash(),
        "model": f"{name} v{version}",
        "rows": args.rows,
        "seconds": runs,
        "rows_per_s": {k: round(args.rows / v) for k, v in med.items()},
        "spark_over_single": round(ratio, 2),
        "meets_target": ratio >= TARGET,
    }
    out = ROOT / "benchmarks" / "results" / f"score-{result['date']}.json"
    out.write_text(json.dumps(result, indent=2))
    print("| path | median s | rows/s |\n|---|---:|---:|")
    for k in ("single", "spark"):
        print(f"| {k} | {med[k]:.2f} | {result['rows_per_s'][k]:,} |")
    print(f"\n{name} v{version}, {args.rows:,} rows: Spark / single process = {ratio:.2f}x "
          f"(target >= {TARGET}); results: {out}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
