"""Cluster files (conf/clusters/) and what they make ./spark-submit.sh send to each cluster."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from deepspark.cli.submit.command import ENTRY, command, parse
from deepspark.cli.submit.options import submit_args
from deepspark.config import load_config
from deepspark.config.clusters import load_cluster
from deepspark.envpack import env_fingerprint, packed_env
from deepspark.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
FLIGHTS = ROOT / "conf" / "flights.yaml"


def _pairs(args: list[str], flag: str) -> list[str]:
    return [args[i + 1] for i, a in enumerate(args) if a == flag]


def _confs(args: list[str]) -> dict[str, str]:
    return dict(c.split("=", 1) for c in _pairs(args, "--conf"))


def test_a_gpu_cluster_extends_its_cluster():
    base, gpu = load_cluster("yarn", ROOT), load_cluster("yarn-gpu", ROOT)
    assert gpu.master == base.master == "yarn" and gpu.python_env == "packed"
    assert gpu.settings["spark.executor.memory"] == base.settings["spark.executor.memory"]
    assert gpu.settings["spark.task.resource.gpu.amount"] == 1
    assert gpu.settings["spark.executor.resource.gpu.discoveryScript"] == "./discover-gpus.sh"
    assert gpu.files == ("gpu/discover-gpus.sh",)
    assert gpu.overrides == (*base.overrides, "pipeline.train.use_gpu=true")


def test_unknown_cluster_lists_the_known_ones():
    with pytest.raises(ConfigError) as e:
        load_cluster("mesos", ROOT)
    assert str(e.value) == (
        f"unknown cluster file 'mesos': no {ROOT}/conf/clusters/mesos.yaml (known: k8s, "
        "k8s-gpu, local, standalone, standalone-gpu, yarn, yarn-gpu)"
    )


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("master: yarn\nexecutors: 2\n", "unknown key 'executors' (expected one of: master,"),
        (
            "master: spark://h:7077\ndeploy_mode: cluster\n",
            "<top>: deploy_mode: cluster runs Python drivers on YARN or Kubernetes only, "
            "found master spark://h:7077",
        ),
        ("master: yarn\npython_env: image\n", "python_env: image needs settings."),
        ("master: yarn\npython_env: conda\n", "python_env"),
    ],
)
def test_bad_clusters_are_one_line_naming_the_file(tmp_path, text, error):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as e:
        load_cluster(str(path))
    assert str(e.value).startswith(f"{path}: ") and error in str(e.value)


def test_master_precedence_flag_then_env_then_cluster_then_config():
    cfg, cluster = load_config(FLIGHTS), load_cluster("standalone", ROOT)
    env = {"SPARK_MASTER": "spark://env:7077"}
    assert submit_args(cfg, environ={})[1] == "local[2]"
    assert submit_args(cfg, environ={}, cluster=cluster)[1] == "spark://127.0.0.1:7077"
    assert submit_args(cfg, environ=env, cluster=cluster)[1] == "spark://env:7077"
    args = submit_args(cfg, environ=env, cluster=cluster, master="spark://flag:7077")
    assert args[1] == "spark://flag:7077"


def test_cluster_settings_win_over_the_config_and_submitter_python_is_used_everywhere():
    args = submit_args(
        load_config(FLIGHTS), python="/v/bin/python", environ={},
        cluster=load_cluster("standalone", ROOT),
    )  # fmt: skip
    confs = _confs(args)
    assert confs["spark.pyspark.python"] == confs["spark.pyspark.driver.python"] == "/v/bin/python"
    assert confs["spark.executor.cores"] == "1"
    assert "--deploy-mode" not in args and "--archives" not in args
    yarn = _confs(submit_args(load_config(FLIGHTS), environ={}, cluster=load_cluster("yarn", ROOT),
                              archive="dist/env.tar.gz"))  # fmt: skip
    assert yarn["spark.sql.shuffle.partitions"] == "200"  # base.yaml says 8


def test_packed_cluster_ships_the_venv_and_points_executors_into_it():
    args = submit_args(
        load_config(FLIGHTS), python="/v/bin/python", environ={},
        cluster=load_cluster("yarn", ROOT), archive="dist/deepspark-env-abc.tar.gz",
    )  # fmt: skip
    assert _pairs(args, "--archives") == ["dist/deepspark-env-abc.tar.gz#environment"]
    confs = _confs(args)
    assert confs["spark.pyspark.python"] == "./environment/bin/python"
    assert confs["spark.pyspark.driver.python"] == "/v/bin/python"  # client mode: this machine
    with pytest.raises(ConfigError, match="python_env: packed needs the packed venv archive"):
        submit_args(load_config(FLIGHTS), environ={}, cluster=load_cluster("yarn", ROOT))


def test_image_cluster_runs_the_images_python_in_cluster_mode():
    args = submit_args(
        load_config(FLIGHTS), python="/v/bin/python", environ={},
        cluster=load_cluster("k8s", ROOT),
    )  # fmt: skip
    assert _pairs(args, "--deploy-mode") == ["cluster"]
    confs = _confs(args)
    assert confs["spark.pyspark.python"] == "/opt/venv/bin/python"
    assert "/v/bin/python" not in " ".join(args)
    # The key reaches the driver pod from a secret, not through any --conf value.
    key_ref = "spark.kubernetes.driver.secretKeyRef.DEEPSPARK_PSEUDONYM_KEY"
    assert confs[key_ref] == "deepspark-secrets:pseudonym-key"


def test_submit_puts_cluster_overrides_before_the_users(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    monkeypatch.delenv("SPARK_MASTER", raising=False)
    monkeypatch.setenv("DEEPSPARK_PSEUDONYM_KEY", "k" * 32)
    args = parse(["train", "-c", "conf/flights.yaml", "--cluster", "yarn-gpu", "--dry-run",
                  "pipeline.train.epochs=2"])  # fmt: skip
    cmd = command(args, dist=str(tmp_path))
    assert cmd[cmd.index(str(ENTRY)) + 1 :] == [
        "train", "-c", "conf/flights.yaml",
        "pipeline.train.local_mode=false", "pipeline.train.use_gpu=true",  # the cluster's
        "pipeline.train.epochs=2",  # the user's, last
    ]  # fmt: skip
    (files,) = _pairs(cmd, "--files")
    assert files.split(",")[-1] == "conf/gpu/discover-gpus.sh"
    (archive,) = _pairs(cmd, "--archives")
    assert archive == f"{tmp_path}/deepspark-env-{env_fingerprint()}.tar.gz#environment"
    assert not list(tmp_path.glob("*.tar.gz"))  # a dry run names the archive, builds nothing


def test_spark_submit_dry_run_with_a_cluster_puts_user_overrides_last():
    env = {k: v for k, v in os.environ.items() if k not in ("SPARK_MASTER", "SPARK_HOME")}
    proc = subprocess.run(
        ["./spark-submit.sh", "jobs/train.py", "-c", "conf/digits.yaml", "--cluster",
         "standalone", "--master", "spark://10.1.2.3:7077", "--dry-run",
         "pipeline.train.local_mode=true"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    cmd = shlex.split(proc.stdout.strip().splitlines()[-1])
    assert _pairs(cmd, "--master") == ["spark://10.1.2.3:7077"]
    job = cmd.index("jobs/train.py")
    assert cmd[job + 1 :] == [
        "-c", "conf/digits.yaml",
        "pipeline.train.local_mode=false",  # the cluster's
        "pipeline.train.local_mode=true",  # the user's, applied last
    ]  # fmt: skip


def test_unknown_cluster_via_the_wrapper_is_one_line():
    proc = subprocess.run(
        ["./spark-submit.sh", "jobs/train.py", "--cluster", "nope", "--dry-run"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: unknown cluster file 'nope': no conf/clusters/nope.yaml")


def test_packed_env_is_a_venv_pack_archive_built_once(tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = next(venv.glob("lib/python*/site-packages"))
    (site / "__editable__.mypkg-0.1.pth").write_text("/somewhere/else/src\n")  # like ours
    (site / "plain.py").write_text("X = 1\n")

    archive = packed_env(tmp_path / "dist", venv)
    assert archive.name == f"deepspark-env-{env_fingerprint(venv)}.tar.gz"
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
    assert {"bin/python", "pyvenv.cfg", f"{site.relative_to(venv)}/plain.py"} <= names
    assert not any("__editable__" in n for n in names)  # deepspark ships with --py-files
    built = archive.stat().st_mtime_ns
    assert packed_env(tmp_path / "dist", venv) == archive
    assert archive.stat().st_mtime_ns == built
