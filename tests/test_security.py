"""Secrets stay secret: the pseudonymization key never reaches a plan, an event log, MLflow, the
data or the logs; tracking credentials stay out of config; checkpoints never run code on load;
TorchDistributor's unencrypted traffic is refused up front under spark.ssl.enabled."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import pickle
import secrets
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
import yaml
from pyspark.sql import functions as F

from deepspark.cli.submit.options import library_zip
from deepspark.config import Config, load_config
from deepspark.config.pipeline import PipelineConfig, PrivacyConfig
from deepspark.errors import ConfigError, InputError, SetupError
from deepspark.etl.clean import key_pads, pseudonymize, with_key_pads
from deepspark.privacy import pseudonym_key
from deepspark.stages import pipeline
from deepspark.train import checkpoint as ckpt
from deepspark.train.resources import check_ssl
from tests.realdata import slice_config, write_slice

ROOT = Path(__file__).resolve().parents[1]
KEY = b"security-test-key-5f1e0c7a"


def key_needles(key: bytes) -> dict[str, bytes]:
    """Every form in which the key (or a pad, which is the key XOR a constant) could leak."""
    ipad, opad = key_pads(key)
    out = {"key": key}
    for name, raw in {"key": key, "ipad": ipad, "opad": opad}.items():
        out[f"{name} hex"] = raw.hex().encode()
        out[f"{name} HEX"] = raw.hex().upper().encode()
    return out


def leaks(text: bytes | str, needles: dict[str, bytes]) -> list[str]:
    data = text.encode() if isinstance(text, str) else text
    return [name for name, needle in needles.items() if needle in data]


def plan_strings(df) -> str:
    plans = [df._jdf.queryExecution().toString()]
    for mode in ("simple", "extended", "codegen", "cost", "formatted"):
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            df.explain(mode=mode)
        plans.append(buf.getvalue())
    return "\n".join(plans)


# The key in Spark plans and event logs.


def test_the_key_is_in_no_plan_string(spark):
    df = spark.createDataFrame([("N14228", 1), (None, 2)], "tail string, n int")
    out = pseudonymize(df, ("tail",), KEY).filter(F.col("n") > 0)
    assert sorted(out.collect(), key=lambda r: r.n)[1].tail is None
    assert out.columns == ["tail", "n"]  # the pad columns are gone
    text = plan_strings(out)  # after collect: AQE's final plan included
    assert "__hmac_ipad" in text  # the plans are about the HMAC...
    assert leaks(text, key_needles(KEY)) == []  # ...and hold nothing of the key
    assert KEY.decode() not in text
    # The check can fail: a pad as a literal (the old implementation) shows in the plan.
    ipad, _ = key_pads(KEY)
    assert leaks(plan_strings(df.select(F.lit(ipad))), key_needles(KEY)) == ["ipad HEX"]


def test_pad_columns_must_not_shadow_existing_ones(spark):
    df = spark.createDataFrame([("a",)], "__hmac_ipad string")
    with pytest.raises(ValueError, match=r"^with_key_pads: column\(s\) __hmac_ipad already exist$"):
        with_key_pads(df, KEY)


EVENT_LOG_JOB = textwrap.dedent(
    """
    import os, sys
    from pyspark import StorageLevel
    from deepspark.config.pipeline import SparkConfig
    from deepspark.etl.clean import pseudonymize
    from deepspark.spark import build_session

    key, logs, out, regex = os.environ["DEEPSPARK_PSEUDONYM_KEY"], *sys.argv[1:4]
    settings = {
        "spark.eventLog.enabled": "true",
        "spark.eventLog.dir": logs,
        "spark.eventLog.compress": "false",  # plain JSON lines, to grep
        "spark.ui.enabled": "false",
        "spark.redaction.regex": regex,
        # How a cluster file would hand the key to executors; redacted by base.yaml's regex.
        "spark.executorEnv.DEEPSPARK_PSEUDONYM_KEY": key,
    }
    spark = build_session(SparkConfig(app_name="eventlog", master="local[1]", settings=settings))
    df = spark.createDataFrame([("N14228",), ("N24211",), (None,)], "tail string")
    marked = pseudonymize(df, ("tail",), key.encode()).persist(StorageLevel.DISK_ONLY)
    marked.write.parquet(out)
    assert marked.count() == 3
    spark.stop()
    """
)


def test_the_key_is_in_no_event_log(tmp_path):
    """A session of its own: event logging is fixed when a session starts (about 20 s)."""
    key = f"evlog-{secrets.token_hex(16)}"
    logs = tmp_path / "events"
    logs.mkdir()
    regex = yaml.safe_load((ROOT / "conf" / "base.yaml").read_text())["spark"]["settings"][
        "spark.redaction.regex"
    ]
    env = {**os.environ, "DEEPSPARK_PSEUDONYM_KEY": key, "PYTHONPATH": str(ROOT / "lib")}
    proc = subprocess.run(
        [sys.executable, "-c", EVENT_LOG_JOB, str(logs), str(tmp_path / "out"), regex],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = b"".join(p.read_bytes() for p in logs.rglob("*") if p.is_file())
    assert b"SparkListenerSQLExecutionStart" in text and b"__hmac_opad" in text  # plans logged
    assert b'"spark.executorEnv.DEEPSPARK_PSEUDONYM_KEY":"*********(redacted)"' in text
    assert leaks(text, key_needles(key.encode())) == []


# Where the key comes from.


def privacy_config(tmp_path: Path, **privacy) -> Config:
    return Config(
        pipeline=PipelineConfig(name="t", sources={}),
        privacy=PrivacyConfig(key_env="T_PSEUDONYM_KEY", **privacy),
        files=(str(tmp_path / "t.yaml"),),
    )


def key_file(tmp_path: Path, text: str, mode: int = 0o600) -> Path:
    path = tmp_path / "pseudonym-key"
    path.write_text(text)
    path.chmod(mode)
    return path


def test_the_key_comes_from_a_file_without_its_newline(tmp_path, monkeypatch):
    monkeypatch.delenv("T_PSEUDONYM_KEY", raising=False)
    path = key_file(tmp_path, "k" * 20 + "\n")
    cfg = privacy_config(tmp_path, key_file=str(path))
    assert pseudonym_key(cfg, ["t.c"]) == b"k" * 20
    monkeypatch.setenv("T_PSEUDONYM_KEY", "k" * 20)  # both set, same key: fine
    assert pseudonym_key(cfg, ["t.c"]) == b"k" * 20
    assert pseudonym_key(cfg, []) is None  # nothing to pseudonymize: no key needed


def test_a_file_and_an_environment_key_that_differ_are_refused(tmp_path, monkeypatch):
    path = key_file(tmp_path, "k" * 20)
    monkeypatch.setenv("T_PSEUDONYM_KEY", "e" * 20)
    with pytest.raises(ConfigError) as e:
        pseudonym_key(privacy_config(tmp_path, key_file=str(path)), ["t.c"])
    assert str(e.value) == (
        f"{tmp_path / 't.yaml'}: privacy.key_file {path} and $T_PSEUDONYM_KEY hold different "
        "keys; set only one of them"
    )


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o620])
def test_a_key_file_others_can_access_is_refused(tmp_path, monkeypatch, mode):
    monkeypatch.delenv("T_PSEUDONYM_KEY", raising=False)
    path = key_file(tmp_path, "k" * 20, mode)
    with pytest.raises(SetupError) as e:
        pseudonym_key(privacy_config(tmp_path, key_file=str(path)), ["t.c"])
    assert str(e.value) == (
        f"privacy.key_file {path} is accessible by group or others (mode {mode:04o}); a key must "
        f"be readable by its owner only: chmod 600 {path}"
    )


def test_a_missing_or_short_key_file_is_refused(tmp_path, monkeypatch):
    monkeypatch.delenv("T_PSEUDONYM_KEY", raising=False)
    missing = tmp_path / "nope"
    with pytest.raises(SetupError) as e:
        pseudonym_key(privacy_config(tmp_path, key_file=str(missing)), ["t.c"])
    assert str(e.value) == f"privacy.key_file {missing} does not exist (expected the key in it)"
    path = key_file(tmp_path, "short\n")
    with pytest.raises(SetupError) as e:
        pseudonym_key(privacy_config(tmp_path, key_file=str(path)), ["t.c"])
    assert str(e.value) == (
        f"pseudonymizing t.c needs a secret key in privacy.key_file {path} (at least 16 bytes; "
        "it is only 5 bytes); e.g. (umask 077 && python -c 'import secrets; "
        f"print(secrets.token_hex(32))' > {path})"
    )


def test_a_missing_environment_key_names_both_sources(tmp_path, monkeypatch):
    monkeypatch.delenv("T_PSEUDONYM_KEY", raising=False)
    with pytest.raises(SetupError) as e:
        pseudonym_key(privacy_config(tmp_path), ["t.c", "u.d"])
    assert str(e.value) == (
        "pseudonymizing t.c, u.d needs a secret key in $T_PSEUDONYM_KEY (at least 16 bytes; it "
        "is unset); e.g. export T_PSEUDONYM_KEY=$(python -c 'import secrets; "
        "print(secrets.token_hex(32))'), or name a key file in privacy.key_file"
    )


# Tracking credentials.


def test_credentials_in_the_tracking_uri_are_refused_at_load(tmp_path):
    path = tmp_path / "t.yaml"
    path.write_text(
        "pipeline: {name: t, sources: {}}\n"
        "mlflow: {tracking_uri: 'http://alice:s3cret@mlflow.example:5000/'}\n"
    )
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert str(e.value) == (
        f"{path}: mlflow: tracking_uri: expected no user or password in the URI, found "
        "http://***@mlflow.example:5000/; give credentials in the environment instead: "
        "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD, or MLFLOW_TRACKING_TOKEN"
    )
    assert "s3cret" not in str(e.value) and "alice" not in str(e.value)
    with pytest.raises(ConfigError, match=r"found https://\*\*\*@host/; give"):
        load_config(path, ["mlflow.tracking_uri=https://token@host/"])
    assert load_config(path, ["mlflow.tracking_uri=http://host:5000"]).mlflow.tracking_uri


# Nothing secret anywhere after a real ingest + clean.


def test_no_secret_reaches_mlflow_data_logs_or_the_library_zip(
    spark, workdir, monkeypatch, caplog, capfd
):
    key = f"pk-{secrets.token_hex(20)}"
    password, token = f"pw-{secrets.token_hex(12)}", f"tok-{secrets.token_hex(12)}"
    monkeypatch.setenv("DEEPSPARK_PSEUDONYM_KEY", key)
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "deepspark-test")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", password)
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", token)
    caplog.set_level(logging.DEBUG)
    raw = write_slice(workdir / "raw", days=1)
    cfg = slice_config(raw, workdir, "pipeline.stages=[ingest, clean]")
    results = pipeline.run(cfg, spark)
    assert set(results) == {"ingest", "clean"}
    assert results["clean"].metrics["flights.rows_out"] > 0
    zip_path = library_zip(workdir / "dist")

    needles = key_needles(key.encode())
    for name, value in {"password": password, "token": token}.items():
        needles[name] = value.encode()
        needles[f"{name} hex"] = value.encode().hex().encode()
    found: dict[str, list[str]] = {}
    files = [p for p in workdir.rglob("*") if p.is_file()]
    assert workdir / "mlflow.db" in files
    assert any("artifacts" in p.parts for p in files)  # config.yaml of the runs
    for path in files:
        found[str(path)] = leaks(path.read_bytes(), needles)
        if path.suffix == ".parquet":  # compressed pages: check the values too
            found[f"{path} (values)"] = leaks(str(pq.read_table(path).to_pylist()), needles)
    with zipfile.ZipFile(zip_path) as zf:
        for member in zf.namelist():
            found[f"{zip_path}:{member}"] = leaks(zf.read(member), needles)
    captured = capfd.readouterr()
    found["logs"] = leaks(caplog.text + captured.out + captured.err, needles)
    assert {where: names for where, names in found.items() if names} == {}
    # The pseudonyms are there, made with this key: the grep looked at the right data.
    silver = pq.read_table(workdir / "data" / "silver" / "flights" / "flights").to_pandas()
    assert silver["tailnum"].dropna().str.fullmatch(r"[0-9a-f]{64}").all()


# Checkpoints: weights only.


class _Payload:
    """Unpickling this runs code (it creates a file): what any crafted checkpoint could do."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').close()",))


