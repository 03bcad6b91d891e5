"""The one walk of the config fields, and the checkpoint rule it drives.

A training run's checkpoint folder is named by a hash of exactly the settings that change what is
learned (config/learning.py). Changing anything else (the registry, decoding threads, the stopping
rule, logging, an architecture that is not trained) resumes the stopped run; changing what is
learned starts afresh in another folder.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import pytest

from deepspark.config import Config
from deepspark.config.fields import (
    hints,
    learned_plain,
    learning_of,
    section_of,
    walk,
    yaml_fields,
)
from deepspark.config.learning import learning
from deepspark.config.train import TrainConfig
from deepspark.stages import train as train_stage
from deepspark.train import checkpoint as ckpt
from deepspark.train.job import prepare
from tests.synthetic import train_config, write_features

SPLITS = {"train": [40, 40], "validation": [20, 20], "test": [20, 20]}

# Not what is learned: the run resumes (the sequence config trains the rnn; cnn and mlp are unused).
KEPT = [
    "pipeline.train.register.enabled=false",
    "pipeline.train.register.beat_baselines=false",
    "pipeline.train.register.metric=rmse",
    "pipeline.train.register.baselines=[linear]",
    "pipeline.train.loader.workers=1",
    "pipeline.train.loader.prefetch=2",
    "pipeline.train.patience=9",
    "pipeline.train.monitor=loss",
    "pipeline.train.min_delta=0.01",
    "pipeline.train.local_mode=false",
    "pipeline.train.cnn.hidden=7",
    "pipeline.train.mlp.hidden=[5]",
]
# What is learned: a new folder.
FRESH = [
    "pipeline.train.lr=0.1",
    "pipeline.train.seed=1",
    "pipeline.train.rnn.hidden=[16]",
    "pipeline.train.batch_size=32",
    "pipeline.train.epochs=4",
    "pipeline.train.loader.mix=2",
    "pipeline.train.ema=0.9",
]


def _train_sections() -> list[type]:
    """Every dataclass reachable from TrainConfig (its sections, theirs, ...)."""
    found, todo = [], [TrainConfig]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo += [s for f in yaml_fields(cls) if (s := section_of(hints(cls)[f.name])[0])]
    return found


@pytest.mark.parametrize("cls", _train_sections(), ids=lambda c: c.__name__)
def test_every_training_setting_is_declared_exactly_once(cls):
    declared = learning_of(cls)
    names = {f.name for f in yaml_fields(cls)}
    if declared is None:  # a section every field of which its parent declares kept
        assert cls.__name__ == "RegistryConfig"
        assert TrainConfig.LEARNING.of("register") == "keeps"
        return
    groups = [declared.changes, declared.keeps, declared.sections, declared.architectures]
    assert sum(len(g) for g in groups) == len(set().union(*groups)), "a name in two groups"
    assert set().union(*groups) == names


def test_the_walk_gives_every_training_key_a_classification():
    keys = {i.path: i.learned for i in walk(Config) if i.path.startswith("pipeline.train.")}
    assert None not in keys.values()
    assert keys["pipeline.train.lr"] == "changes"
    assert keys["pipeline.train.loader.workers"] == "keeps"
    assert keys["pipeline.train.register.metric"] == "keeps"
    assert keys["pipeline.train.cnn.hidden"] == "architecture"
    assert keys["pipeline.train.loader"] == "section"
    assert {i.learned for i in walk(Config) if i.path.startswith("spark.")} == {None}


def test_a_setting_declared_nowhere_cannot_be_hashed():
    @dataclasses.dataclass(frozen=True)
    class Section:
        LEARNING = learning(changes="a")
        a: int = 1
        b: int = 2

    with pytest.raises(TypeError) as e:
        learned_plain(Section())
    assert str(e.value) == (
        "pipeline.train.b: declared in none (or several) of changes, keeps, sections and "
        "architectures of Section.LEARNING"
    )


@pytest.fixture
def features(tmp_path) -> Path:
    write_features(tmp_path / "data", "flights", "sequence", SPLITS)
    return tmp_path


@pytest.mark.parametrize("change", KEPT)
def test_a_setting_that_does_not_change_what_is_learned_keeps_the_checkpoint(features, change):
    before = prepare(train_config(features, "sequence")).checkpoint_dir
    assert prepare(train_config(features, "sequence", change)).checkpoint_dir == before


@pytest.mark.parametrize("change", FRESH)
def test_a_setting_that_changes_what_is_learned_starts_afresh(features, change):
    before = prepare(train_config(features, "sequence")).checkpoint_dir
    assert prepare(train_config(features, "sequence", change)).checkpoint_dir != before


def test_another_window_starts_afresh(tmp_path):
    write_features(tmp_path / "four" / "data", "flights", "sequence", SPLITS, steps=4)
    write_features(tmp_path / "six" / "data", "flights", "sequence", SPLITS, steps=6)
    four = prepare(train_config(tmp_path / "four", "sequence")).checkpoint_dir
    six = prepare(train_config(tmp_path / "six", "sequence")).checkpoint_dir
    assert Path(four).name != Path(six).name


class _Stop(Exception):
    """Stands for a killed run: raised once the second epoch's state is written."""


def test_a_stopped_run_resumes_after_changes_that_do_not_change_what_is_learned(
    features, monkeypatch, caplog
):
    write_state = ckpt.write_state

    def stop_after_two_epochs(directory, state):
        write_state(directory, state)
        if state["epoch"] == 2 and not state["finished"]:
            raise _Stop

    monkeypatch.setattr(ckpt, "write_state", stop_after_two_epochs)
    with pytest.raises(_Stop):
        train_stage.run(train_config(features, "sequence", "pipeline.train.epochs=4"), None)
    monkeypatch.undo()

    changed = train_config(
        features,
        "sequence",
        "pipeline.train.epochs=4",
        "pipeline.train.log_every_s=1",
        *KEPT,
    )
    with caplog.at_level(logging.INFO, logger="deepspark.train"):
        result = train_stage.run(changed, None)
    folder = result.outputs["checkpoints"]
    assert f"resuming {folder} from epoch 2 of 4" in caplog.messages
    state = ckpt.read_state(folder)
    assert state["finished"] and state["epoch"] == 4
    assert [h["epoch"] for h in ckpt.load(folder)["history"]] == [0, 1, 2, 3]
