"""Preflight: the features are checked before any launch (the launch settings: resources.py).

A training failure found by a worker surfaces as a wall of torchrun output from every rank; the
same failure found here is one line naming the split, the column or the setting to change.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from pyarrow import fs as pafs

from deepspark.config import Config, to_plain
from deepspark.config.train import TrainConfig
from deepspark.data import SplitInfo, inspect_split, read_split, to_url
from deepspark.data.arrow import split_files
from deepspark.data.backend import choose_backend
from deepspark.errors import ConfigError, InputError
from deepspark.layout import MANIFEST, SPLITS, Layout
from deepspark.tracking import tracking_uri
from deepspark.train.baselines import LinearFit, fit_linear

X, Y = "x", "y"
log = logging.getLogger(__name__)
_KIND_OF_MODEL = {"cnn": "image", "rnn": "sequence"}


@dataclass(frozen=True)
class TrainJob:
    """What every rank needs, in plain picklable values (a Config holds read-only proxies)."""

    config: dict[str, Any]
    config_file: str
    task: str  # "classification" | "regression"
    x_shape: tuple[int, ...]
    n_out: int
    y_scale: tuple[float, float] | None
    splits: dict[str, SplitInfo]
    manifest: dict[str, Any]
    checkpoint_dir: str
    parent_run_id: str | None = None
    persistence: int | None = None  # the target's index among a step's inputs (residual model)
    linear: LinearFit | None = None  # the linear baseline the model learns the residual over

    @property
    def train(self) -> TrainConfig:
        """The ``pipeline.train`` section, rebuilt as its frozen dataclass."""
        from deepspark.config.loader import build

        return build(TrainConfig, self.config["pipeline"]["train"], file=self.config_file)

    def full_config(self) -> Config:
        """The whole job config, rebuilt as its frozen dataclass."""
        from deepspark.config.loader import build

        return build(Config, self.config, file=self.config_file)


def prepare(cfg: Config, *, parent_run_id: str | None = None) -> TrainJob:
    """Read the feature manifest, check every split against the model, build the job."""
    tcfg = cfg.pipeline.train
    where = cfg.files[-1] if cfg.files else "config"
    if tcfg is None:
        raise ConfigError(f"{where}: no 'pipeline.train' section")
    # Resolved here, once: every rank reads with the backend the job carries, and the run's
    # parameters record it. A missing Petastorm fails now, in one line, not in every rank.
    backend = choose_backend(tcfg.loader.backend, tcfg.loader.workers)
    log.info("loader backend: %s (loader.backend: %s)", backend, tcfg.loader.backend)
    layout = Layout(cfg.paths, cfg.pipeline.name)
    manifest = read_manifest(layout.path("features", MANIFEST))
    kind = manifest.get("kind")
    wanted = _KIND_OF_MODEL.get(tcfg.model)
    if wanted and kind != wanted:
        raise ConfigError(
            f"{where}: train.model={tcfg.model} needs {wanted} features, "
            f"but pipeline {cfg.pipeline.name!r} has {kind} features"
        )
    x_shape = tuple(int(d) for d in manifest["x_shape"])
    splits = {s: inspect_split(layout.path("features", s)) for s in SPLITS}
    for name, info in splits.items():
        check_split(name, info, kind, math.prod(x_shape))
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
    if kind == "image":
        classes = list(manifest["classes"])
        if classes != list(range(len(classes))):
            raise InputError(f"labels must be 0..K-1 for classification, found {classes}")
        task, n_out, y_scale = "classification", len(classes), None
    else:
        scale = manifest["scaling"][manifest["target"]]
        task, n_out, y_scale = "regression", 1, (float(scale["mean"]), float(scale["std"]) or 1.0)
    persistence, linear = None, None
    if kind == "sequence":
        residual = tcfg.residual
        if residual == "auto":  # persistence where the target is an input (MODELS.md: why)
            residual = "persistence" if manifest.get("target") in manifest["inputs"] else "none"
        if residual == "persistence":
            persistence = _persistence(manifest, where)
        elif residual == "linear":
            linear = _linear(splits["train"], tcfg, y_scale, backend)  # type: ignore[arg-type]
    plain = to_plain(cfg)
    plain["pipeline"]["train"]["loader"]["backend"] = backend
    # Workers may start in another directory: hand them absolute locations.
    plain["mlflow"]["tracking_uri"] = tracking_uri(cfg.mlflow)
    root = cfg.mlflow.artifact_root
    plain["mlflow"]["artifact_root"] = root if "://" in root else str(Path(root).resolve())
    return TrainJob(
        config=plain,
        config_file=where,
        task=task,
        x_shape=x_shape,
        n_out=n_out,
        y_scale=y_scale,
        splits=splits,
        manifest=manifest,
        checkpoint_dir=checkpoint_dir(cfg, manifest, backend=backend),
        parent_run_id=parent_run_id,
        persistence=persistence,
        linear=linear,
    )


def _linear(
    train: SplitInfo, tcfg: TrainConfig, y_scale: tuple[float, float], backend: str
) -> LinearFit:
    """The linear baseline on the training split, fitted once here for every rank and the report.

    The same fit, with the model's loss, is the baseline the run is scored against: the network
    starts at it and is measured by what it adds.
    """
    data = read_split(train.url, [X, Y], workers=tcfg.loader.workers, backend=backend)
    loss = tcfg.loss if tcfg.loss not in ("auto", "cross_entropy") else "l1"
    fit = fit_linear(data[X], data[Y], y_scale=y_scale, loss=loss)
    log.info("residual over the linear baseline, fitted on %d training rows", len(data[Y]))
    return fit


def _persistence(manifest: dict[str, Any], where: str) -> int:
    """The target's index among a step's inputs when the model learns the residual over it."""
    inputs, target = list(manifest.get("inputs", [])), manifest.get("target")
    if target not in inputs:
        raise ConfigError(
            f"{where}: train.residual=persistence needs the target {target!r} among the "
            f"sequence inputs; found {', '.join(inputs)}"
        )
    return inputs.index(target)


def read_manifest(path: str) -> dict[str, Any]:
    """The features stage's manifest (shapes, scaling, splits)."""
    filesystem, local = pafs.FileSystem.from_uri(to_url(path))
    try:
        with filesystem.open_input_stream(local) as fh:
            return json.loads(fh.read().decode("utf-8"))
    except FileNotFoundError as e:
        raise InputError(f"{path}: no feature manifest; run the features stage first") from e


