"""The config reference: JSON Schema, docs/CONFIG.md and `config show`, against the real loader."""

from __future__ import annotations

import copy
import dataclasses
import json
import re
import types
import typing
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

import jsonschema
import pytest
import yaml

from deepspark.config import Config, load_config, to_plain
from deepspark.config.loader import deep_merge, read_yaml
from deepspark.config.reference import json_schema, markdown, reference_keys
from deepspark.config.show import show
from deepspark.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
CONF_FILES = sorted(CONF.glob("*.yaml"))  # not conf/clusters: cluster files are another shape
PIPELINES = [p for p in CONF_FILES if "pipeline" in read_yaml(p)]
DIGITS = CONF / "digits.yaml"


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema = json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_schema_is_valid_draft_2020_12():
    for resolved in (False, True):
        schema = json_schema(resolved=resolved)
        jsonschema.Draft202012Validator.check_schema(schema)
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert schema["title"]
        assert json.loads(json.dumps(schema)) == schema  # every default is JSON as it is


@pytest.mark.parametrize("path", CONF_FILES, ids=lambda p: p.name)
def test_every_conf_file_validates(validator, path):
    errors = [f"{e.json_path}: {e.message}" for e in validator.iter_errors(read_yaml(path))]
    assert errors == []


@pytest.mark.parametrize("path", PIPELINES, ids=lambda p: p.name)
def test_merged_pipeline_validates_with_required_keys(path):
    data = read_yaml(path)
    merged = deep_merge(read_yaml(path.parent / data["base"]), data)
    resolved = jsonschema.Draft202012Validator(json_schema(resolved=True))
    assert [e.message for e in resolved.iter_errors(merged)] == []


def test_required_keys_are_checked_only_on_the_merged_data(validator):
    base = read_yaml(CONF / "base.yaml")
    assert validator.is_valid(base)  # a base profile has no pipeline, and needs none
    resolved = jsonschema.Draft202012Validator(json_schema(resolved=True))
    assert [e.message for e in resolved.iter_errors(base)] == ["'pipeline' is a required property"]


def _digits_with(path: tuple[str, ...], value: Any) -> dict[str, Any]:
    data = copy.deepcopy(read_yaml(DIGITS))
    node = data
    for part in path[:-1]:
        node = node.setdefault(part, {})
    node[path[-1]] = value
    return data


UNKNOWN = "additionalProperties"


@pytest.mark.parametrize(
    ("key", "value", "kind"),
    [
        (("pipeline", "train", "epohcs"), 3, UNKNOWN),
        (("pipeline", "train", "epochs"), "many", "type"),
        (("pipeline", "train", "epochs"), True, "type"),  # YAML's bool is no int to the loader
        (("pipeline", "train", "model"), "gpt", "anyOf"),  # a built-in or module:factory
        (("pipeline", "train", "cnn", "channels"), 32, "type"),  # a list is never a scalar
        (("spark", "settings", "spark.x"), [1], "type"),  # a map of scalars
        (("pipeline", "sources", "digits", "sep"), ",", UNKNOWN),  # inside a map's entry
        (("pipeline", "kmeans", "tabel"), "gold/x", UNKNOWN),  # inside an optional section
    ],
    ids=lambda v: ".".join(v) if isinstance(v, tuple) else None,
)
def test_schema_and_loader_refuse_the_same_mistake(validator, tmp_path, key, value, kind):
    data = _digits_with(key, value)
    errors = list(validator.iter_errors(data))
    at = list(key[:-1] if kind == UNKNOWN else key)  # an unknown key is its section's error
    assert [(list(e.absolute_path), e.validator) for e in errors] == [(at, kind)]
    if kind == UNKNOWN:
        assert f"{key[-1]!r} was unexpected" in errors[0].message
    bad = tmp_path / "digits.yaml"
    bad.write_text(yaml.safe_dump(data))
    (tmp_path / "base.yaml").write_text((CONF / "base.yaml").read_text())
    with pytest.raises(ConfigError, match=re.escape(".".join(key))):
        load_config(bad)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        (("pipeline", "features", "image", "max_value"), 16),  # an int where a float is declared
        (("pipeline", "evaluate"), None),  # an optional section left empty
        (("pipeline", "evaluate"), {"model": 3}),  # str | int
        (("pipeline", "train", "ema"), None),
        (("spark", "settings", "spark.sql.shuffle.partitions"), 4),  # a scalar map takes any scalar
    ],
)
def test_schema_and_loader_accept_the_same_spellings(validator, key, value):
    data = _digits_with(key, value)
    assert [e.message for e in validator.iter_errors(data)] == []


