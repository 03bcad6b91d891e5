"""A real Spark standalone cluster on 127.0.0.1, started from the installed pyspark.

One master and N workers, each its own JVM (``spark-class org.apache.spark.deploy.master.Master``
/ ``...worker.Worker``) in its own process group, so a worker can be killed with everything it
started (executor JVM, Python workers, training processes), and :meth:`Standalone.stop` leaves
nothing behind.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pyspark

SPARK_HOME = Path(pyspark.__file__).parent
LOOPBACK = {"127.0.0.1", "::ffff:127.0.0.1", "::1"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Standalone:
    """A running cluster: ``master_url`` for ``--master``, the processes it started."""

    root: Path
    master_url: str
    master_ui: str
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    worker_args: dict[str, list[str]] = field(default_factory=dict)

    def state(self) -> dict:
        """The master's own view (``/json``): alive workers, cores, running applications."""
        with urllib.request.urlopen(f"{self.master_ui}/json/", timeout=5) as resp:
            return json.load(resp)

    def alive_workers(self) -> int:
        return sum(w["state"] == "ALIVE" for w in self.state()["workers"])

    def pids(self) -> set[int]:
        """Every live process in the cluster's process groups (JVMs, executors, Python)."""
        groups = {p.pid for p in self.procs.values()}
        out = set()
        for proc in psutil.process_iter():
            try:
                if os.getpgid(proc.pid) in groups:
                    out.add(proc.pid)
            except (ProcessLookupError, psutil.Error):
                continue
        return out

    def listening(self) -> set[tuple[str, int]]:
        """(address, port) of every socket the cluster's processes listen on."""
        out = set()
        for pid in self.pids():
            try:
                conns = psutil.Process(pid).net_connections(kind="inet")
            except psutil.Error:
                continue
            out |= {(c.laddr.ip, c.laddr.port) for c in conns if c.status == psutil.CONN_LISTEN}
        return out

    def kill_worker(self, name: str) -> None:
        """SIGKILL a worker's whole process group: the worker, its executor and their children."""
        os.killpg(self.procs[name].pid, signal.SIGKILL)
        self.procs[name].wait(timeout=30)

    def restart_worker(self, name: str) -> None:
        """Start a killed worker again, once the master has given the old one up for dead."""
        _wait(lambda: self.alive_workers() < len(self.worker_args), "the worker's loss", self)
        self.procs[name] = _spawn(
            self.root / f"{name}.log", self.env, "org.apache.spark.deploy.worker.Worker",
            *self.worker_args[name],
        )  # fmt: skip
        _wait(lambda: self.alive_workers() == len(self.worker_args), "the new worker", self)

    def stop(self) -> None:
        for proc in self.procs.values():
            _stop_group(proc)


def start(root: Path, workers: int = 2, cores: int = 1, memory: str = "2g") -> Standalone:
    """Start a master and ``workers`` workers bound to 127.0.0.1; waits until all registered."""
    root.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "SPARK_HOME": str(SPARK_HOME),
        "SPARK_LOCAL_IP": "127.0.0.1",  # web UIs bind here too (not 0.0.0.0)
        "SPARK_LOG_DIR": str(root / "logs"),
        # A killed worker is declared dead after 15 s without heartbeats, not the default 60 s.
        # Master and workers both read it (workers send a heartbeat every quarter of it).
        "SPARK_DAEMON_JAVA_OPTS": "-Dspark.worker.timeout=15",
    }
    env.pop("SPARK_MASTER", None)
    port, ui_port = free_port(), free_port()
    cluster = Standalone(
        root=root,
        master_url=f"spark://127.0.0.1:{port}",
        master_ui=f"http://127.0.0.1:{ui_port}",
        env=env,
    )
    try:
        cluster.procs["master"] = _spawn(
            root / "master.log",
            env,
            "org.apache.spark.deploy.master.Master",
            *("--host", "127.0.0.1", "--port", str(port), "--webui-port", str(ui_port)),
        )
        _wait(lambda: cluster.state()["status"] == "ALIVE", "the master", cluster)
        for i in range(1, workers + 1):
            name = f"worker-{i}"
            cluster.worker_args[name] = [
                *("--host", "127.0.0.1", "--webui-port", str(free_port())),
                *("--cores", str(cores), "--memory", memory),
                *("--work-dir", str(root / name)),
                cluster.master_url,
            ]
            cluster.procs[name] = _spawn(
                root / f"{name}.log", env, "org.apache.spark.deploy.worker.Worker",
                *cluster.worker_args[name],
            )  # fmt: skip
        _wait(lambda: cluster.alive_workers() == workers, f"{workers} workers", cluster)
    except BaseException:
        cluster.stop()
        raise
    return cluster


def _spawn(log: Path, env: dict[str, str], cls: str, *args: str) -> subprocess.Popen:
    with open(log, "wb") as out:
        return subprocess.Popen(
            [str(SPARK_HOME / "bin" / "spark-class"), cls, *args],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: killed as a unit
        )


def _wait(ready, what: str, cluster: Standalone, timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for name, proc in cluster.procs.items():
            if proc.poll() is not None and proc.returncode != -signal.SIGKILL:
                log = (cluster.root / f"{name}.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"{name} exited with {proc.returncode}:\n{log}")
        try:
            if ready():
                return
        # Not up yet: no listener (OSError), or, on a loaded machine, a UI that answers before
        # the master fills in its state (an empty or partial JSON document).
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.5)
    raise TimeoutError(f"{what} not up within {timeout_s}s (logs in {cluster.root})")


def _stop_group(proc: subprocess.Popen) -> None:
    for sig, wait_s in ((signal.SIGTERM, 15), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            try:
                os.killpg(proc.pid, 0)
            except ProcessLookupError:
                proc.poll()
                return
            proc.poll()
            time.sleep(0.2)
