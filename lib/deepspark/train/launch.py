"""The launchers: TorchDistributor (from a Spark job), or this process (torchrun, or alone)."""

from __future__ import annotations

import logging
import time
from typing import Any

from deepspark import environ
from deepspark.errors import DeepsparkError
from deepspark.train.job import TrainJob
from deepspark.train.resources import check_local_gpus, check_spark_gpus, check_ssl
from deepspark.train.shipped import shipped
from deepspark.train.worker import train_worker

log = logging.getLogger("deepspark.train")


def with_distributor(job: TrainJob) -> dict[str, Any] | None:
    """``train.processes`` processes started by Spark's TorchDistributor; rank 0's summary.

    Local mode runs them on the driver's host (torchrun under the hood); otherwise on executors,
    one Spark task each, with GPUs from Spark's resource scheduling when ``use_gpu``.
    """
    from pyspark.ml.torch.distributor import TorchDistributor
    from pyspark.sql import SparkSession

    cfg = job.train
    spark = SparkSession.active()
    conf = _session_conf(spark)
    gpus = spark.sparkContext.resources.get("gpu")
    check_ssl(conf)
    check_spark_gpus(cfg, conf, gpus.addresses if gpus is not None else ())
    distributor = TorchDistributor(
        num_processes=cfg.processes, local_mode=cfg.local_mode, use_gpu=cfg.use_gpu
    )
    started = time.perf_counter()
    log.debug(
        "TorchDistributor: %d process(es), local_mode=%s, use_gpu=%s",
        cfg.processes, cfg.local_mode, cfg.use_gpu,
    )  # fmt: skip
    # torchrun prints a five-line banner when OMP_NUM_THREADS is unset; each process sets its
    # thread count itself (worker.py), so name that count here and spare the log.
    threads = str(environ.torch_threads(cfg.processes))
    unset = not environ.is_set("OMP_NUM_THREADS")
    if unset and cfg.local_mode:
        environ.put("OMP_NUM_THREADS", threads)
    try:
        # Executors may have deepspark only as the --py-files zip: see deepspark.train.shipped.
        fn, args = (train_worker, (job,)) if cfg.local_mode else shipped(train_worker, job)
        summary = distributor.run(fn, *args)
    except RuntimeError as e:
        raise TrainingError(f"training failed: {_first_line(e)} (worker output above)") from e
    finally:
        if unset:
            environ.drop("OMP_NUM_THREADS")
    # Every rank returns rank 0's summary; when rank 0 died, TorchDistributor can still hand back
    # another rank's (empty) result: no summary means no trained model, whatever the exit status.
    if not summary:
        raise TrainingError(
            "training failed on rank 0 (its traceback is in the worker output above)"
        )
    log.debug("training finished in %.1fs", time.perf_counter() - started)
    return summary


def _session_conf(spark: Any) -> dict[str, str]:
    """The context's conf (what the session started with) under the session's (what was set since).

    ``RuntimeConfig.getAll`` is Spark 4 only; ``SET`` lists the same settings on Spark 3.5 too.
    """
    started = dict(spark.sparkContext.getConf().getAll())
    if hasattr(type(spark.conf), "getAll"):
        return {**started, **spark.conf.getAll}
    return {**started, **{row.key: row.value for row in spark.sql("SET").collect()}}


class TrainingError(DeepsparkError):
    """A training process failed after launch."""


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0][:300] if text else type(e).__name__


def in_process(job: TrainJob) -> dict[str, Any] | None:
    """Run the worker here: one plain process, or one rank of a ``torchrun`` launch."""
    cfg = job.train
    if cfg.use_gpu:
        import torch

        visible = torch.cuda.device_count() if torch.cuda.is_available() else 0
        check_local_gpus(True, visible, environ.local_world_size())
    return train_worker(job)