def test_config_md_is_current():
    path = ROOT / "docs" / "CONFIG.md"
    assert path.exists(), (
        "docs/CONFIG.md is missing; run: deepspark config reference > docs/CONFIG.md"
    )
    assert path.read_text(encoding="utf-8") == markdown(), (
        "docs/CONFIG.md is stale (a config dataclass or its comments changed); regenerate it with "
        "`deepspark config reference > docs/CONFIG.md` and commit the result"
    )


def _dotted_keys(cls: type, prefix: str = "") -> Iterator[str]:
    """Every YAML key below ``cls``, walked here independently of the reference module."""
    hints = get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if not f.metadata.get("yaml", True):
            continue
        key = f"{prefix}.{f.name}" if prefix else f.name
        yield key
        tp = _unwrap(hints[f.name])
        if get_origin(tp) in (dict, Mapping, typing.Mapping):
            tp, key = _unwrap(get_args(tp)[1]), f"{key}.<name>"
        elif get_origin(tp) is tuple:
            tp, key = _unwrap(get_args(tp)[0]), f"{key}[]"
        if dataclasses.is_dataclass(tp):
            yield from _dotted_keys(tp, key)


def _unwrap(tp: Any) -> Any:
    if get_origin(tp) in (typing.Union, types.UnionType):
        rest = [a for a in get_args(tp) if a is not type(None)]
        return rest[0] if len(rest) == 1 else tp
    return tp


def test_every_key_is_documented_with_a_meaning():
    expected = list(_dotted_keys(Config))
    keys = reference_keys()
    assert sorted(k.key for k in keys) == sorted(expected)
    assert len(keys) == len({k.key for k in keys})  # each key once
    assert [k.key for k in keys if not k.meaning.strip()] == []
    assert [k.key for k in keys if not k.type or not k.default] == []
    text = markdown()
    missing = [k.key for k in keys if f"| `{k.key}` |" not in text]
    assert missing == []
    assert "pipeline.sources.<name>.uri" in expected and "pipeline.train.epochs" in expected
    assert len(keys) > 200


def test_reference_reads_meanings_from_the_source():
    by_key = {k.key: k for k in reference_keys()}
    grad_clip = by_key["pipeline.train.grad_clip"]  # a trailing comment
    assert grad_clip.meaning == "Max global gradient norm; 0 turns clipping off."
    assert (grad_clip.type, grad_clip.default) == ("float", "`1.0`")
    assert by_key["pipeline.train.residual"].meaning.startswith("What a forecaster learns")
    assert by_key["pipeline.name"].default == "*required*"
    assert by_key["pipeline.train.model"].type == "one of `cnn`, `rnn`, `mlp` or string"
    assert by_key["pipeline.train.model_args"].type == "map of scalar (string, number or bool)"
    assert by_key["pipeline.kmeans"].type == "section or null"


def test_show_annotates_every_value_with_its_source():
    out = show(
        [DIGITS], ["pipeline.train.epochs=3", "spark.settings.spark.sql.shuffle.partitions=4"]
    )
    digits, base = str(DIGITS), str(CONF / "base.yaml")
    lines = out.splitlines()
    assert lines[0] == f"# resolved from {base}, {digits} and 2 override(s)"
    for line in [
        f"  name: digits  # {digits}",
        f"    lr: 0.003  # {digits}",  # from the pipeline file
        f"  master: local[2]  # {base}",  # from the base file
        f"    spark.sql.ansi.enabled: true  # {base}",
        "    epochs: 3  # override",
        "    spark.sql.shuffle.partitions: 4  # override",
        "      kernel: 3  # default",  # pipeline.train.cnn.kernel: in neither file
        "  checkpoints: work/checkpoints  # default",
        f"          max: 9.0  # {digits}",  # the loaded value (a float), not the file's text
    ]:
        assert line in lines
    assert all(line.startswith("#") or " # " in line or line.endswith(":") for line in lines)
    # The printed YAML is the loaded config itself.
    cfg = load_config(
        DIGITS, ["pipeline.train.epochs=3", "spark.settings.spark.sql.shuffle.partitions=4"]
    )
    assert yaml.safe_load(out) == to_plain(cfg)


def test_show_lists_of_sections_and_several_files():
    flights = CONF / "flights.yaml"
    out = show([flights, DIGITS])
    docs = list(yaml.safe_load_all(out))
    assert [d["pipeline"]["name"] for d in docs] == ["flights", "digits"]
    assert f"      - table: gold/airport_hourly  # {flights}" in out.splitlines()
    assert "    lines: []  # default" in out.splitlines()  # digits has no line plots


def test_show_refuses_what_the_loader_refuses():
    bad = ["pipeline.train.epohcs=3"]
    with pytest.raises(ConfigError) as expected:
        load_config(DIGITS, bad)
    with pytest.raises(ConfigError) as got:
        show([DIGITS], bad)
    assert str(got.value) == str(expected.value)
    assert "unknown key 'pipeline.train.epohcs'" in str(got.value)
