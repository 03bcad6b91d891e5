"""Where a config file is found: as given, beside the job, or inside the installed package.

``conf/`` ships in the wheel (``deepspark/conf`` is a link to it in this checkout), so an installed
``deepspark`` runs the embedded pipelines from any directory: ``-c conf/digits.yaml``,
``-c digits.yaml`` and ``-c digits`` all find the packaged file when no such file is at hand.
"""

from __future__ import annotations

from pathlib import Path

PACKAGED = Path(__file__).resolve().parents[1] / "conf"
CLUSTER_DIR = "conf/clusters"


def find(path: str | Path) -> Path:
    """The config file ``path`` names.

    In order: the path as given; its base name in the working directory (spark-submit's
    ``--files`` puts shipped configs there when the driver runs on the cluster); the packaged
    file of that name (a leading ``conf/`` dropped, ``.yaml`` added when there is no suffix).
    Anything else is returned as given, so the loader's "config file not found" names it.
    """
    given = Path(path)
    if given.exists():
        return given
    if Path(given.name).exists():
        return Path(given.name)
    parts = given.parts[1:] if given.parts[:1] == ("conf",) else given.parts
    if parts and not given.is_absolute():
        packaged = PACKAGED.joinpath(*parts)
        if not packaged.suffix:
            packaged = packaged.with_suffix(".yaml")
        if packaged.is_file():
            return packaged
    return given


def conf_root(root: str | Path = ".") -> Path:
    """The directory that holds ``conf/``: ``root`` when it has one, else the package's."""
    return Path(root) if (Path(root) / CLUSTER_DIR).is_dir() else PACKAGED.parent
