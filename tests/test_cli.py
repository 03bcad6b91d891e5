"""The ``deepspark`` command: its sub-commands, the jobs' arguments, log levels and the summary."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest

from deepspark.cli import command, jobs, logs
from deepspark.config.files import PACKAGED, find
from deepspark.errors import ConfigError
from deepspark.stages import StageResult
from deepspark.stages.pipeline import summary_table

ROOT = Path(__file__).resolve().parents[1]


def test_the_console_script_lists_the_commands():
    script = Path(sys.executable).parent / "deepspark"
    proc = subprocess.run([str(script), "--help"], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    for name in ("run", "submit", "config", "clusters"):
        assert f"\n    {name} " in proc.stdout


def test_every_stage_is_a_job_and_every_job_file_a_one_line_call():
    from deepspark.config import STAGES

    assert set(STAGES) <= set(jobs.JOBS)
    for path in sorted((ROOT / "jobs").glob("*.py")):
        code = [line for line in path.read_text().split('"""')[-1].splitlines() if line.strip()]
        assert code == [
            "from deepspark.cli import job",
            'if __name__ == "__main__":',
            f'    raise SystemExit(job("{path.stem}"))',
        ], path
        assert jobs.lookup(path.stem)  # explore is the profile stage's alias


def test_clusters_lists_every_profile_with_its_description(capsys):
    assert command.main(["clusters"]) == 0
    out = capsys.readouterr().out.splitlines()
    names = [line.split()[0] for line in out[:-1]]
    assert names == sorted(p.stem for p in (ROOT / "conf" / "clusters").glob("*.yaml"))
    assert out[2].startswith("local           this machine, local[2] (laptop and CI)")


def test_configs_are_found_in_the_package_from_any_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    expected = PACKAGED / "digits.yaml"
    assert find("conf/digits.yaml") == find("digits.yaml") == find("digits") == expected
    assert find("conf/nope.yaml") == Path("conf/nope.yaml")  # the loader then says not found
    (tmp_path / "digits.yaml").write_text("x: 1\n")  # spark-submit --files put one here
    assert find("conf/digits.yaml") == Path("digits.yaml")


def test_the_old_conf_flag_says_what_it_became():
    with pytest.raises(ConfigError) as e:
        jobs.parse_args(["--conf", "conf/digits.yaml"], "train", jobs.BOTH)
    assert str(e.value) == (
        "--conf conf/digits.yaml: the config file option is -c/--config FILE "
        "(--conf key=value is spark-submit's own option)"
    )


def test_a_job_reports_an_unknown_stage_in_one_line(capsys):
    assert jobs.job("trian", []) == 2
    assert capsys.readouterr().err.startswith("error: unknown stage 'trian'; expected one of")


@pytest.mark.parametrize(
    ("argv", "level"),
    [([], None), (["-v"], "DEBUG"), (["-q"], "WARNING"), (["--log-level", "error"], "ERROR")],
)
def test_log_level_flags(argv, level):
    assert jobs.parse_args([*argv, "a=1"], "train", jobs.BOTH) == (
        [str(find(c)) for c in jobs.BOTH], ["a=1"], level
    )  # fmt: skip


def test_chatty_libraries_are_quiet_below_debug():
    quiet = logs._Quiet()
    record = logging.LogRecord("TorchDistributor", logging.INFO, "", 0, "Started", None, None)
    assert not quiet.filter(record)
    record.levelno = logging.WARNING
    assert quiet.filter(record)
    assert quiet.filter(logging.LogRecord("deepspark", logging.INFO, "", 0, "x", None, None))


def test_the_pipeline_summary_is_one_aligned_row_per_stage():
    results = {
        "ingest": StageResult("ingest", {"rows_in": 336776, "rows_out": 336770,
                                         "rows_quarantined": 6}),
        "train": StageResult("train", {"epochs": 12}),
        "score": StageResult("score", skipped="not scored: no champion"),
    }  # fmt: skip
    assert summary_table(results, {"ingest": 12.34, "train": 61.0}).splitlines() == [
        "  stage   rows in  rows out  quarantined  seconds",
        "  ingest  336,776   336,770            6     12.3",
        "  train         -         -            -     61.0",
        "  score   not scored: no champion",  # a stage skipped for what it found says why
    ]