def check_split(name: str, info: SplitInfo, kind: str, x_len: int) -> None:
    """Columns, types, row length and row count of one split, or an :class:`InputError`."""
    missing = [c for c in (X, Y) if c not in info.columns]
    if missing:
        raise InputError(
            f"{info.url}: the {name} split is missing column(s) {', '.join(missing)} "
            f"(available: {', '.join(info.columns)})"
        )
    x_type, y_type = info.columns[X], info.columns[Y]
    if not re.fullmatch(r"(large_)?list<\w+: (float|double)( not null)?>", x_type):
        raise InputError(f"{info.url}: column x must be a list of floats, found {x_type}")
    y_ok = r"u?int(8|16|32|64)" if kind == "image" else r"float|double"
    if not re.fullmatch(y_ok, y_type):
        expected = "an integer label" if kind == "image" else "a float target"
        raise InputError(f"{info.url}: column y must be {expected}, found {y_type}")
    if info.rows == 0:
        raise InputError(f"{info.url}: the {name} split is empty; check the split settings")
    found = _first_row_length(info.url)
    if found is not None and found != x_len:
        raise InputError(
            f"{info.url}: x rows hold {found} values, the manifest's x_shape needs {x_len}"
        )


def _first_row_length(url: str) -> int | None:
    filesystem, files = split_files(url)
    for path in files:
        with filesystem.open_input_file(path) as fh:
            for batch in pq.ParquetFile(fh).iter_batches(batch_size=1, columns=[X]):
                if batch.num_rows:
                    cell = batch.column(0)[0]
                    return None if not cell.is_valid else len(cell)
    return None


def checkpoint_dir(cfg: Config, manifest: dict[str, Any], *, backend: str | None = None) -> str:
    """``{checkpoints}/{pipeline}/{model}-{hash}``: same settings and features, same folder.

    Settings that do not change what is learned (resume, logging) stay out of the hash, so
    turning them does not orphan a half-finished run. ``backend``, the resolved
    ``loader.backend``, replaces ``auto`` in the hash: the two readers shuffle differently, so
    the folder follows the reader actually used (``auto`` resolved to ``arrow`` hashes as
    ``arrow`` always did).
    """
    train = to_plain(cfg.pipeline.train)
    if backend is not None:
        train["loader"]["backend"] = backend
    for key in ("resume", "log_every_s"):
        train.pop(key, None)
    # The manifest minus the hash of the config that built it: the data's identity (rows, schema,
    # scaling), not the settings of unrelated stages.
    features = {k: v for k, v in manifest.items() if k != "config_hash"}
    blob = json.dumps({"train": train, "features": features}, sort_keys=True, default=str)
    digest = hashlib.sha256(blob.encode()).hexdigest()[:12]
    root = cfg.paths.checkpoints
    return str(Path(root).resolve() / cfg.pipeline.name / f"{cfg.pipeline.train.model}-{digest}")
