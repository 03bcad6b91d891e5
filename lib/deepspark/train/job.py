"""Preflight: the features are checked before any launch (the launch settings: resources.py).

A training failure found by a worker surfaces as a wall of torchrun output from every rank; the
same failure found here is one line naming the split, the column or the setting to change.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from deepspark import manifest as features
from deepspark.baselines import LinearFit, fit_linear
from deepspark.config import Config
from deepspark.config.fields import learned_plain
from deepspark.config.frozen import FrozenMap
from deepspark.config.pipeline import MlflowConfig
from deepspark.config.train import TrainConfig
from deepspark.data import SplitInfo, read_split
from deepspark.data.backend import choose_backend
from deepspark.errors import ConfigError, InputError
from deepspark.layout import MANIFEST, SPLITS, Layout
from deepspark.manifest import FeatureManifest
from deepspark.models import custom
from deepspark.tracking import tracking_uri

X, Y = "x", "y"
log = logging.getLogger(__name__)
_KIND_OF_MODEL = {"cnn": "image", "rnn": "sequence"}


@dataclass(frozen=True)
class TrainJob:
    """What every rank needs, picklable: the whole config, the manifest, the splits as found.

    ``config.pipeline.train`` has every "auto" resolved but ``precision`` (it depends on each
    rank's GPU); ``persistence`` and ``linear`` are what preflight decided the model learns the
    residual over.
    """

    config: Config  # pipeline.train resolved (TrainConfig.resolved): read it, never re-derive it
    manifest: FeatureManifest
    splits: Mapping[str, SplitInfo]
    checkpoint_dir: str
    parent_run_id: str | None = None
    persistence: int | None = None  # the target's index among a step's inputs (residual model)
    linear: LinearFit | None = None  # the linear baseline the model learns the residual over
    # A package.module:factory model: the folder to put on sys.path, as the driver found it.
    model_root: str | None = None

    @property
    def train(self) -> TrainConfig:
        """The resolved ``pipeline.train`` section."""
        return self.config.pipeline.train  # type: ignore[return-value]

    @property
    def task(self) -> Literal["classification", "regression"]:  # noqa: D102
        return self.manifest.task

    @property
    def x_shape(self) -> tuple[int, ...]:  # noqa: D102
        return self.manifest.x_shape

    @property
    def n_out(self) -> int:  # noqa: D102
        return self.manifest.n_out

    @property
    def y_scale(self) -> tuple[float, float] | None:  # noqa: D102
        return self.manifest.y_scale


def prepare(cfg: Config, *, parent_run_id: str | None = None) -> TrainJob:
    """Read the feature manifest, check every split against the model, build the job."""
    tcfg = cfg.pipeline.train
    where = cfg.where
    if tcfg is None:
        raise ConfigError(f"{where}: no 'pipeline.train' section")
    # Resolved here, once: every rank reads with the backend the job carries, and the run's
    # parameters record it. A missing Petastorm fails now, in one line, not in every rank.
    backend = choose_backend(tcfg.loader.backend, tcfg.loader.workers)
    log.debug("loader backend: %s (loader.backend: %s)", backend, tcfg.loader.backend)
    layout = Layout(cfg.paths, cfg.pipeline.name)
    # Pinned: that version's manifest, which lists its files; the latest otherwise.
    manifest = features.read(layout.path("features", MANIFEST), tcfg.features_version)
    wanted = _KIND_OF_MODEL.get(tcfg.model)
    if wanted and manifest.kind != wanted:
        raise ConfigError(
            f"{where}: train.model={tcfg.model} needs {wanted} features, "
            f"but pipeline {cfg.pipeline.name!r} has {manifest.kind} features"
        )
    splits = {s: manifest.inspect(s, layout.path("features", s)) for s in SPLITS}
    _check_splits(splits, manifest, layout, tcfg)
    try:
        is_input = manifest.target in manifest.inputs
        resolved = tcfg.resolved(manifest.task, target_is_input=is_input, backend=backend)
    except ValueError as e:
        raise ConfigError(f"{where}: pipeline.train.{e}") from e
    y_scale = manifest.y_scale  # a forecaster's target statistics: checked here, not in a rank
    model_root = _check_custom(resolved, manifest, where) if custom.is_custom(tcfg.model) else None
    residual = resolved.residual
    persistence = _persistence(manifest, where) if residual == "persistence" else None
    linear = _linear(splits["train"], resolved, y_scale) if residual == "linear" else None
    pipeline = replace(cfg.pipeline, train=resolved)
    job_cfg = replace(cfg, mlflow=_absolute(cfg.mlflow), pipeline=pipeline)
    return TrainJob(
        config=job_cfg,
        manifest=manifest,
        splits=FrozenMap(splits),
        checkpoint_dir=checkpoint_dir(cfg, manifest, backend=backend),
        parent_run_id=parent_run_id,
        persistence=persistence,
        linear=linear,
        model_root=model_root,
    )


def _check_splits(
    splits: Mapping[str, SplitInfo], manifest: FeatureManifest, layout: Layout, tcfg: TrainConfig
) -> None:
    """Every split against the manifest, and enough data for every process: one line if not."""
    for name, info in splits.items():
        manifest.check_split(name, info)
    for name in ("train", "validation"):  # both are read sharded, one shard per process
        groups = splits[name].row_groups
        if groups < tcfg.processes:
            raise InputError(
                f"{layout.path('features', name)}: {groups} row group(s) for "
                f"train.processes={tcfg.processes}; Petastorm shards by row group, so a rank "
                "would get no data. Lower train.processes, or rebuild the features with more "
                "layout.files_per_split or a smaller layout.row_group_mb"
            )
    if splits["train"].rows < tcfg.processes * tcfg.batch_size:
        raise InputError(
            f"{layout.path('features', 'train')}: {splits['train'].rows} rows, fewer than one "
            f"batch per process ({tcfg.processes} x {tcfg.batch_size}); lower train.batch_size"
        )
    classes = list(manifest.classes)
    if manifest.kind == "image" and classes != list(range(len(classes))):
        raise InputError(f"labels must be 0..K-1 for classification, found {classes}")


def _absolute(mlflow: MlflowConfig) -> MlflowConfig:
    """``mlflow`` with absolute locations: workers may start in another directory."""
    root = mlflow.artifact_root
    return replace(
        mlflow,
        tracking_uri=tracking_uri(mlflow),
        artifact_root=root if "://" in root else str(Path(root).resolve()),
    )


def _check_custom(tcfg: TrainConfig, manifest: FeatureManifest, where: str) -> str:
    """Build a ``package.module:factory`` model once and run a dummy batch: one line if wrong.

    The working directory counts as importable, as under ``python -m``: the ``deepspark``
    command's own ``sys.path`` does not hold it. Returns the folder the ranks put on sys.path.
    """
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.append(os.getcwd())
    try:
        custom.check_core(
            tcfg.model, manifest.x_shape, manifest.n_out, manifest.task, tcfg.model_args
        )
        root = custom.import_root(tcfg.model)
    except ValueError as e:
        raise ConfigError(f"{where}: pipeline.train.model={tcfg.model}: {e}") from e
    log.debug("model %s: imported from %s", tcfg.model, root)
    return root


def _linear(train: SplitInfo, tcfg: TrainConfig, y_scale: tuple[float, float]) -> LinearFit:
    """The linear baseline on the training split, fitted once here for every rank and the report.

    The same fit, with the model's loss, is the baseline the run is scored against: the network
    starts at it and is measured by what it adds.
    """
    data = read_split(train.data, [X, Y], workers=tcfg.loader.workers, backend=tcfg.loader.backend)
    fit = fit_linear(data[X], data[Y], y_scale=y_scale, loss=tcfg.loss)
    log.info("residual over the linear baseline, fitted on %d training rows", len(data[Y]))
    return fit


def _persistence(manifest: FeatureManifest, where: str) -> int:
    """The target's index among a step's inputs when the model learns the residual over it."""
    if manifest.target not in manifest.inputs:
        raise ConfigError(
            f"{where}: train.residual=persistence needs the target {manifest.target!r} among the "
            f"sequence inputs; found {', '.join(manifest.inputs)}"
        )
    return manifest.inputs.index(manifest.target)


def checkpoint_dir(cfg: Config, manifest: FeatureManifest, *, backend: str | None = None) -> str:
    """``{checkpoints}/{pipeline}/{model}-{hash}``: same learning and features, same folder.

    The hash covers exactly the settings that change what is learned, as each train section
    declares them (:mod:`deepspark.config.learning`): changing where a run executes, what it
    logs, its stopping rule or the registry resumes it instead of orphaning it. ``backend``, the
    resolved ``loader.backend``, replaces ``auto`` in the hash: the two readers shuffle
    differently, so the folder follows the reader actually used.
    """
    tcfg = cfg.pipeline.train
    if backend is not None:
        tcfg = replace(tcfg, loader=replace(tcfg.loader, backend=backend))  # type: ignore
    train = learned_plain(tcfg)
    # The manifest minus the hash of the config that built it: the data's identity (rows, schema,
    # scaling), not the settings of unrelated stages.
    features = {k: v for k, v in manifest.to_json().items() if k != "config_hash"}
    blob = json.dumps({"train": train, "features": features}, sort_keys=True, default=str)
    digest = hashlib.sha256(blob.encode()).hexdigest()[:12]
    root = cfg.paths.checkpoints
    name = cfg.pipeline.train.model.replace(":", ".")  # package.module:factory: no colon in paths
    return str(Path(root).resolve() / cfg.pipeline.name / f"{name}-{digest}")
