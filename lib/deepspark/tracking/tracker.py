"""The one MLflow tracker of a job: made at its entry point, handed to every stage it runs.

``cli/jobs.main`` makes one :class:`Tracking` per process and passes it to the stage (and the
pipeline to each of its stages); a stage called directly (tests, notebooks) makes its own. What
the stages of one job share lives on it, not in module globals: the pipeline's parent run, which
each stage's run names as its parent, and the warnings said once per job (MLflow or psutil
missing). Two jobs in one process (a test session) therefore never see each other's state.

MLflow's own fluent API keeps the tracking URI and the active run in its process state; only
:func:`~deepspark.tracking.setup`, called from here and from the registry, sets them.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from deepspark import environ
from deepspark.config import Config
from deepspark.config.pipeline import MlflowConfig
from deepspark.errors import SetupError
from deepspark.tracking.outage import ending
from deepspark.tracking.records import flatten, log_config, run_tags
from deepspark.tracking.store import installed, setup

log = logging.getLogger("deepspark.tracking")


@dataclass
class Tracking:
    """MLflow for one job: the parent run its stages nest under, and what it has said."""

    parent: str | None = None  # the open pipeline run's id; its stages' runs name it as parent
    said: set[str] = field(default_factory=set)  # one-per-job warnings already given

    def usable(self, cfg: Config, *, optional: bool) -> Config:
        """``cfg`` as is, or with tracking off when it asks for MLflow and MLflow is missing.

        Args:
            cfg: a job's config.
            optional: whether this job may run untracked (training without Spark: the checkpoints
                and the log hold the results); otherwise a missing MLflow is a setup error.

        Raises:
            SetupError: ``mlflow.enabled`` is true, MLflow is not installed and not optional.
        """
        if not cfg.mlflow.enabled or installed():
            return cfg
        if not optional:
            raise SetupError(
                "mlflow.enabled=true but the mlflow package is not installed here; install it (at "
                "the version in your stack's locks/<stack>.txt), or set mlflow.enabled=false"
            )
        # Once per job, and only on rank 0 of a torchrun launch: one line, not one per rank.
        if self._first("mlflow-missing") and environ.rank() == 0:
            log.warning(
                "MLflow is not installed: tracking is off for this run (results go to the log and "
                "the checkpoints); install mlflow to track, or set mlflow.enabled=false to "
                "silence this"
            )
        return dataclasses.replace(cfg, mlflow=dataclasses.replace(cfg.mlflow, enabled=False))

    def system_metrics(self, cfg: MlflowConfig) -> bool:
        """Whether the next run gets MLflow's system metrics (``start_run(log_system_metrics=)``).

        Sets their sampling interval (``mlflow.system_metrics_s``, one sample per logged point)
        so a one-minute training run draws a curve (MLflow's default is a point every 10 s); a
        value the user set in ``MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL`` wins. CPU, memory, disk
        and network come from psutil; GPU utilization and memory from pynvml (the ``gpu`` extra),
        which MLflow skips, with an INFO line, where it is missing or finds no GPU. Without psutil
        MLflow would refuse to start the run: it goes on without system metrics, after one warning.
        """
        if cfg.system_metrics_s <= 0:
            return False
        if importlib.util.find_spec("psutil") is None:
            if self._first("psutil-missing"):
                log.warning("psutil is not installed: the training run logs no system metrics")
            return False
        environ.put_own("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", str(cfg.system_metrics_s))
        environ.put_own("MLFLOW_SYSTEM_METRICS_SAMPLES_BEFORE_LOGGING", "1")
        return True

    @contextmanager
    def pipeline_run(self, cfg: Config) -> Iterator[Any]:
        """The parent run of one pipeline run (None when tracking is off); stages nest under it."""
        if not cfg.mlflow.enabled:
            yield None
            return
        mlflow = setup(cfg.mlflow)
        name = f"{cfg.pipeline.name}-pipeline"
        run = mlflow.start_run(run_name=name, tags=run_tags(cfg))
        self.parent = run.info.run_id
        try:
            with ending(mlflow, f"run {name} ({run.info.run_id})"):
                log_config(mlflow, cfg)
                yield run
        finally:
            self.parent = None

    @contextmanager
    def stage_run(
        self, cfg: Config, stage: str, params: Mapping[str, Any] | None = None
    ) -> Iterator[Any]:
        """A run for one stage: nested under this job's pipeline run, or top-level without one."""
        if not cfg.mlflow.enabled:
            yield None
            return
        mlflow = setup(cfg.mlflow)
        name = f"{cfg.pipeline.name}-{stage}"
        tags = {**run_tags(cfg), "deepspark.stage": stage}
        # nested=True: under this job's pipeline run (named by id), or under a run the caller
        # holds open (a notebook's); with neither it is a top-level run.
        run = mlflow.start_run(run_name=name, nested=True, parent_run_id=self.parent, tags=tags)
        with ending(mlflow, f"run {name} ({run.info.run_id})"):
            if self.parent is None:  # a stage run alone records the config itself
                log_config(mlflow, cfg)
            if params:
                mlflow.log_params(flatten(params, prefix=stage))
            yield run

    def _first(self, what: str) -> bool:
        """True the first time ``what`` is asked about in this job."""
        first = what not in self.said
        self.said.add(what)
        return first
