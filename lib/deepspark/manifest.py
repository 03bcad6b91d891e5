"""The feature manifest: what the features stage wrote, read through one type by everyone else.

Floor 1. ``features/<pipeline>/_manifest.json`` holds the shapes, the split sizes, the scaling
statistics (training period only) and, for sequences, how the windows were cut. The features
stage builds a :class:`FeatureManifest` and writes :meth:`~FeatureManifest.to_json`; training
preflight and evaluation :func:`read` it and check splits against it with
:meth:`~FeatureManifest.check_split`. Only this module knows the JSON keys.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import pyarrow.parquet as pq
from pyarrow import fs as pafs

from deepspark.config.frozen import FrozenMap
from deepspark.data import SplitInfo, inspect_split, to_url
from deepspark.data.arrow import split_files
from deepspark.errors import InputError

X, Y = "x", "y"
VERSIONS = "_manifests"  # the manifest of each version of Delta features


@dataclass(frozen=True)
class SplitSummary:
    """One split as written: rows, and files and row groups where the stage could count them.

    A Delta split also names its table ``version`` and that version's data ``paths`` (relative
    to the split's folder, which keeps older versions' files too): a reader of exactly these
    files sees the version, with no Delta library.
    """

    rows: int
    files: int | None = None
    row_groups: int | None = None
    schema: str | None = None
    version: int | None = None
    paths: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.paths is not None:  # a JSON list, as read back
            object.__setattr__(self, "paths", tuple(self.paths))


@dataclass(frozen=True)
class FeatureManifest:
    """Shapes, splits and scaling of one pipeline's features; the sequence fields are windows'."""

    pipeline: str
    kind: Literal["sequence", "image"]
    x_shape: tuple[int, ...]
    splits: Mapping[str, SplitSummary]
    source: str = ""
    config_hash: str = ""
    # Sequence windows: the per-step features in x order, the target and its scaling.
    series_key: str | None = None
    time: str | None = None
    inputs: tuple[str, ...] = ()
    target: str | None = None
    window: int | None = None
    horizon: int | None = None
    frequency: str | None = None
    season: int | None = None
    scaling: Mapping[str, tuple[float, float]] = field(default_factory=FrozenMap)  # (mean, std)
    grid_rows: int | None = None
    # Train/serve skew: 101 percentiles of each input over the training split (in x's units).
    distributions: Mapping[str, tuple[float, ...]] = field(default_factory=FrozenMap)
    # Images: the pixel scale and the labels.
    max_value: float | None = None
    classes: tuple[int, ...] = ()

    @property
    def task(self) -> Literal["classification", "regression"]:
        """Images are classified; sequences forecast their target."""
        return "classification" if self.kind == "image" else "regression"

    @property
    def skew_inputs(self) -> tuple[str, ...]:
        """The inputs train/serve skew compares: a sequence's own inputs, an image's intensity."""
        if self.kind == "image":
            return ("mean_intensity",)
        return tuple(c for c in self.inputs if c in self.scaling)

    @property
    def n_out(self) -> int:
        """Model outputs: one per class, or the one forecast."""
        return len(self.classes) if self.kind == "image" else 1

    @property
    def y_scale(self) -> tuple[float, float] | None:
        """The target's training mean and standard deviation (1 where it is constant).

        None for images. A forecaster's manifest without its target's statistics (written
        before they were kept for a target that is not an input) cannot scale forecasts back.
        """
        if self.kind == "image":
            return None
        if self.target not in self.scaling:
            raise InputError(
                f"features of {self.pipeline!r}: no scaling statistics for the target "
                f"{self.target!r} in the manifest; rebuild the features (jobs/features.py)"
            )
        mean, std = self.scaling[self.target]
        return float(mean), float(std) or 1.0

    def to_json(self) -> dict[str, Any]:
        """The manifest file's content (the keys it has always had; unset fields left out)."""
        out: dict[str, Any] = {
            "pipeline": self.pipeline,
            "source": self.source,
            "config_hash": self.config_hash,
            "kind": self.kind,
            "x_shape": list(self.x_shape),
        }
        if self.kind == "sequence":
            out.update(
                series_key=self.series_key, time=self.time, inputs=list(self.inputs),
                target=self.target, window=self.window, horizon=self.horizon,
                frequency=self.frequency, season=self.season,
                scaling={c: {"mean": m, "std": s} for c, (m, s) in self.scaling.items()},
                grid_rows=self.grid_rows,
            )  # fmt: skip
        else:
            out.update(max_value=self.max_value, classes=list(self.classes))
        if self.distributions:
            out["distributions"] = {k: list(v) for k, v in self.distributions.items()}
        out["splits"] = {
            name: {k: list(v) if k == "paths" else v for k, v in vars(s).items() if v is not None}
            for name, s in self.splits.items()
        }
        return out

    @property
    def version(self) -> int | None:
        """The features' version: their train split's Delta version (None for Parquet)."""
        train = self.splits.get("train")
        return train.version if train is not None else None

    def inspect(self, name: str, folder: str) -> SplitInfo:
        """Split ``name`` at ``folder``: exactly the manifest's files where it lists them."""
        summary = self.splits.get(name)
        paths = summary.paths if summary is not None else None
        files = None if paths is None else [f"{to_url(folder).rstrip('/')}/{p}" for p in paths]
        return inspect_split(folder, files=files, version=summary.version if summary else None)

    @classmethod
    def from_json(cls, data: Mapping[str, Any], where: str = "manifest") -> FeatureManifest:
        """Parse a manifest file's content; a missing key or kind is one :class:`InputError`."""
        try:
            scaling = {c: (v["mean"], v["std"]) for c, v in data.get("scaling", {}).items()}
            return cls(
                pipeline=data["pipeline"],
                kind=data["kind"],
                x_shape=tuple(int(d) for d in data["x_shape"]),
                splits=FrozenMap({n: SplitSummary(**s) for n, s in data["splits"].items()}),
                source=data.get("source", ""),
                config_hash=data.get("config_hash", ""),
                series_key=data.get("series_key"),
                time=data.get("time"),
                inputs=tuple(data.get("inputs", ())),
                target=data.get("target"),
                window=data.get("window"),
                horizon=data.get("horizon"),
                frequency=data.get("frequency"),
                season=data.get("season"),
                scaling=FrozenMap(scaling),
                grid_rows=data.get("grid_rows"),
                max_value=data.get("max_value"),
                classes=tuple(int(c) for c in data.get("classes", ())),
                distributions=FrozenMap(
                    {k: tuple(v) for k, v in data.get("distributions", {}).items()}
                ),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise InputError(f"{where}: not a feature manifest ({type(e).__name__}: {e})") from e

    def check_split(self, name: str, info: SplitInfo) -> None:
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
        image = self.kind == "image"
        if not re.fullmatch(r"u?int(8|16|32|64)" if image else r"float|double", y_type):
            expected = "an integer label" if image else "a float target"
            raise InputError(f"{info.url}: column y must be {expected}, found {y_type}")
        if info.rows == 0:
            raise InputError(f"{info.url}: the {name} split is empty; check the split settings")
        found, x_len = _first_row_length(info.data), math.prod(self.x_shape)
        if found is not None and found != x_len:
            raise InputError(
                f"{info.url}: x rows hold {found} values, the manifest's x_shape needs {x_len}"
            )


def read(path: str, version: int | None = None) -> FeatureManifest:
    """The features stage's manifest at ``path`` (any filesystem pyarrow reaches).

    ``version``: the manifest of that version of Delta features instead of the latest, kept
    beside it as ``_manifests/<version>.json`` (:func:`versioned`).
    """
    if version is None:
        data = _read_json(path, f"{path}: no feature manifest; run the features stage first")
        return FeatureManifest.from_json(data, path)
    where = versioned(path, version)
    try:
        data = _read_json(where, where)
    except InputError as e:
        kept = ", ".join(str(v) for v in versions(path)) or "none"
        folder = path.rsplit("/", 1)[0]
        raise InputError(f"{folder}: no features version {version} (kept: {kept})") from e
    return FeatureManifest.from_json(data, where)


def versioned(path: str, version: int) -> str:
    """Where the manifest of features ``version`` is kept, beside the latest one at ``path``."""
    return f"{path.rsplit('/', 1)[0]}/{VERSIONS}/{version}.json"


def versions(path: str) -> list[int]:
    """The versions whose manifests are kept beside the latest one at ``path``, oldest first."""
    filesystem, local = pafs.FileSystem.from_uri(to_url(versioned(path, 0)).rsplit("/", 1)[0])
    infos = filesystem.get_file_info(pafs.FileSelector(local, allow_not_found=True))
    names = (i.base_name.removesuffix(".json") for i in infos)
    return sorted(int(n) for n in names if n.isdigit())


def _read_json(path: str, missing: str) -> Any:
    filesystem, local = pafs.FileSystem.from_uri(to_url(path))
    try:
        with filesystem.open_input_stream(local) as fh:
            return json.loads(fh.read().decode("utf-8"))
    except FileNotFoundError as e:
        raise InputError(missing) from e


def _first_row_length(url: str | Sequence[str]) -> int | None:
    filesystem, files = split_files(url)
    for path in files:
        with filesystem.open_input_file(path) as fh:
            for batch in pq.ParquetFile(fh).iter_batches(batch_size=1, columns=[X]):
                if batch.num_rows:
                    cell = batch.column(0)[0]
                    return None if not cell.is_valid else len(cell)
    return None
