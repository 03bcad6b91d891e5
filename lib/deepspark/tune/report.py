"""What a study leaves behind: the best config as a YAML overlay, the trials table, three plots.

The overlay ``extends`` the config file the study searched and holds only what differs from
that file (command-line overrides included) plus the best trial's values, so ``deepspark run
train -c <overlay>`` trains exactly the searched setup with the winning values, through the gate.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from deepspark.config import Config, load_config, to_plain
from deepspark.config.loader import deep_merge
from deepspark.tune.space import from_stored, nested

log = logging.getLogger("deepspark")


def overlay(cfg: Config, params: Mapping[str, Any], header: str) -> str:
    """The YAML text of the overlay: ``extends``, what the command line changed, the best values."""
    source = Path(cfg.where).resolve()
    changed = _diff(to_plain(cfg), to_plain(load_config(source)))
    data: dict[str, Any] = {"extends": str(source)}
    pipeline = changed.pop("pipeline", {})
    pipeline.pop("tune", None)
    train = deep_merge(pipeline.get("train", {}), nested(params))
    data.update(changed)
    data["pipeline"] = {**pipeline, "train": train}
    comment = "".join(f"# {line}\n" for line in header.splitlines())
    return comment + yaml.safe_dump(data, sort_keys=False, default_flow_style=None)


def describe(params: Mapping[str, Any]) -> str:
    """``lr=0.00123, rnn.hidden=[64, 32]``: a trial's values in a log line."""
    return ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                     for k, v in params.items())  # fmt: skip


def _diff(mine: Any, theirs: Any) -> Any:
    """The parts of ``mine`` that differ from ``theirs`` (whole values below a mapping)."""
    if not isinstance(mine, dict) or not isinstance(theirs, dict):
        return mine
    out = {}
    for key, value in mine.items():
        if key not in theirs:
            out[key] = value
        elif value != theirs[key]:
            out[key] = _diff(value, theirs[key])
    return out


def snapshot(study: Any) -> Any:
    """The study's trials, read once, in an in-memory study of the same name and direction.

    MLflow's storage answers every ``get_trials`` with a query per trial, and the table, the
    plots, the best trial and the counts each ask again: the report reads this copy instead.
    """
    import optuna

    copy = optuna.create_study(study_name=study.study_name, directions=study.directions)
    copy.add_trials(sorted(study.get_trials(deepcopy=False), key=lambda t: t.number))
    return copy


def best_params(study: Any, space: Mapping[str, Any]) -> dict[str, Any] | None:
    """The best completed trial's values as the training config takes them (None: none finished)."""
    from optuna.trial import TrialState

    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        return None
    return from_stored(space, study.best_trial.params)


def trials_table(study: Any) -> Any:
    """One row per trial: number, state, value, parameters, duration (pandas)."""
    frame = study.trials_dataframe(attrs=("number", "state", "value", "params", "duration"))
    if "duration" in frame:
        frame["seconds"] = frame.pop("duration").dt.total_seconds().round(1)
    return frame


def plots(study: Any, out: Path, metric: str) -> list[Path]:
    """Optimization history, parameter importances and parallel coordinates, as PNG files.

    Importances need two finished trials that differ; a plot that cannot be drawn yet is skipped
    with a log line, not an error: a study of one trial is still a study.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optuna.visualization.matplotlib as ovm
    from optuna.trial import TrialState

    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    wanted = {
        "optimization_history.png": (ovm.plot_optimization_history, 1),
        "param_importances.png": (ovm.plot_param_importances, 2),
        "parallel_coordinates.png": (ovm.plot_parallel_coordinate, 2),
    }
    written = []
    for name, (draw, needs) in wanted.items():
        if len(done) < needs:
            log.info("tune: %s needs %d completed trial(s); %d so far", name, needs, len(done))
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Optuna marks its matplotlib plots experimental
            try:
                ax = draw(study, target_name=metric)
            except (ValueError, RuntimeError) as e:  # e.g. every trial had the same values
                log.info("tune: no %s (%s)", name, e)
                continue
        fig = (ax.flat[0] if hasattr(ax, "flat") else ax).figure
        fig.set_size_inches(9, 5.5)
        fig.tight_layout()
        path = out / name
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written
