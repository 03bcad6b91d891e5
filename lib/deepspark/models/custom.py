"""Bring-your-own model: a ``package.module:factory`` that returns the core ``nn.Module``.

The factory is called as ``factory(x_shape, n_out, task, **model_args)`` and must map
``(batch, *x_shape)`` to ``(batch, n_out)``, as the built-in cores do; :class:`FeatureNet` wraps
it like them, so training, checkpoints, the logged model and scoring need nothing else.

Its module must be importable wherever the model is built or loaded: :func:`import_root` is the
folder that puts it on ``sys.path`` (training preflight hands it to every rank), and
:func:`source` is what the logged model ships beside deepspark (its class is pickled by
reference). Every failure is a :class:`ValueError` saying what was expected and what was found.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any


def is_custom(model: str) -> bool:
    """Whether ``model`` names a factory rather than a built-in architecture."""
    return ":" in model


def top_level(spec: str) -> str:
    """The top-level package (or module) of ``package.module:factory``: what must be shipped."""
    return spec.partition(":")[0].split(".")[0]


def load_factory(spec: str) -> Callable[..., Any]:
    """Import the module ``spec`` names and return its factory.

    Raises:
        ValueError: the module is not importable, has no such attribute, or it is not callable.
    """
    module_name, _, name = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name == module_name or module_name.startswith(f"{e.name}."):  # not a dependency
            raise ValueError(
                f"module {module_name!r} not found; expected it on PYTHONPATH or in the "
                f"working directory ({os.getcwd()})"
            ) from e
        raise ValueError(f"importing {module_name!r} failed: {type(e).__name__}: {e}") from e
    except Exception as e:  # a user's module: a SyntaxError, a failing import inside it, ...
        raise ValueError(f"importing {module_name!r} failed: {type(e).__name__}: {e}") from e
    factory = getattr(module, name, None)
    if factory is None:
        own = sorted(
            n for n, v in vars(module).items()
            if callable(v) and n[0] != "_" and getattr(v, "__module__", None) == module_name
        )  # fmt: skip
        raise ValueError(
            f"module {module_name!r} has no attribute {name!r} "
            f"(its functions and classes: {', '.join(own) or 'none'})"
        )
    if not callable(factory):
        raise ValueError(f"{spec}: expected a callable factory, found {type(factory).__name__}")
    return factory


def build_core(
    spec: str,
    x_shape: tuple[int, ...],
    n_out: int,
    task: str,
    model_args: Mapping[str, Any],
) -> Any:
    """``factory(x_shape, n_out, task, **model_args)``, checked to be an ``nn.Module``.

    Raises:
        ValueError: see :func:`load_factory`; the call failed, or returned no ``nn.Module``.
    """
    from torch import nn

    factory = load_factory(spec)
    try:
        core = factory(tuple(x_shape), n_out, task, **dict(model_args))
    except Exception as e:
        raise ValueError(
            f"{spec}(x_shape={tuple(x_shape)}, n_out={n_out}, task={task!r}"
            f"{''.join(f', {k}={v!r}' for k, v in model_args.items())}) failed: "
            f"{type(e).__name__}: {e}"
        ) from e
    if not isinstance(core, nn.Module):
        raise ValueError(f"{spec}: expected an nn.Module, the factory returned {_kind(core)}")
    return core


def check_core(
    spec: str,
    x_shape: tuple[int, ...],
    n_out: int,
    task: str,
    model_args: Mapping[str, Any],
) -> None:
    """Build the core once and run a dummy batch of 2 through it: ``(2, n_out)`` must come out.

    Training preflight calls it, so a wrong factory is one line before any rank starts.

    Raises:
        ValueError: the core cannot be built (:func:`build_core`), or its forward fails or gives
            another shape.
    """
    import torch

    core = build_core(spec, x_shape, n_out, task, model_args).eval()
    batch = torch.zeros(2, *x_shape)
    try:
        with torch.no_grad():
            out = core(batch)
    except Exception as e:
        raise ValueError(
            f"{spec}: the model failed on a batch of shape {tuple(batch.shape)}: "
            f"{type(e).__name__}: {e}"
        ) from e
    shape = tuple(out.shape) if isinstance(out, torch.Tensor) else _kind(out)
    if shape != (2, n_out):
        raise ValueError(
            f"{spec}: expected output (batch, n_out) = (2, {n_out}) for input "
            f"{tuple(batch.shape)}, found {shape}"
        )


def import_root(spec: str) -> str:
    """The folder (or zip) that must be on ``sys.path`` to import ``spec``'s module.

    For ``a.b.c``, the parent of package ``a``; for a top-level module, its file's folder. The
    module must have been imported (:func:`load_factory`).
    """
    path = source(spec)
    return os.path.dirname(path)


def source(spec: str) -> str:
    """The top-level package's folder, or the top-level module's file, of an imported ``spec``.

    Inside a zip (``--py-files``) it is the path within the archive, ``x.zip/a``.
    """
    module: ModuleType = sys.modules[top_level(spec)]
    paths = list(getattr(module, "__path__", []))  # a package (namespace packages: no __file__)
    if paths:
        return os.path.abspath(paths[0])
    if getattr(module, "__file__", None) is None:
        raise ValueError(f"{spec}: cannot locate the source of module {module.__name__!r}")
    return os.path.abspath(module.__file__)  # type: ignore[arg-type]


def _kind(value: Any) -> str:
    return "None" if value is None else f"a {type(value).__module__}.{type(value).__qualname__}"
