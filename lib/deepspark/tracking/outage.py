"""A tracking server that stops answering mid-job: what it costs is bounded, the job's error wins.

Ending a run the server can no longer reach warns instead of raising over the job's own error
(:func:`ending`); a run can be dropped without another call to the server
(:func:`drop_active_run`); a failed call reads as one short line (:func:`one_line`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from deepspark.errors import DeepsparkError

log = logging.getLogger("deepspark.tracking")  # the package's logger: one name for its warnings


class TrackingError(DeepsparkError):
    """Logging to MLflow failed after the job had started (the server stopped answering)."""


def stop_system_metrics(run_id: str) -> None:
    """Stop the run's system-metrics thread without a last call to the server, if it still runs.

    ``mlflow.end_run`` stops it (and logs its last point) once the server has marked the run
    ended; when that call failed, or the run was dropped (:func:`drop_active_run`), the thread
    would otherwise keep sampling and asking the server about the run until the process exits.
    """
    from mlflow.tracking import fluent

    # MLflow's registry of monitors, the one end_run reads: private, so a release without it
    # (the supported range is mlflow 3.x) leaves the thread to end with the process.
    monitors = getattr(fluent, "run_id_to_system_metrics_monitor", {})
    monitor = monitors.pop(run_id, None)
    if monitor is not None:
        monitor._shutdown_event.set()  # finish() would join and flush: one more failing call


def one_line(e: BaseException) -> str:
    """A failed MLflow call in one short line: the endpoint and the network error, if any.

    MLflow's own message repeats the URL, the query and the urllib3 retry state on one line of
    several hundred characters; the endpoint and the errno are what a user acts on.
    """
    text = str(e).strip()
    first = text.splitlines()[0] if text else type(e).__name__
    request = re.match(r"API request to (\S+) failed with exception", first)
    cause = re.search(r"\[Errno -?\d+\] [^'\")]+|Read timed out|too many \d+ error", first)
    if request and cause:
        return f"request to {request.group(1)} failed: {cause.group(0)}"
    return first if len(first) <= 300 else f"{first[:297]}..."


def outage_errors() -> tuple[type[BaseException], ...]:
    """What a failed MLflow call raises: its own error, a requests error, a socket or file error.

    Anything else (a TypeError, say) is a bug and keeps its traceback.
    """
    import requests
    from mlflow.exceptions import MlflowException

    return (MlflowException, requests.RequestException, OSError)


def drop_active_run() -> None:
    """Forget this thread's active run without telling the server, which stopped answering.

    ``mlflow.end_run`` would ask the server once more (retries and all), and so would MLflow's
    exit hook, after the job's last line. The run stays RUNNING on the server until a rerun
    reopens and ends it.
    """
    from mlflow.environment_variables import MLFLOW_RUN_ID
    from mlflow.tracking import fluent

    stack = fluent._active_run_stack.get()  # private, but what end_run pops (mlflow is pinned)
    if stack:
        stop_system_metrics(stack.pop().info.run_id)
    MLFLOW_RUN_ID.unset()


@contextmanager
def ending(mlflow: Any, what: str) -> Iterator[None]:
    """End the active run after the body: FINISHED, or FAILED when the body raised.

    ``mlflow.start_run``'s own context manager raises from its exit when the server is gone,
    which would replace the body's error (the one the job must report) with a traceback.
    """
    try:
        yield
    except BaseException:
        _end_run(mlflow, "FAILED", what)
        raise
    reason = _end_run(mlflow, "FINISHED", what)
    if reason is not None:
        raise TrackingError(f"MLflow logging failed: ending {what} ({reason})")


def _end_run(mlflow: Any, status: str, what: str) -> str | None:
    """``mlflow.end_run(status)``; on failure a warning and the one-line reason (never raises)."""
    try:
        mlflow.end_run(status=status)  # pops the run before it calls the server
    except Exception as e:  # whatever the client raised, the job's own outcome comes first
        reason = one_line(e)
        log.warning("MLflow: could not end %s as %s: %s", what, status, reason)
        return reason
    return None