def test_a_checkpoint_that_would_run_code_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    torch.save({"model": {}, "extra": _Payload(str(marker))}, tmp_path / ckpt.LAST)
    with pytest.raises(InputError) as e:
        ckpt.load(tmp_path)
    assert str(e.value) == (
        f"{tmp_path / ckpt.LAST}: expected a weights-only checkpoint (tensors and plain values), "
        "found one that refers to exec; it was not loaded (delete it to train from "
        "scratch)"
    )
    assert isinstance(e.value.__cause__, pickle.UnpicklingError)
    assert not marker.exists()
    torch.load(tmp_path / ckpt.LAST, weights_only=False)  # what weights_only=False would do
    assert marker.exists()


def test_a_training_checkpoint_round_trips_weights_only(tmp_path):
    net = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.LayerNorm(2))
    opt = torch.optim.AdamW(net.parameters(), lr=0.1)
    net(torch.ones(4, 3)).sum().backward()
    opt.step()
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0)
    payload = {
        "model": net.state_dict(), "optimizer": opt.state_dict(),
        "scheduler": sched.state_dict(), "epoch": 1, "best": None, "stopped": False,
        "history": [{"epoch": 0, "val_loss": 0.5}], "config": {"a": [1, "b", None]},
        "run_id": "abc",
    }  # fmt: skip
    ckpt.save(tmp_path, ckpt.LAST, payload)
    back = ckpt.load(tmp_path)
    assert torch.equal(back["model"]["0.weight"], net.state_dict()["0.weight"])
    assert back["optimizer"]["param_groups"] == opt.state_dict()["param_groups"]
    assert {k: back[k] for k in ("history", "config", "best")} == {
        k: payload[k] for k in ("history", "config", "best")
    }


def test_save_refuses_what_load_could_not_read(tmp_path):
    with pytest.raises(TypeError) as e:
        ckpt.save(tmp_path, ckpt.LAST, {"history": [{"loss": np.float64(0.5)}]})
    assert str(e.value) == (
        "checkpoint last.pt['history'][0]['loss']: expected tensors and plain values only, "
        "found float64"
    )
    assert not list(tmp_path.iterdir())  # nothing written


# TorchDistributor under spark.ssl.enabled.


def test_ssl_without_the_distributor_override_is_refused_up_front():
    with pytest.raises(ConfigError) as e:
        check_ssl({"spark.ssl.enabled": "true"})
    assert str(e.value) == (
        "spark.ssl.enabled=true, but TorchDistributor sends tensors between training processes "
        "unencrypted; setting pytorch.spark.distributor.ignoreSsl=true accepts that "
        "(spark.settings.pytorch.spark.distributor.ignoreSsl=true), or train without Spark: "
        "python -m deepspark.train"
    )
    check_ssl({"spark.ssl.enabled": "TRUE", "pytorch.spark.distributor.ignoreSsl": "true"})
    check_ssl({"spark.ssl.enabled": "false"})
    check_ssl({})
