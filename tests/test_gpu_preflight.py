"""GPU preflight: missing GPU settings fail in one line before TorchDistributor starts anything,
and conf/gpu/discover-gpus.sh reports a node's GPUs the way Spark reads them."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from deepspark.config.train import TrainConfig
from deepspark.errors import ConfigError, SetupError
from deepspark.manifest import FeatureManifest
from deepspark.train import launch
from deepspark.train.job import TrainJob
from deepspark.train.resources import GPU_HINT, check_local_gpus, check_spark_gpus
from tests.synthetic import train_config

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "conf" / "gpu" / "discover-gpus.sh"

LOCAL = TrainConfig(model="mlp", use_gpu=True, local_mode=True, processes=2)
CLUSTER = TrainConfig(model="mlp", use_gpu=True, local_mode=False, processes=2)
STANDALONE = {"spark.master": "spark://10.0.0.1:7077"}
DRIVER_2 = {"spark.master": "local[4]", "spark.driver.resource.gpu.amount": "2"}
EXECUTORS = {
    **STANDALONE,
    "spark.task.resource.gpu.amount": "1",
    "spark.executor.resource.gpu.amount": "1",
}
SCRIPT_KEY = "spark.executor.resource.gpu.discoveryScript"


def refused(cfg: TrainConfig, conf: dict[str, str], driver_gpus: tuple[str, ...] = ()) -> str:
    with pytest.raises(ConfigError) as e:
        check_spark_gpus(cfg, conf, driver_gpus)
    return str(e.value)


def test_cpu_training_needs_no_gpu_settings():
    check_spark_gpus(TrainConfig(model="mlp"), {"spark.master": "yarn"})
    check_local_gpus(False, 0, 4)


def test_local_mode_needs_driver_gpus():
    assert refused(LOCAL, {"spark.master": "local[4]"}) == (
        "train.use_gpu=true but the Spark driver, where the processes run, has no GPUs "
        "configured: spark.driver.resource.gpu.amount is not set (set it, and "
        "spark.driver.resource.gpu.discoveryScript=conf/gpu/discover-gpus.sh)"
    )
    zero = {"spark.master": "local[4]", "spark.driver.resource.gpu.amount": "0"}
    assert "configured: spark.driver.resource.gpu.amount=0 (set it" in refused(LOCAL, zero)


def test_local_mode_needs_the_driver_to_have_found_its_gpus():
    assert refused(LOCAL, DRIVER_2) == (
        "train.use_gpu=true and spark.driver.resource.gpu.amount=2 but the driver found no GPU "
        "addresses (set spark.driver.resource.gpu.discoveryScript=conf/gpu/discover-gpus.sh)"
    )


def test_local_mode_needs_a_gpu_per_process():
    three = TrainConfig(model="mlp", use_gpu=True, local_mode=True, processes=3)
    assert refused(three, DRIVER_2, ("0", "1")) == (
        "train.processes=3 but the driver has 2 GPU(s) (spark.driver.resource.gpu.amount); "
        "TorchDistributor would quietly start fewer processes: lower train.processes or raise "
        "the amount"
    )
    check_spark_gpus(LOCAL, DRIVER_2, ("0", "1"))


def test_cluster_mode_needs_a_gpu_per_task():
    assert refused(CLUSTER, STANDALONE) == (
        "train.use_gpu=true but the cluster has no GPUs configured: "
        f"spark.task.resource.gpu.amount is not set ({GPU_HINT})"
    )
    assert GPU_HINT == (
        "submit with the gpu cluster file, e.g. ./spark-submit.sh --cluster standalone-gpu ..."
    )
    half = {**EXECUTORS, "spark.task.resource.gpu.amount": "0.5"}
    assert refused(CLUSTER, half) == (
        "train.use_gpu=true but spark.task.resource.gpu.amount=0.5: TorchDistributor runs one "
        "training process per task and each needs a whole GPU (set it to 1)"
    )
    garbled = {**EXECUTORS, "spark.task.resource.gpu.amount": "one"}
    assert refused(CLUSTER, garbled) == (
        "spark.task.resource.gpu.amount: expected a number of GPUs, found 'one'"
    )


def test_cluster_mode_needs_executor_gpus():
    conf = {**EXECUTORS}
    del conf["spark.executor.resource.gpu.amount"]
    assert refused(CLUSTER, conf) == (
        "train.use_gpu=true but the cluster has no GPUs configured: "
        f"spark.executor.resource.gpu.amount is not set ({GPU_HINT})"
    )


def test_standalone_workers_assign_gpus_without_an_application_discovery_script():
    check_spark_gpus(CLUSTER, EXECUTORS)


@pytest.mark.parametrize(
    ("master", "manager"), [("yarn", "YARN"), ("k8s://https://kube:443", "Kubernetes")]
)
def test_yarn_and_kubernetes_need_a_discovery_script(master, manager):
    conf = {**EXECUTORS, "spark.master": master}
    assert refused(CLUSTER, conf) == (
        f"train.use_gpu=true on {manager} needs {SCRIPT_KEY}: {manager} does not tell executors "
        "which GPUs they got (point it at conf/gpu/discover-gpus.sh on every node)"
    )
    check_spark_gpus(CLUSTER, {**conf, SCRIPT_KEY: "./discover-gpus.sh"})
    check_spark_gpus(CLUSTER, {**conf, "spark.resources.discoveryPlugin": "com.example.Gpus"})


def test_cluster_mode_on_a_local_master_trains_on_the_driver_gpus():
    conf = {**DRIVER_2, "spark.task.resource.gpu.amount": "1"}
    assert "the driver found no GPU addresses" in refused(CLUSTER, conf)
    check_spark_gpus(CLUSTER, conf, ("0", "1"))


def test_a_launch_without_spark_needs_a_cuda_device_per_local_process():
    with pytest.raises(SetupError) as e:
        check_local_gpus(True, 0, 1)
    assert str(e.value) == (
        "train.use_gpu=true but torch sees no CUDA device on this machine; train on a GPU "
        "machine or set pipeline.train.use_gpu=false"
    )
    with pytest.raises(SetupError) as e:
        check_local_gpus(True, 2, 4)
    assert str(e.value) == (
        "train.use_gpu=true with 4 processes on this machine but torch sees 2 CUDA device(s); "
        "start at most 2 (torchrun --nproc_per_node 2)"
    )
    check_local_gpus(True, 2, 2)


def _gpu_job(local_mode: bool) -> TrainJob:
    flags = ["pipeline.train.use_gpu=true", f"pipeline.train.local_mode={str(local_mode).lower()}"]
    config = train_config(Path("unused"), "sequence", *flags)
    manifest = FeatureManifest(pipeline="t", kind="sequence", x_shape=(4,), splits={})
    return TrainJob(config=config, manifest=manifest, splits={}, checkpoint_dir="unused")


def test_the_distributor_launch_checks_the_session_first(spark):
    # The test session is local[2] without GPU settings: TorchDistributor itself would fail
    # with "GPUs were unable to be found on the driver."; the preflight says what to set.
    with pytest.raises(ConfigError, match=r"spark.driver.resource.gpu.amount is not set \(set it"):
        launch.with_distributor(_gpu_job(local_mode=True))
    with pytest.raises(ConfigError, match=r"^train.use_gpu=true but the Spark driver, where"):
        launch.with_distributor(_gpu_job(local_mode=False))


def test_the_process_launch_checks_torch_first(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "1")
    with pytest.raises(SetupError, match=r"torch sees no CUDA device on this machine"):
        launch.in_process(_gpu_job(local_mode=True))


# conf/gpu/discover-gpus.sh, run against a fake nvidia-smi: PATH holds only bash and the fake,
# so a real nvidia-smi on a GPU machine cannot answer instead.


def _path_with(tmp_path: Path, nvidia_smi: str | None) -> dict[str, str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "bash").symlink_to(shutil.which("bash"))
    if nvidia_smi is not None:
        fake = bin_dir / "nvidia-smi"
        fake.write_text(nvidia_smi)
        fake.chmod(0o755)
    return {**os.environ, "PATH": str(bin_dir)}


def _discover(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(SCRIPT)], env=env, capture_output=True, text=True, timeout=30, check=False
    )


# The fake answers only the exact query the script must make.
FAKE = """#!/bin/sh
[ "$*" = "--query-gpu=index --format=csv,noheader" ] || {{ echo "bad args: $*" >&2; exit 2; }}
printf '{out}'
"""


def test_discovery_script_is_executable():
    assert os.access(SCRIPT, os.X_OK)


def test_discovery_script_lists_two_gpus(tmp_path):
    proc = _discover(_path_with(tmp_path, FAKE.format(out="0\\n1\\n")))
    assert (proc.returncode, proc.stdout, proc.stderr) == (
        0,
        '{"name": "gpu", "addresses": ["0","1"]}\n',
        "",
    )


def test_discovery_script_fails_when_nvidia_smi_lists_no_gpu(tmp_path):
    proc = _discover(_path_with(tmp_path, FAKE.format(out="")))
    assert (proc.returncode, proc.stdout, proc.stderr) == (
        1,
        "",
        "discover-gpus.sh: nvidia-smi lists no GPU\n",
    )


def test_discovery_script_fails_when_nvidia_smi_fails(tmp_path):
    proc = _discover(_path_with(tmp_path, "#!/bin/sh\necho 'NVIDIA-SMI has failed' >&2\nexit 9\n"))
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.endswith(
        "discover-gpus.sh: nvidia-smi --query-gpu=index failed (exit status 9)\n"
    )


def test_discovery_script_fails_without_nvidia_smi(tmp_path):
    proc = _discover(_path_with(tmp_path, None))
    assert (proc.returncode, proc.stdout, proc.stderr) == (
        1,
        "",
        "discover-gpus.sh: nvidia-smi not found on PATH (no NVIDIA driver?)\n",
    )
