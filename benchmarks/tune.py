"""Tune benchmark: a study on the full flights features, 2 trials at a time against 1 at a time,
then the tuned configuration against the shipped one over 3 seeds.

    python benchmarks/tune.py [--trials 20] [--epochs 8] [--seeds 0,1,2] [--work DIR]

1. The flights ETL up to the features (all 336,776 flights), reused when ``--work`` has them.
2. A study of ``--trials`` trials (conf/flights.yaml's space and pruner, ``--epochs`` each) with
   ``parallelism: 2`` on ``local[2]``: wall time and best validation MAE.
3. The same trials one after another (``parallelism: 1``): every trial of step 2 queued with its
   values, so both runs train the same settings; the pruner decides again in the new order.
4. The shipped config and step 2's best.yaml, each trained with seeds ``--seeds`` as the pipeline
   trains (2 processes, TorchDistributor, early stopping): test MAE on the same rows.

Results go to benchmarks/results/tune-<date>.json and a Markdown table to stdout.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import sys
import time
from pathlib import Path

from etl import code_hash, machine

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def overrides(work: Path) -> list[str]:
    return [
        f"paths.data={work / 'data'}",
        f"paths.checkpoints={work / 'checkpoints'}",
        f"mlflow.tracking_uri=sqlite:///{work / 'mlflow.db'}",
        f"mlflow.artifact_root={work / 'artifacts'}",
    ]


def study(spark, work: Path, args, parallelism: int, name: str, queue=()) -> dict:
    from deepspark.config import load_config
    from deepspark.stages import tune
    from deepspark.train.job import prepare
    from deepspark.tune import study as studies

    cfg = load_config(ROOT / "conf" / "flights.yaml", [
        *overrides(work), f"pipeline.tune.trials={args.trials}",
        f"pipeline.tune.parallelism={parallelism}", f"pipeline.tune.epochs={args.epochs}",
        f"pipeline.tune.study={name}",
    ])  # fmt: skip
    if queue:
        from deepspark import tracking

        job = prepare(studies.trial_config(cfg, {}))
        exp = tracking.setup(cfg.mlflow).get_experiment_by_name(cfg.mlflow.experiment)
        opened, _ = studies.open_study(name, exp.experiment_id, cfg, job)
        for params in reversed(queue):  # MLflow's storage hands queued trials out newest first
            opened.enqueue_trial(params)
        opened._storage.flush_all_batches()  # queued in this instance; the stage opens its own
    started = time.perf_counter()
    result = tune.run(cfg, spark)
    seconds = time.perf_counter() - started
    opened = _load(cfg, name)
    trials = sorted(opened.get_trials(deepcopy=False), key=lambda t: t.number)
    return {
        "parallelism": parallelism,
        "seconds": round(seconds, 1),
        "best_val_mae": result.metrics.get("best_val_mae"),
        "complete": result.metrics["trials_complete"],
        "pruned": result.metrics["trials_pruned"],
        "failed": result.metrics["trials_fail"],
        "epochs_trained": sum(len(t.intermediate_values) for t in trials),
        "best_config": result.outputs.get("best_config"),
        "params": [t.params for t in trials],
    }


def _load(cfg, name: str):
    import mlflow
    import optuna
    from mlflow.optuna.storage import MlflowStorage

    mlflow.set_tracking_uri(cfg.mlflow.tracking_uri)
    exp = mlflow.get_experiment_by_name(cfg.mlflow.experiment).experiment_id
    return optuna.load_study(study_name=name, storage=MlflowStorage(experiment_id=exp))


def train(spark, path: Path, work: Path, seed: int) -> float:
    from deepspark.config import load_config
    from deepspark.stages import train as train_stage

    extra = [f"pipeline.train.seed={seed}", "pipeline.train.register.enabled=false"]
    cfg = load_config(path, [*overrides(work), *extra])
    return float(train_stage.run(cfg, spark).metrics["test.mae_common"])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--trials", type=int, default=20)
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--work", type=Path, default=ROOT / "work" / "bench-tune")
    args = p.parse_args()
    from deepspark.cli import logs

    logs.setup("INFO")  # the stages' progress and every trial's line
    from deepspark.config import load_config
    from deepspark.spark import build_session
    from deepspark.stages import pipeline

    work = args.work.resolve()
    base = load_config(ROOT / "conf" / "flights.yaml", overrides(work))
    spark = build_session(base.spark, "bench-tune")
    stamp = dt.datetime.now(dt.UTC).strftime("%H%M%S")
    out: dict = {"date": dt.date.today().isoformat(), "machine": machine(), "code": code_hash(),
                 "trials": args.trials, "epochs": args.epochs}  # fmt: skip
    try:
        if not (work / "data" / "features" / "flights" / "_manifest.json").exists():
            stages = "pipeline.stages=[ingest, clean, aggregate, features]"
            pipeline.run(load_config(ROOT / "conf" / "flights.yaml", [*overrides(work), stages]),
                         spark)  # fmt: skip
        par = study(spark, work, args, 2, f"bench-parallel-{stamp}")
        seq = study(spark, work, args, 1, f"bench-sequential-{stamp}", par["params"])
        out["parallel"], out["sequential"] = par, seq
        seeds = [int(s) for s in args.seeds.split(",")]
        shipped = [train(spark, ROOT / "conf" / "flights.yaml", work, s) for s in seeds]
        tuned = [train(spark, Path(par["best_config"]), work, s) for s in seeds]
        out["seeds"], out["shipped_test_mae"], out["tuned_test_mae"] = seeds, shipped, tuned
    finally:
        spark.stop()
    results = ROOT / "benchmarks" / "results" / f"tune-{out['date']}.json"
    results.write_text(json.dumps(out, indent=2) + "\n")
    print(
        "| run | trials | complete/pruned/failed | epochs | wall s | best val MAE |\n"
        "|---|---:|---|---:|---:|---:|"
    )
    for key in ("parallel", "sequential"):
        r = out[key]
        print(
            f"| {r['parallelism']} at a time | {args.trials} | {r['complete']:.0f}/"
            f"{r['pruned']:.0f}/{r['failed']:.0f} | {r['epochs_trained']} | {r['seconds']} | "
            f"{r['best_val_mae']:.4f} |"
        )
    print(f"\nspeed-up: {seq['seconds'] / par['seconds']:.2f}x")
    print("\n| config | " + " | ".join(f"seed {s}" for s in seeds) + " | median |")
    print("|---|" + "---:|" * (len(seeds) + 1))
    for label, maes in (("shipped", shipped), ("tuned", tuned)):
        cells = " | ".join(f"{m:.4f}" for m in maes)
        print(f"| {label} | {cells} | {statistics.median(maes):.4f} |")
    print(f"\nresults: {results}")


if __name__ == "__main__":
    main()
