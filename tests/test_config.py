"""Config loading: every file in conf/ loads, and every kind of mistake is one exact line."""

from __future__ import annotations

from pathlib import Path

import pytest

from deepspark.config import Config, config_hash, load_config
from deepspark.config.clusters import load_cluster
from deepspark.config.loader import build, read_yaml
from deepspark.errors import ConfigError

CONF = Path(__file__).resolve().parents[1] / "conf"
CONF_FILES = sorted(CONF.glob("**/*.yaml"))


@pytest.mark.parametrize("path", CONF_FILES, ids=lambda p: str(p.relative_to(CONF)))
def test_every_conf_file_loads(path):
    data = read_yaml(path)
    if path.parent.name == "clusters":  # a cluster file for ./spark-submit.sh --cluster
        profile = load_cluster(path.stem, root=CONF.parent)
        assert profile.master and profile.description
    elif "pipeline" in data:
        cfg = load_config(path)
        assert cfg.files[-1] == str(path)
    else:  # a profile (base, cluster): checked key by key, merged into pipelines at load time
        build(Config, data, file=str(path), partial=True)


def test_conf_dir_is_not_empty():
    names = {p.name for p in CONF_FILES}
    assert {"base.yaml", "flights.yaml", "digits.yaml"} <= names
    assert {"local.yaml", "standalone.yaml", "yarn.yaml", "k8s.yaml"} <= names


def _write(tmp_path, text, name="p.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


MINIMAL = """
pipeline:
  name: tiny
  sources:
    t: {uri: /data/t.csv, format: csv, schema: {a: int}}
"""


def test_minimal_config_gets_defaults(tmp_path):
    cfg = load_config(_write(tmp_path, MINIMAL))
    assert cfg.spark.master == "local[*]"
    assert cfg.pipeline.sources["t"].max_quarantine_fraction == 0.05
    assert cfg.pipeline.stages == (
        "ingest",
        "clean",
        "aggregate",
        "features",
        "profile",
        "kmeans",
        "train",
        "evaluate",
        "score",
        "vacuum",
    )
    assert cfg.pipeline.kmeans is None
    assert cfg.pipeline.train is None and cfg.paths.checkpoints == "work/checkpoints"


def test_config_is_frozen(tmp_path):
    cfg = load_config(_write(tmp_path, MINIMAL))
    with pytest.raises(AttributeError):
        cfg.pipeline.name = "other"
    with pytest.raises(TypeError):
        cfg.pipeline.sources["u"] = cfg.pipeline.sources["t"]


def test_unknown_key_names_key_and_file(tmp_path):
    path = _write(tmp_path, MINIMAL + "  clen: {}\n")
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert str(e.value) == (
        f"{path}: unknown key 'pipeline.clen' (expected one of: name, sources, clean, "
        "aggregates, features, profile, kmeans, train, tune, evaluate, score, checks, stages, "
        "incremental)"
    )


def test_unknown_key_in_base_names_the_base_file(tmp_path):
    _write(tmp_path, "spark:\n  mastr: local[1]\n", "base.yaml")
    path = _write(tmp_path, "base: base.yaml\n" + MINIMAL)
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert str(e.value) == (
        f"{tmp_path / 'base.yaml'}: unknown key 'spark.mastr' "
        "(expected one of: app_name, master, driver_memory, settings)"
    )


def test_wrong_type(tmp_path):
    path = _write(tmp_path, MINIMAL.replace("schema: {a: int}", "schema: {a: int}, arrays: [x]"))
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert (
        str(e.value) == f"{path}: pipeline.sources.t.arrays: expected a mapping, found a list ['x']"
    )


def test_bool_is_not_a_number(tmp_path):
    path = _write(
        tmp_path,
        MINIMAL.replace("schema: {a: int}", "schema: {a: int}, max_quarantine_fraction: true"),
    )
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert str(e.value) == (
        f"{path}: pipeline.sources.t.max_quarantine_fraction: expected float, found bool True"
    )


def test_missing_required_key(tmp_path):
    path = _write(tmp_path, MINIMAL.replace("format: csv, ", ""))
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert str(e.value) == f"{path}: missing required key 'pipeline.sources.t.format'"


def test_literal_choices(tmp_path):
    path = _write(tmp_path, MINIMAL.replace("format: csv", "format: xls"))
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert (
        str(e.value)
        == f"{path}: pipeline.sources.t.format: expected one of csv, json, parquet, found 'xls'"
    )


def test_yaml_on_key_hint(tmp_path):
    text = (
        MINIMAL
        + """  clean: {t: {}}
  aggregates:
    g:
      source: t
      keys: [a]
      metrics: {n: {fn: count}}
      join: {source: t, on: {a: a}}
"""
    )
    with pytest.raises(ConfigError, match="a bare on/off/yes/no key is a boolean in YAML"):
        load_config(_write(tmp_path, text))


def test_cross_reference_is_checked(tmp_path):
    path = _write(tmp_path, MINIMAL + "  clean: {u: {}}\n")
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert str(e.value) == f"{path}: pipeline: clean: 'u' is not defined (defined: t)"


def test_invalid_yaml(tmp_path):
    path = _write(tmp_path, "pipeline: [unclosed\n")
    with pytest.raises(ConfigError, match=r"p.yaml: invalid YAML \(line 2\)"):
        load_config(path)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError) as e:
        load_config(tmp_path / "nope.yaml")
    assert str(e.value) == f"{tmp_path / 'nope.yaml'}: config file not found"


