"""``deepspark config show``: the resolved config, each value annotated with where it came from."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from deepspark.config import load_config, to_plain
from deepspark.config.loader import deep_merge, override_target, read_yaml
from deepspark.config.pipeline import Config


def show(paths: Sequence[str | Path], overrides: Sequence[str] = ()) -> str:
    """The resolved config of each path as YAML, each value followed by where it came from.

    A value is annotated ``# <file>`` when a YAML file set it, ``# override`` when a ``key=value``
    did, ``# default`` when neither did. Several paths give several documents (``---``).

    Raises:
        ConfigError: a file or an override the loader refuses (its own message).
    """
    docs = []
    for path in paths:
        cfg = load_config(path, overrides)  # the loader's checks and errors, before anything else
        how = f" and {len(overrides)} override(s)" if overrides else ""
        lines = [f"# resolved from {', '.join(cfg.files)}{how}"]
        _emit(to_plain(cfg), (), 0, lines, _Sources(cfg.files, overrides))
        docs.append("\n".join(lines) + "\n")
    return "---\n".join(docs)


class _From:
    """A value from one layer (a file or ``override``); not a Mapping, so a merge replaces it."""

    __slots__ = ("label", "items")

    def __init__(self, label: str, items: list[Any] | None) -> None:
        self.label, self.items = label, items


def _wrap(value: Any, label: str) -> Any:
    # Keys as the loader stores them (str(k)), so a lookup by the loaded config's keys finds them.
    if isinstance(value, Mapping):
        return {str(k): _wrap(v, label) for k, v in value.items()}
    items = [_wrap(v, label) for v in value] if isinstance(value, list) else None
    return _From(label, items)


class _Sources:
    """Where each value of a loaded config came from, by replaying the loader on labelled data.

    The files are merged with the loader's own ``deep_merge`` and the overrides set the paths
    ``override_target`` gives, so what wins here is what won there.
    """

    def __init__(self, files: Sequence[str], overrides: Sequence[str]) -> None:
        tree: dict[str, Any] = {}
        for file in files:  # base first, as the loader merges them
            tree = deep_merge(tree, _wrap(read_yaml(Path(file)), file))
        for assignment in overrides:
            keys, value = override_target(Config, assignment)
            node = tree
            for part in keys[:-1]:
                node = node.setdefault(part, {})
            node[keys[-1]] = _wrap(value, "override")
        self.tree, self.last = tree, files[-1]

    def __call__(self, at: tuple[str | int, ...]) -> str:
        """The label of the value at key path ``at``: a file, ``override`` or ``default``."""
        node: Any = self.tree
        for part in at:
            if isinstance(node, dict):
                if part not in node:
                    return "default"
                node = node[part]
            elif isinstance(node, _From) and node.items is not None and isinstance(part, int):
                node = node.items[part]
            else:
                break
        # A mapping empty in both files merges into a plain dict: the later file said so last.
        return node.label if isinstance(node, _From) else self.last


def _emit(value: Any, at: tuple, indent: int, out: list[str], source: _Sources) -> None:
    pad = " " * indent
    for k, v in value.items():
        here = (*at, k)
        if isinstance(v, dict) and v:
            out.append(f"{pad}{one_line_yaml(k)}:")
            _emit(v, here, indent + 2, out, source)
        elif isinstance(v, list) and any(isinstance(i, dict) for i in v):
            out.append(f"{pad}{one_line_yaml(k)}:")
            for i, item in enumerate(v):  # a list of sections: every item is a mapping
                sub: list[str] = []
                _emit(item, (*here, i), indent + 4, sub, source)
                sub[0] = f"{pad}  - {sub[0].lstrip()}"
                out += sub
        else:
            out.append(f"{pad}{one_line_yaml(k)}: {one_line_yaml(v)}  # {source(here)}")


def one_line_yaml(value: Any) -> str:
    """One value as YAML on one line (flow style), quoted where plain text would misread."""
    if isinstance(value, str) and "\n" in value:
        return json.dumps(value)  # a JSON string is a valid double-quoted YAML scalar
    text = yaml.safe_dump(value, default_flow_style=True, width=math.inf, sort_keys=False)
    return text.removesuffix("\n...\n").strip()
