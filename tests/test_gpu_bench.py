"""benchmarks/gpu.py on CPU: the emulated accelerator's AU and samples/s, and the JSON it writes."""

from __future__ import annotations

import importlib.util
import json
import sys

import pytest
import torch

from tests.synthetic import ROOT


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("gpu_bench", ROOT / "benchmarks" / "gpu.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


def test_emulated_quick_run_reports_au_and_rates_per_step_time(bench, tmp_path, capsys):
    out = tmp_path / "gpu.json"
    result = bench.main(["--emulate", "--quick", "--device", "cpu", "--out", str(out)])
    assert json.loads(out.read_text()) == result
    assert {"benchmark", "mode", "date", "device", "settings", "results"} <= set(result)
    assert result["mode"] == "emulate" and result["device"]["type"] == "cpu"
    assert result["device"]["name"]
    rows = result["results"]
    cases = {c.name for c in bench.CASES}
    # every case x emulated step time x feed, once
    wanted = {(c, ms, f) for c in cases for ms in bench.STEP_MS for f in ("staged", "loader")}
    assert {(r["case"], r["step"], r["feed"]) for r in rows} == wanted and len(rows) == len(wanted)
    batch = result["settings"]["batch_size"]
    for r in rows:
        assert 0 < r["au"] <= 1 and 0 < r["compute_s"] <= r["wall_s"]
        assert r["steps"] >= result["settings"]["min_steps"]
        assert r["samples_per_s"] == pytest.approx(r["steps"] * batch / r["wall_s"], rel=0.01)
        assert 0 <= r["data_wait_fraction"] < 1
    # The sleep is calibrated: a staged 20 ms/256 step lasts about that long at this batch size.
    for r in rows:
        if r["feed"] == "staged" and r["step"] == 20.0:
            assert r["step_ms"] == pytest.approx(20.0 * batch / 256, rel=0.4)
    table = capsys.readouterr().out
    assert "| case | emulated ms/256 | feed |" in table and result["device"]["name"] in table


def test_model_quick_run_trains_each_model_on_both_feeds(bench, tmp_path):
    out = tmp_path / "gpu.json"
    result = bench.main(
        ["--quick", "--device", "cpu", "--cases", "lstm-24x15", "--seconds", "0", "--out", str(out)]
    )
    rows = result["results"]
    assert result["mode"] == "model"
    # bf16 where the CPU has it (oneDNN's bf16 LSTM needs AVX-512); fp32 always.
    (lstm,) = (c for c in bench.CASES if c.name == "lstm-24x15")
    bf16 = (0, 1) if bench.bf16_works(lstm, torch.device("cpu")) else (0,)
    assert {(r["bf16"], r["feed"]) for r in rows} == {
        (b, f) for b in bf16 for f in ("staged", "loader")
    }
    assert all(0 < r["au"] <= 1 and r["steps"] == 2 for r in rows)