def test_overrides(tmp_path):
    cfg = load_config(
        _write(tmp_path, MINIMAL),
        [
            "spark.master=local[4]",
            "spark.settings.spark.sql.shuffle.partitions=3",
            "pipeline.sources.t.uri=/elsewhere.csv",
            "pipeline.stages=[ingest]",
            "mlflow.enabled=false",
        ],
    )
    assert cfg.spark.master == "local[4]"
    assert cfg.spark.settings["spark.sql.shuffle.partitions"] == 3
    assert cfg.pipeline.sources["t"].uri == "/elsewhere.csv"
    assert cfg.pipeline.stages == ("ingest",)
    assert cfg.mlflow.enabled is False


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            "spark.mastr=x",
            "command-line override 'spark.mastr=x': unknown key 'spark.mastr' "
            "(expected one of: app_name, master, driver_memory, settings)",
        ),
        ("spark.master", "expected key=value"),
        ("spark.master.x=1", "'spark.master' is not a section"),
        ("mlflow.enabled=maybe", "mlflow.enabled: expected bool, found str 'maybe'"),
    ],
)
def test_bad_overrides(tmp_path, override, message):
    with pytest.raises(
        ConfigError, match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")
    ):
        load_config(_write(tmp_path, MINIMAL), [override])


def test_config_hash_is_stable_and_sensitive(tmp_path):
    path = _write(tmp_path, MINIMAL)
    assert config_hash(load_config(path)) == config_hash(load_config(path))
    assert config_hash(load_config(path)) != config_hash(
        load_config(path, ["spark.master=local[3]"])
    )


def test_train_section_is_typed_and_checked(tmp_path):
    base = MINIMAL + "  features:\n    image: {source: t, column: a, shape: [1, 2, 2], label: a,\n"
    base += "      max_value: 1, split: {train: 0.8, validation: 0.1, test: 0.1}}\n"
    cfg = load_config(_write(tmp_path, base + "  train: {model: cnn, cnn: {channels: [4]}}\n"))
    assert cfg.pipeline.train.cnn.channels == (4,) and cfg.pipeline.train.rnn.cell == "lstm"
    with pytest.raises(ConfigError, match=r"pipeline.train.rnn.cell: expected one of"):
        load_config(_write(tmp_path, base + "  train: {model: rnn, rnn: {cell: tcn}}\n"))
    with pytest.raises(ConfigError, match=r"train: needs a 'features' section"):
        load_config(_write(tmp_path, MINIMAL + "  train: {model: mlp}\n"))
