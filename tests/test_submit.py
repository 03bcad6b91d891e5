"""spark-submit options from config (deepspark.cli.submit.options) and the shell wrappers."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import stat
import subprocess
import zipfile
from importlib.metadata import version
from pathlib import Path

import pytest

from deepspark.cli.submit.command import ENTRY, command, parse
from deepspark.cli.submit.command import main as submit_main
from deepspark.cli.submit.options import conf_files, library_zip, local_key_override, submit_args
from deepspark.config import load_config
from deepspark.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
FLIGHTS = ROOT / "conf" / "flights.yaml"
BASH = shutil.which("bash") or "/bin/bash"
JAVA_LINE = (
    "error: java not found: Spark needs Java 17 (Debian/Ubuntu: apt-get install -y "
    "openjdk-17-jre-headless; or set JAVA_HOME)"
)


def _pairs(args: list[str], flag: str) -> list[str]:
    return [args[i + 1] for i, a in enumerate(args) if a == flag]


def test_submit_args_render_config_and_overrides():
    cfg = load_config(
        FLIGHTS,
        [
            "spark.master=local[1]",
            "spark.driver_memory=3g",
            "spark.settings.spark.sql.shuffle.partitions=4",
        ],
    )
    args = submit_args(cfg, environ={})
    assert args[:4] == ["--master", "local[1]", "--driver-memory", "3g"]
    confs = _pairs(args, "--conf")
    assert "spark.sql.shuffle.partitions=4" in confs
    assert "spark.sql.session.timeZone=UTC" in confs
    # YAML booleans reach Spark as true/false, never Python's True/False.
    assert "spark.sql.adaptive.enabled=true" in confs
    assert "spark.sql.files.ignoreCorruptFiles=false" in confs
    assert not any("pyspark.python" in c for c in confs)


def test_submit_args_python_sets_driver_and_executor_interpreter():
    args = submit_args(load_config(FLIGHTS), python="/venv/bin/python", environ={})
    confs = _pairs(args, "--conf")
    assert "spark.pyspark.python=/venv/bin/python" in confs
    assert "spark.pyspark.driver.python=/venv/bin/python" in confs


def test_spark_master_env_overrides_config(monkeypatch):
    cfg = load_config(FLIGHTS, ["spark.master=local[1]"])
    monkeypatch.setenv("SPARK_MASTER", "spark://127.0.0.1:7077")
    assert _pairs(submit_args(cfg), "--master") == ["spark://127.0.0.1:7077"]
    monkeypatch.setenv("SPARK_MASTER", "")  # set but empty: the config's master stands
    assert _pairs(submit_args(cfg), "--master") == ["local[1]"]


def test_conf_files_lists_base_then_pipeline_and_refuses_name_clashes(tmp_path):
    cfg = load_config(FLIGHTS)
    assert [Path(f).resolve() for f in conf_files([cfg])] == [
        ROOT / "conf" / "base.yaml",
        FLIGHTS,
    ]
    clash = tmp_path / "flights.yaml"
    clash.write_text("x: 1\n")
    with pytest.raises(ConfigError, match="cannot ship both"):
        conf_files([cfg], extra=[str(clash)])


def test_library_zip_is_rebuilt_only_when_sources_change(tmp_path):
    src = tmp_path / "deepspark"
    (src / "sub").mkdir(parents=True)
    (src / "__init__.py").write_text("")
    (src / "sub" / "mod.py").write_text("X = 1\n")
    (src / "__pycache__").mkdir()
    (src / "__pycache__" / "junk.pyc").write_bytes(b"\0")

    zip_path = library_zip(tmp_path / "dist", src)
    assert re.fullmatch(r"deepspark-.+\.zip", zip_path.name)
    with zipfile.ZipFile(zip_path) as zf:
        assert sorted(zf.namelist()) == ["deepspark/__init__.py", "deepspark/sub/mod.py"]

    built = zip_path.stat().st_mtime_ns
    os.utime(zip_path, ns=(built, built))
    assert library_zip(tmp_path / "dist", src).stat().st_mtime_ns == built  # up to date: kept

    (src / "new.py").write_text("")
    os.utime(src / "new.py", ns=(built - 10**9, built - 10**9))  # older than the zip, yet new
    with zipfile.ZipFile(library_zip(tmp_path / "dist", src)) as zf:
        assert "deepspark/new.py" in zf.namelist()


def test_submit_command_puts_spark_options_after_ours_and_merges_the_lists(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    monkeypatch.delenv("SPARK_MASTER", raising=False)
    args = parse(
        ["train", "-c", "conf/digits.yaml", "--conf", "spark.executor.memory=4g",
         "--py-files", "mine.zip", "--packages=org.x:y:1", "--supervise", "--dry-run",
         "spark.master=local[3]"]
    )  # fmt: skip
    # spark-submit's --conf value holds "=" yet is an option's value, not a config override.
    assert (args.target, args.configs, args.overrides) == (
        "train", ["conf/digits.yaml"], ["spark.master=local[3]"]
    )  # fmt: skip
    cmd = command(args, python="/venv/bin/python", dist=str(tmp_path))
    assert cmd[0].endswith("/pyspark/bin/spark-submit")
    assert cmd[1:3] == ["--master", "local[3]"]
    # Theirs after ours: spark-submit keeps the last value of a setting.
    confs = _pairs(cmd, "--conf")
    assert confs[-1] == "spark.executor.memory=4g"
    assert cmd.index("spark.executor.memory=4g") > cmd.index("spark.sql.session.timeZone=UTC")
    # One --py-files (spark-submit would keep only the last): the library zip, then theirs.
    (py_files,) = _pairs(cmd, "--py-files")
    assert py_files == f"{tmp_path}/deepspark-{version('deepspark')}.zip,mine.zip"
    assert _pairs(cmd, "--files") == ["conf/base.yaml,conf/digits.yaml"]
    assert _pairs(cmd, "--packages") == ["org.x:y:1"] and "--supervise" in cmd
    entry = cmd.index(str(ENTRY))
    assert cmd[entry + 1 :] == ["train", "-c", "conf/digits.yaml", "spark.master=local[3]"]


@pytest.mark.parametrize(
    ("argv", "error"),
    [
        (["train", "--conf"], "--conf needs a value"),
        (["train", "--bogus", "x"], "unknown option --bogus (see deepspark submit --help)"),
        (["train", "clean"], "unexpected argument clean (overrides are key=value)"),
        (["train", "--log-level", "loud"], "--log-level LOUD: expected one of"),
    ],
)
def test_submit_refuses_a_bad_command_line_in_one_line(argv, error):
    with pytest.raises(ConfigError) as e:
        parse(argv)
    assert str(e.value).startswith(error)


def test_submit_reports_a_bad_override_or_stage_in_one_line(capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    assert submit_main(["train", "-c", "conf/flights.yaml", "--dry-run", "spark.nope=1"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert "spark.nope" in err
    assert submit_main(["trian", "--dry-run"]) == 1
    assert capsys.readouterr().err == (
        "error: unknown stage 'trian'; expected one of pipeline, ingest, clean, aggregate, "
        "features, profile, kmeans, train, tune, evaluate, score, vacuum\n"
    )


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("SPARK_MASTER", "SPARK_HOME")}
    env.update(extra)
    return env


def test_spark_submit_dry_run_prints_the_command():
    proc = subprocess.run(
        [
            "./spark-submit.sh",
            "--dry-run",
            "jobs/ingest.py",
            "-c",
            "conf/flights.yaml",
            "spark.master=local[1]",
        ],
        cwd=ROOT,
        env=_clean_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    cmd = shlex.split(proc.stdout.strip().splitlines()[-1])
    assert cmd[0].endswith("/pyspark/bin/spark-submit")
    assert _pairs(cmd, "--master") == ["local[1]"]
    (py_files,) = _pairs(cmd, "--py-files")
    assert re.fullmatch(r"(.*/)?dist/deepspark-[^/]+\.zip", py_files)
    (files,) = _pairs(cmd, "--files")
    assert {"conf/flights.yaml", "conf/base.yaml"} <= set(files.split(","))
    venv_python = next(c for c in _pairs(cmd, "--conf") if c.startswith("spark.pyspark.python="))
    assert Path(venv_python.partition("=")[2]).is_absolute()
    # The job comes last, followed by exactly its own arguments.
    job = cmd.index("jobs/ingest.py")
    assert cmd[job + 1 :] == ["-c", "conf/flights.yaml", "spark.master=local[1]"]


def test_spark_submit_dry_run_without_conf_ships_all_defaults():
    proc = subprocess.run(
        ["./spark-submit.sh", "jobs/pipeline.py", "--dry-run"],
        cwd=ROOT,
        env=_clean_env(SPARK_MASTER="spark://127.0.0.1:7077"),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    cmd = shlex.split(proc.stdout.strip().splitlines()[-1])
    assert _pairs(cmd, "--master") == ["spark://127.0.0.1:7077"]
    (files,) = _pairs(cmd, "--files")
    assert {"conf/base.yaml", "conf/flights.yaml", "conf/digits.yaml"} <= set(files.split(","))
    assert cmd[-1] == "jobs/pipeline.py"  # no -c given: the job runs its own defaults


def test_pseudonym_key_is_generated_once_for_local_masters(tmp_path, capsys):
    cfg = load_config(FLIGHTS)
    key_file = tmp_path / "work" / ".pseudonym-key"
    first = local_key_override([cfg], master="local[2]", environ={}, key_file=key_file)
    assert first == [f"privacy.key_file={key_file}"]
    key = key_file.read_text().strip()
    assert re.fullmatch(r"[0-9a-f]{64}", key)
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "DEEPSPARK_PSEUDONYM_KEY" in err

    again = local_key_override([cfg], master="local[*]", environ={}, key_file=key_file)
    assert again == first and key_file.read_text().strip() == key
    assert capsys.readouterr().err == ""


def test_pseudonym_key_is_never_generated_for_a_cluster_or_over_a_given_key(tmp_path):
    key_file = tmp_path / "key"
    cfg = load_config(FLIGHTS)
    assert (
        local_key_override([cfg], master="spark://10.0.0.1:7077", environ={}, key_file=key_file)
        == []
    )
    env = {"DEEPSPARK_PSEUDONYM_KEY": "mine"}
    assert local_key_override([cfg], master="local[2]", environ=env, key_file=key_file) == []
    named = load_config(FLIGHTS, ["privacy.key_file=/etc/deepspark/key"])
    assert local_key_override([named], master="local[2]", environ={}, key_file=key_file) == []
    assert not key_file.exists()


def test_bootstrap_without_java_fails_in_one_line(tmp_path):
    # An empty PATH hides every java; the check uses only bash builtins, so it still runs.
    env = {"PATH": str(tmp_path), "HOME": str(tmp_path)}
    proc = subprocess.run(
        [BASH, "-c", "source scripts/bootstrap.sh --check-java-only"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1
    assert proc.stderr == JAVA_LINE + "\n"
    assert proc.stdout == ""


def test_bootstrap_java_check_accepts_java_home(tmp_path):
    java = tmp_path / "jdk" / "bin" / "java"
    java.parent.mkdir(parents=True)
    java.write_text("#!/bin/sh\n")
    java.chmod(0o755)
    env = {"PATH": str(tmp_path), "HOME": str(tmp_path), "JAVA_HOME": str(tmp_path / "jdk")}
    proc = subprocess.run(
        [BASH, "-c", "source scripts/bootstrap.sh --check-java-only && echo ok"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "ok\n", "")
