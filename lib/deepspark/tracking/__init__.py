"""MLflow tracking: one parent run per pipeline run, a nested run per stage.

A job's entry point makes one :class:`Tracking` (tracker.py) and hands it to its stages; a stage
run alone gets a top-level run of its own. With ``mlflow.enabled: false`` every run is a no-op.

MLflow itself is optional for training without Spark (``python -m deepspark.train`` on a GPU box
with torch, numpy, pyarrow and pyyaml only): :meth:`Tracking.usable` turns tracking off there,
with one warning, when the package is missing. A Spark job that asks for it fails in one line.

Training runs carry MLflow's system metrics (``system/...``: CPU, memory, disk, network, GPU),
sampled every ``mlflow.system_metrics_s`` by a thread that ends with the run
(:meth:`Tracking.system_metrics`).

A tracking server that stops answering mid-job costs bounded time (``mlflow.http_retries`` and
``mlflow.http_timeout_s``), and ending a run it can no longer reach never hides the job's own error.

The modules: store.py (the store, the experiment, bounded HTTP), tracker.py (the runs),
outage.py (a server that stops answering) and records.py (what a run records); every name is
importable from ``deepspark.tracking``.
"""

from deepspark.tracking.outage import (
    TrackingError,
    drop_active_run,
    ending,
    one_line,
    outage_errors,
    stop_system_metrics,
)
from deepspark.tracking.records import (
    active,
    flatten,
    log_artifacts,
    log_config,
    log_dataset,
    log_metrics,
    meta_dataset,
    run_id,
    run_tags,
)
from deepspark.tracking.store import (
    bound_http,
    check_reachable,
    create_store_folder,
    installed,
    setup,
    tracking_uri,
)
from deepspark.tracking.tracker import Tracking

__all__ = [
    "Tracking",
    "TrackingError",
    "active",
    "run_id",
    "bound_http",
    "check_reachable",
    "create_store_folder",
    "drop_active_run",
    "ending",
    "flatten",
    "installed",
    "log_artifacts",
    "log_config",
    "log_dataset",
    "log_metrics",
    "meta_dataset",
    "one_line",
    "outage_errors",
    "run_tags",
    "setup",
    "stop_system_metrics",
    "tracking_uri",
]
