"""Launch preflight: TLS and GPU settings checked before TorchDistributor or torchrun starts.

TorchDistributor finds a GPU run on a cluster without GPUs, or TLS it cannot honour, only after
the session is up, as a stack trace (or, for GPUs, as executors that never start). These checks
turn each into one line naming the setting to change and the cluster file that sets it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from deepspark.config.train import TrainConfig
from deepspark.errors import ConfigError, SetupError

# TorchDistributor's own switch (pyspark.ml.torch.distributor.TorchDistributor._TORCH_SSL_CONF).
IGNORE_SSL = "pytorch.spark.distributor.ignoreSsl"
DISCOVERY_SCRIPT = "conf/gpu/discover-gpus.sh"
GPU_HINT = "submit with the gpu cluster file, e.g. ./spark-submit.sh --cluster standalone-gpu ..."
_DRIVER_GPUS = "spark.driver.resource.gpu.amount"
_DRIVER_SCRIPT = "spark.driver.resource.gpu.discoveryScript"
_TASK_GPUS = "spark.task.resource.gpu.amount"
_EXECUTOR_GPUS = "spark.executor.resource.gpu.amount"
_EXECUTOR_SCRIPT = "spark.executor.resource.gpu.discoveryScript"


def check_ssl(conf: Mapping[str, str]) -> None:
    """Refuse in one line what TorchDistributor would refuse in twelve, after the session is up.

    With ``spark.ssl.enabled`` TorchDistributor stops unless :data:`IGNORE_SSL` is true: the
    processes it starts exchange tensors over plain TCP (torch.distributed), outside Spark's TLS.
    """
    if _is_true(conf.get("spark.ssl.enabled")) and not _is_true(conf.get(IGNORE_SSL)):
        raise ConfigError(
            "spark.ssl.enabled=true, but TorchDistributor sends tensors between training "
            f"processes unencrypted; setting {IGNORE_SSL}=true accepts that "
            f"(spark.settings.{IGNORE_SSL}=true), or train without Spark: python -m deepspark.train"
        )


def check_spark_gpus(
    train: TrainConfig, conf: Mapping[str, str], driver_gpus: Sequence[str] = ()
) -> None:
    """With ``train.use_gpu``, check the Spark settings TorchDistributor's GPU launch relies on.

    ``conf`` is the session's Spark conf; ``driver_gpus`` the GPU addresses the driver found
    (``SparkContext.resources``). Local mode, and any ``local[...]`` master, trains on the
    driver's GPUs. Otherwise each process is one Spark task that needs a whole GPU, on executors
    that have them; YARN and Kubernetes do not tell an executor which GPUs its container got, so
    there executors also need a discovery script (standalone workers assign theirs).
    """
    if not train.use_gpu:
        return
    master = conf.get("spark.master", "")
    local_master = master == "local" or master.startswith("local[")  # as TorchDistributor reads it
    if train.local_mode or local_master:
        _check_driver_gpus(train, conf, driver_gpus)
    if train.local_mode:
        return
    task = _amount(conf, _TASK_GPUS)
    if task is None:
        raise ConfigError(
            f"train.use_gpu=true but the cluster has no GPUs configured: {_TASK_GPUS} is not set "
            f"({GPU_HINT})"
        )
    if task < 1:
        raise ConfigError(
            f"train.use_gpu=true but {_TASK_GPUS}={conf[_TASK_GPUS]}: TorchDistributor runs one "
            "training process per task and each needs a whole GPU (set it to 1)"
        )
    if local_master:
        return
    if not _amount(conf, _EXECUTOR_GPUS):
        raise ConfigError(
            "train.use_gpu=true but the cluster has no GPUs configured: "
            f"{_EXECUTOR_GPUS} is not set ({GPU_HINT})"
        )
    manager = "YARN" if master == "yarn" else "Kubernetes" if master.startswith("k8s://") else ""
    if manager and not (conf.get(_EXECUTOR_SCRIPT) or conf.get("spark.resources.discoveryPlugin")):
        raise ConfigError(
            f"train.use_gpu=true on {manager} needs {_EXECUTOR_SCRIPT}: {manager} does not tell "
            f"executors which GPUs they got (point it at {DISCOVERY_SCRIPT} on every node)"
        )


def check_local_gpus(use_gpu: bool, visible: int, processes: int) -> None:
    """With ``use_gpu``, a launch without Spark needs a CUDA device per process on this host.

    ``visible`` is ``torch.cuda.device_count()`` (0 when CUDA is not available); ``processes``
    the number started on this host (``LOCAL_WORLD_SIZE`` under torchrun, else 1).
    """
    if not use_gpu:
        return
    if visible == 0:
        raise SetupError(
            "train.use_gpu=true but torch sees no CUDA device on this machine; train on a GPU "
            "machine or set pipeline.train.use_gpu=false"
        )
    if visible < processes:
        raise SetupError(
            f"train.use_gpu=true with {processes} processes on this machine but torch sees "
            f"{visible} CUDA device(s); start at most {visible} "
            f"(torchrun --nproc_per_node {visible})"
        )


def _check_driver_gpus(train: TrainConfig, conf: Mapping[str, str], found: Sequence[str]) -> None:
    amount = _amount(conf, _DRIVER_GPUS)
    if not amount:
        shown = f"{_DRIVER_GPUS}=0" if amount == 0 else f"{_DRIVER_GPUS} is not set"
        raise ConfigError(
            f"train.use_gpu=true but the Spark driver, where the processes run, has no GPUs "
            f"configured: {shown} (set it, and {_DRIVER_SCRIPT}={DISCOVERY_SCRIPT})"
        )
    if not found:
        raise ConfigError(
            f"train.use_gpu=true and {_DRIVER_GPUS}={conf[_DRIVER_GPUS]} but the driver found no "
            f"GPU addresses (set {_DRIVER_SCRIPT}={DISCOVERY_SCRIPT})"
        )
    if train.local_mode and train.processes > amount:
        raise ConfigError(
            f"train.processes={train.processes} but the driver has {conf[_DRIVER_GPUS]} GPU(s) "
            f"({_DRIVER_GPUS}); TorchDistributor would quietly start fewer processes: lower "
            "train.processes or raise the amount"
        )


def _amount(conf: Mapping[str, str], key: str) -> float | None:
    """A resource amount from the Spark conf, None when it is not set."""
    raw = conf.get(key)
    if raw is None or not str(raw).strip():
        return None
    try:
        return float(raw)
    except ValueError as e:
        raise ConfigError(f"{key}: expected a number of GPUs, found {raw!r}") from e


def _is_true(value: str | None) -> bool:
    return str(value).strip().lower() == "true"
