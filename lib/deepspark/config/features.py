"""The features stage's section: sequence windows or image arrays, their split and file layout."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from deepspark.config.values import empty_map


@dataclass(frozen=True)
class TimeSplit:
    """Time-based split by the target's timestamp: train < validation_start <= val < test_start."""

    validation_start: str  # ISO 8601 instant where validation starts (earlier: train)
    test_start: str  # ISO 8601 instant where test starts


Frequency = Literal["minute", "hour", "day", "week", "month"]
CalendarFeature = Literal[
    "minute_of_hour", "hour_of_day", "day_of_week", "day_of_month", "day_of_year",
    "week_of_year", "month_of_year",
]  # fmt: skip
# The calendar features that vary from step to step at each frequency (hour_of_day is constant
# on a daily grid, so asking for it there is a mistake, not a feature).
CALENDAR_BY_FREQUENCY: Mapping[str, tuple[str, ...]] = {
    "minute": ("minute_of_hour", "hour_of_day", "day_of_week", "day_of_year"),
    "hour": ("hour_of_day", "day_of_week", "day_of_month", "day_of_year"),
    "day": ("day_of_week", "day_of_month", "day_of_year", "month_of_year"),
    "week": ("week_of_year", "month_of_year", "day_of_year"),
    "month": ("month_of_year",),
}
# The seasonal baseline's period in steps when ``season`` is not set: the same minute or hour
# yesterday, the same weekday last week, the same week or month last year.
SEASON_BY_FREQUENCY: Mapping[str, int] = {
    "minute": 1440, "hour": 24, "day": 7, "week": 52, "month": 12,
}  # fmt: skip


@dataclass(frozen=True)
class SequenceFeatures:
    """Sliding windows over a regular time grid per series: ``window`` steps -> target ahead.

    ``series_key`` names the column that tells series apart; without it the table is one series.
    """

    source: str  # the table to window: an aggregate (gold) or a source (silver)
    time: str  # timestamp column the grid is built on
    frequency: Frequency  # grid step; a missing step becomes a row of nulls
    # Columns fed to the model at each step, standardized on the training split.
    inputs: tuple[str, ...]
    target: str  # column forecast horizon steps after the window's last step
    window: int  # steps of history in each sample
    split: TimeSplit
    series_key: str | None = None  # column that tells series apart; null: the table is one series
    horizon: int = 1  # how many steps ahead the target is
    # The seasonal baseline's period in steps, more than horizon; null: a day, week or year.
    season: int | None = None
    # Column -> value for its nulls and missing steps; others stay missing.
    fill: Mapping[str, float] = field(default_factory=empty_map)
    # Cyclical time features added to every step as sin/cos pairs, read in ``timezone``.
    calendar: tuple[CalendarFeature, ...] = ()
    timezone: str = "UTC"  # IANA zone the calendar features are read in

    def __post_init__(self) -> None:
        if self.window < 1 or self.horizon < 1:
            raise ValueError("window and horizon must be at least 1")
        if not self.inputs:
            raise ValueError("inputs: at least one column is required")
        if self.season is not None and self.season < 1:
            raise ValueError(f"season: expected >= 1 steps, found {self.season}")
        if self.period <= self.horizon:  # the seasonal baseline would be null on every row
            unset = f" (the {self.frequency} grid's default)" if self.season is None else ""
            raise ValueError(
                f"season: expected more than horizon={self.horizon} steps, found {self.period}"
                f"{unset}: the seasonal baseline (the target one season earlier) would be missing "
                "on every row"
            )
        fits = CALENDAR_BY_FREQUENCY[self.frequency]
        wrong = [c for c in self.calendar if c not in fits]
        if wrong:
            raise ValueError(
                f"calendar: {', '.join(wrong)} does not vary on a {self.frequency} grid; "
                f"expected some of {', '.join(fits)}"
            )

    @property
    def period(self) -> int:
        """The seasonal baseline's period in steps."""
        return self.season or SEASON_BY_FREQUENCY[self.frequency]


@dataclass(frozen=True)
class FractionSplit:
    """Random split by a seeded content hash, stratified by label when ``stratify``."""

    train: float  # fraction of rows in the training split
    validation: float  # fraction in the validation split
    test: float  # fraction in the test split; the three add up to 1
    seed: int = 13  # seed of the content hash that assigns rows to splits
    stratify: bool = True  # keep each label's share the same in every split

    def __post_init__(self) -> None:
        if abs(self.train + self.validation + self.test - 1.0) > 1e-9:
            raise ValueError("split fractions must add up to 1")


@dataclass(frozen=True)
class ImageFeatures:
    """Image arrays scaled to [0, 1] by ``max_value``, stored flat; ``shape`` is (C, H, W)."""

    source: str  # the table holding the images: a source (silver) or an aggregate
    column: str  # array column of pixel values, C x H x W of them, row-major
    shape: tuple[int, ...]  # [channels, height, width]
    label: str  # integer class label column
    max_value: float  # pixel values are divided by this, to [0, 1]
    split: FractionSplit


@dataclass(frozen=True)
class OutputLayout:
    """File and row-group sizing, so that every rank of a training run gets data.

    Petastorm shards by row group: each split must have at least ``min_row_groups`` of them.
    """

    files_per_split: int = 4  # Parquet files written per split
    row_group_mb: int = 4  # Parquet row-group size in MB
    min_row_groups: int = 2  # the stage fails when a split has fewer row groups than this


@dataclass(frozen=True)
class FeaturesConfig:
    """Exactly one of ``sequence`` or ``image``."""

    sequence: SequenceFeatures | None = None
    image: ImageFeatures | None = None
    layout: OutputLayout = field(default_factory=OutputLayout)

    def __post_init__(self) -> None:
        if (self.sequence is None) == (self.image is None):
            raise ValueError("exactly one of 'sequence' or 'image' is required")
