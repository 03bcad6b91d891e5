"""Rank 0's side of training: the MLflow run, per-epoch metrics, the test evaluation.

One MLflow run per training job, whichever launcher started it: created by rank 0 (nested under
the pipeline's run when there is one), reopened when a killed job resumes, ended by rank 0.
Other ranks get a Reporter that does nothing. :mod:`.publish` logs the model and registers it;
the test metrics are logged onto that model. Rank 0's run also samples the host's system metrics
(:meth:`deepspark.tracking.Tracking.system_metrics`) until it ends, however it ends.

Every MLflow call goes through one guard. A tracking server that stops answering mid-run must not
cost the training: the first failure is logged once, MLflow is not called again for the rest of
the run, and what did not reach it is recorded in the checkpoint (:meth:`Reporter.progress`) and
in the summary. Training finishes; a rerun of the same command finds the finished checkpoint and
logs only what is missing, into the same run.
"""

from __future__ import annotations

import copy
import logging
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from deepspark.config import to_plain
from deepspark.data import read_split
from deepspark.train.holdout import holdout_metrics
from deepspark.train.job import TrainJob
from deepspark.train.publish import GuardedRun, model_id, publish_model, run_gate
from deepspark.train.state import Logged

log = logging.getLogger("deepspark.train")


class Reporter:
    """Logging for one job: MLflow on rank 0 (when enabled), log lines, the final summary.

    ``history`` and ``logged`` come from the checkpoint a job resumes from: what did not reach
    MLflow then (parameters, epochs) is logged when the run is reopened.
    """

    def __init__(
        self,
        job: TrainJob,
        *,
        rank: int,
        world: int,
        run_id: str | None,
        history: Sequence[dict] = (),
        logged: Logged | None = None,
    ) -> None:
        self.job, self.rank, self.world = job, rank, world
        self.run_id = run_id
        self.mlflow = None
        self.tracking: Any = None  # this training process's Tracking, made at the run's start
        self.enabled = rank == 0 and job.config.mlflow.enabled
        self.done = copy.deepcopy(logged) if logged is not None else Logged()
        self._failed: list[str | int] = []  # what did not reach MLflow here; ints are epochs
        self._down = False  # after the first failure no call goes to MLflow
        self._open = False  # whether this process holds the run active
        if not self.enabled:
            return  # what an earlier run could not log stays pending in the checkpoint
        self.done.error = ""
        ok, self.mlflow = self._call("run start", self._start)
        self._open = ok
        if not self.done.params:
            self.done.params = self._call("run parameters", self._log_params)[0]
        for record in history[self.done.epochs :]:
            self._log_epoch(record)

    def progress(self) -> Logged:
        """What has reached the MLflow run so far, for the checkpoint (a copy)."""
        if self.enabled:
            self.done.failed = _describe(self._failed)
        return copy.deepcopy(self.done)

    def epoch(self, record: dict[str, float]) -> None:
        """Log one epoch's metrics (step = epoch number) and a summary line."""
        epoch = int(record["epoch"])
        metrics = {k: float(v) for k, v in record.items() if k != "epoch"}
        shown = ", ".join(f"{k} {v:.4g}" for k, v in metrics.items())
        # Two lines per run at the default level (every epoch with -v): the curves are in
        # MLflow, and a terminal has the progress bar.
        every = -(-self.job.train.epochs // 2)
        last = epoch + 1 == self.job.train.epochs
        level = logging.INFO if (epoch + 1) % every == 0 or last else logging.DEBUG
        log.log(level, "epoch %d: %s", epoch + 1, shown)
        if self.enabled:
            self._log_epoch(record)

    def finish(self, net: Any, step: Any, history: list[dict], *, best_epoch: int | None) -> dict:
        """Test metrics and baselines, the model with signature and example; ends the run.

        Only what has not reached MLflow yet is logged (a rerun after a failure). When MLflow
        failed, the summary's ``mlflow_failed`` lists what did not reach it and ``mlflow_error``
        gives the first error, in one line.
        """
        summary = {"epochs": len(history), "best_epoch": best_epoch, "run_id": self.run_id}
        extra = (
            ["baseline_persistence", "baseline_seasonal"] if self.job.task == "regression" else []
        )
        # Each split is read once here; the test metrics, the baselines, the model's input
        # example and the registry gate all use these arrays. The training split only feeds a
        # baseline fit, which a model over the linear baseline brought from preflight.
        test = _read(self.job, "test", ["x", "y", *extra])
        train = _read(self.job, "train", ["x", "y"]) if self.job.linear is None else None
        summary.update(holdout_metrics(self.job, net, step, test, train))
        # When the gate runs (tracking and the registry on), its line says the deciding metric
        # against every baseline; otherwise this line is the only place the results appear.
        shown = ", ".join(f"{k} {v:.4g}" for k, v in summary.items() if _num(v))
        gated = self.enabled and self.job.train.register.enabled
        level = logging.DEBUG if gated else logging.INFO
        log.log(level, "test: %s", shown)
        if not self.enabled:
            return summary
        done, run = self.done, GuardedRun(self._call, self.mlflow, self.job, self.done)
        if not done.plots:
            done.plots = self._call("learning-curve plots", self._log_curves, history)[0]
        # The model first: the test metrics are logged onto it (and the run) in one call.
        publish_model(run, net, test)
        if not done.test:
            metrics = {k: float(v) for k, v in summary.items() if _num(v)}
            done.test = self._call("test metrics", self._log_test, metrics)[0]
        run_gate(run, summary, test)
        self._close()
        summary["run_id"] = self.run_id
        failed = self.progress().failed
        if failed:
            summary.update(mlflow_failed=failed, mlflow_error=done.error)
        return summary

    def fail(self) -> None:
        """End the run as failed (a resumed job reopens it); never raises over the real error."""
        self._close(status="FAILED")

    def _close(self, status: str = "FINISHED") -> None:
        if not self._open:
            return
        self._open = False
        from deepspark import tracking

        if self._down:
            tracking.drop_active_run()  # asking the server again would only repeat the failure
        elif status == "FINISHED":
            self._call("run end", self.mlflow.end_run)
        else:
            try:
                self.mlflow.end_run(status=status)
            except Exception as e:  # the error that ended training is the one to report
                reason = tracking.one_line(e)
                log.warning("MLflow: could not mark run %s %s: %s", self.run_id, status, reason)
        if self.run_id is not None:  # end_run stops the system metrics, unless it failed
            tracking.stop_system_metrics(self.run_id)

    def _call(self, what: str | int, fn: Callable[..., Any], *args: Any) -> tuple[bool, Any]:
        """``fn(*args)`` unless MLflow already failed in this run: (whether it ran, its result).

        The first failure is logged once, with its one-line reason; from then on every call is
        recorded as not logged without asking the server, so a server that went away costs one
        call's retries, not a stall every epoch. ``what`` is an epoch number or a name.
        """
        if not self._down:
            from deepspark import tracking

            try:
                return True, fn(*args)
            except tracking.outage_errors() as e:
                self._down = True
                self.done.error = tracking.one_line(e)
                log.warning(
                    "MLflow logging failed (%s: %s); nothing more is sent to MLflow in this run, "
                    "training and checkpoints go on",
                    _describe([what])[0], self.done.error,
                )  # fmt: skip
        self._failed.append(what)
        return False, None

    def _start(self) -> Any:
        from deepspark import tracking

        cfg = self.job.config
        mlflow = tracking.setup(cfg.mlflow)
        self.tracking = self.tracking or tracking.Tracking()
        # In-process launches inside a pipeline run already have that run active in this thread.
        nested = mlflow.active_run() is not None
        # A thread sampling CPU, memory, disk, network and GPUs into system/... metrics, from
        # start_run to end_run (a reopened run continues their steps). Rank 0 only: it watches
        # the whole host, which the other local ranks share.
        system = self.tracking.system_metrics(cfg.mlflow)
        if self.run_id is not None:
            mlflow.start_run(run_id=self.run_id, nested=nested, log_system_metrics=system)
        else:
            tags = {**tracking.run_tags(cfg), "deepspark.stage": "train"}
            mlflow.start_run(
                run_name=f"{cfg.pipeline.name}-train", parent_run_id=self.job.parent_run_id,
                nested=nested, tags=tags, log_system_metrics=system,
            )  # fmt: skip
            self.done = Logged()  # a new run holds nothing yet
        self.run_id = mlflow.active_run().info.run_id
        return mlflow

    def _log_params(self) -> None:
        from deepspark import tracking

        job, mlflow = self.job, self.mlflow
        cfg = job.config
        tracking.log_config(mlflow, cfg)
        mlflow.log_params(tracking.flatten(to_plain(job.train), prefix="train"))
        mlflow.log_params({"train.world_size": self.world, "train.x_shape": str(job.x_shape)})
        if job.manifest.version is not None:  # the Delta version trained on, pinned or latest
            mlflow.log_param("features.version", job.manifest.version)
        for split, info in job.splits.items():
            schema = ", ".join(f"{k} {v}" for k, v in info.columns.items())
            tracking.log_dataset(
                f"{cfg.pipeline.name}/features/{split}", info.url, rows=info.rows,
                digest=info.digest, schema=schema, context=split, version=info.version,
            )  # fmt: skip

    def _log_test(self, metrics: dict[str, float]) -> None:
        """The test metrics and baselines, in the run and on the logged model, in one call.

        MLflow writes a metric logged with ``model_id`` to the run and to the LoggedModel, where
        the experiment's Models tab compares them (a registered version's page links to that
        model); naming the test split as their dataset says which rows every model was scored on.
        """
        from deepspark import tracking

        info = self.job.splits["test"]
        name = f"{self.job.config.pipeline.name}/features/test"
        self.mlflow.log_metrics(
            metrics, model_id=model_id(self.done.model),
            dataset=tracking.meta_dataset(name, info.url, info.digest, info.version),
        )  # fmt: skip

    def _log_epoch(self, record: Mapping[str, float]) -> None:
        epoch = int(record["epoch"])
        metrics = {k: float(v) for k, v in record.items() if k != "epoch"}
        ok, _ = self._call(epoch, lambda: self.mlflow.log_metrics(metrics, step=epoch))
        if ok and epoch == self.done.epochs:
            self.done.epochs = epoch + 1

    def _log_curves(self, history: list[dict]) -> None:
        import pandas as pd

        from deepspark.plots import line_plot

        metric = next(k for k in ("val_accuracy", "val_mae") if history and k in history[0])
        with tempfile.TemporaryDirectory() as tmp:
            for keys, name in ((("train_loss", "val_loss"), "loss"), ((metric,), metric)):
                rows = [(k, h["epoch"] + 1, h[k]) for h in history for k in keys]
                frame = pd.DataFrame(rows, columns=["by", "x", "y_mean"])
                line_plot(frame, Path(tmp) / f"{name}.png", f"{name} by epoch", "epoch", name)
            self.mlflow.log_artifacts(tmp, artifact_path="plots")


def _read(job: TrainJob, split: str, columns: list[str]) -> dict[str, np.ndarray]:
    lcfg = job.train.loader
    return read_split(job.splits[split].data, columns, workers=lcfg.workers, backend=lcfg.backend)


def _describe(items: Sequence[str | int]) -> list[str]:
    """``[2, 3, 4, "model"]`` -> ``["epochs 3-5 metrics", "model"]`` (epochs counted from 1)."""
    out: list[str] = []
    span: list[int] = []  # consecutive epochs not written out yet

    def flush() -> None:
        if span:
            a, b = span[0] + 1, span[-1] + 1
            out.append(f"epoch {a} metrics" if a == b else f"epochs {a}-{b} metrics")
            span.clear()

    for item in items:
        if isinstance(item, str):
            flush()
            out.append(item)
            continue
        if span and item != span[-1] + 1:
            flush()
        span.append(item)
    flush()
    return out


def _num(v: object) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)
