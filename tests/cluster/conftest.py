"""The cluster tier: a 2-worker Spark standalone cluster on 127.0.0.1 for every test in this folder.

Every test here is marked ``cluster`` (``./test.sh -m cluster``; CI runs it). The cluster is
started once per session from the installed pyspark and stopped at the end; the last check is
that no process it started is left running.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.cluster import standalone
from tests.cluster.jobs import submit
from tests.realdata import slice_overrides

HERE = Path(__file__).parent


def pytest_collection_modifyitems(config, items):
    for item in items:
        if HERE in Path(item.fspath).parents:
            item.add_marker(pytest.mark.cluster)


@pytest.fixture(scope="session")
def cluster(tmp_path_factory):
    running = standalone.start(tmp_path_factory.mktemp("standalone"), workers=2, cores=1)
    try:
        yield running
    finally:
        running.stop()
    left = running.pids()
    assert not left, f"processes left running after the cluster stopped: {sorted(left)}"


@pytest.fixture(scope="session")
def slice_raw(flights_slice) -> dict[str, Path]:
    """Ten real days of flights and weather, with known defects (tests/realdata.py)."""
    return flights_slice["raw"]


def _pipeline(work: Path, raw: dict[str, Path], *cluster: str) -> Path:
    proc = submit(
        "jobs/pipeline.py",
        *("-c", "conf/flights.yaml", *cluster, *slice_overrides(raw, work)),
        log=work / "submit.log",
    )
    assert proc.returncode == 0, proc.stdout[-3000:]
    return work


@pytest.fixture(scope="session")
def local_run(flights_slice, tmp_path_factory) -> Path:
    """The flights pipeline in local mode: the reference run.

    That is the default tier's run of the same slice and config (tests/conftest.py), in one
    pytest session with this tier (as CI runs them). A copy: the faults below write next to it.
    """
    work = tmp_path_factory.mktemp("local")
    shutil.copytree(flights_slice["work"], work, dirs_exist_ok=True)
    return work


@pytest.fixture(scope="session")
def cluster_run(cluster, slice_raw, tmp_path_factory) -> Path:
    """The same pipeline on the standalone cluster (``--cluster standalone``)."""
    return _pipeline(
        tmp_path_factory.mktemp("cluster"), slice_raw,
        "--cluster", "standalone", "--master", cluster.master_url,
    )  # fmt: skip
