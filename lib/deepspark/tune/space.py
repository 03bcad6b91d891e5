"""The search space: checked against the training config, sampled by a trial, applied to a config.

Every key is walked like a ``key=value`` override of ``pipeline.train`` (so an unknown key is
named with the keys that exist), and every value a trial may take (both ends of a range, every
choice) is built into a full config once before the study starts: a type a key cannot hold, or a
value its section refuses (dropout 1.5), is one line then, not a failed trial later.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any

from deepspark.config import Config, to_plain
from deepspark.config.loader import build, override_target
from deepspark.config.tune import SearchRange
from deepspark.errors import ConfigError


def check_space(cfg: Config) -> Mapping[str, SearchRange]:
    """The configured space, every key and every bound checked; ConfigError names the first bad one.

    Raises:
        ConfigError: no ``pipeline.tune`` or ``pipeline.train``; an unknown key; a value the key
            cannot take.
    """
    tune, where = cfg.pipeline.tune, cfg.where
    if tune is None:
        raise ConfigError(f"{where}: no 'pipeline.tune' section (the search space to try)")
    if cfg.pipeline.train is None:
        raise ConfigError(f"{where}: pipeline.tune searches pipeline.train keys; no train section")
    for key, spec in tune.space.items():
        for value in spec.bounds():
            try:
                apply(cfg, {key: value})
            except ConfigError as e:
                found = str(e).split(": ", 1)[-1]
                raise ConfigError(f"{where}: pipeline.tune.space.{key}: {found}") from e
    return tune.space


def apply(cfg: Config, params: Mapping[str, Any]) -> Config:
    """``cfg`` with ``pipeline.train.<key>`` set to each value, rebuilt and checked like a file."""
    data = to_plain(cfg)
    for key, value in params.items():
        _set(data, ["pipeline", "train", *_path(key)], value)
    return dataclasses.replace(build(Config, data, file=cfg.where), files=cfg.files)


def _path(key: str) -> list[str]:
    """The key's path below ``pipeline.train``, walked as the loader walks an override.

    The loader knows which sections are free mappings (``model_args.width`` is one entry of
    ``model_args``); an unknown key is its ConfigError, naming the keys that exist.
    """
    return list(override_target(Config, f"pipeline.train.{key}=")[0][2:])


def _set(data: dict[str, Any], path: list[str], value: Any) -> None:
    node = data
    for part in path[:-1]:
        node = node.setdefault(part, {})
    node[path[-1]] = list(value) if isinstance(value, tuple) else value


def suggest(trial: Any, space: Mapping[str, SearchRange]) -> dict[str, Any]:
    """The trial's value of every key (Optuna's ``suggest_*``), as the training config takes it.

    A choice that is not a scalar (a list of layer sizes) is offered to Optuna as its JSON text,
    which Optuna can store and compare, and turned back here.
    """
    params: dict[str, Any] = {}
    for key, spec in space.items():
        if spec.choices:
            offered = [_offered(c) for c in spec.choices]
            picked = trial.suggest_categorical(key, offered)
            params[key] = spec.choices[offered.index(picked)]
        elif spec.integer:
            params[key] = trial.suggest_int(
                key, int(spec.low), int(spec.high), step=int(spec.step or 1), log=spec.log
            )
        else:
            params[key] = trial.suggest_float(
                key, float(spec.low), float(spec.high), step=spec.step, log=spec.log
            )
    return params


def _offered(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return json.dumps(list(value) if isinstance(value, tuple) else value)


def from_stored(space: Mapping[str, SearchRange], stored: Mapping[str, Any]) -> dict[str, Any]:
    """A finished trial's parameters (as Optuna stored them) as the training config takes them."""
    out: dict[str, Any] = {}
    for key, value in stored.items():
        spec = space.get(key)
        if spec is not None and spec.choices:
            offered = [_offered(c) for c in spec.choices]
            value = spec.choices[offered.index(value)] if value in offered else value
        out[key] = value
    return out


def nested(params: Mapping[str, Any]) -> dict[str, Any]:
    """Dotted ``pipeline.train`` keys as the nested mapping a YAML overlay holds."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        _set(out, _path(key), value)
    return out
