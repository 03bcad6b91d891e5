"""A bring-your-own model for the tests: a top-level module, importable only from this folder.

Nothing puts ``tests/byo`` on ``sys.path`` by itself, so a test that trains ``tiny_gru:make`` and
scores with Spark shows the module travels: to the ranks (the job's import root) and inside the
logged model (its ``code_paths``) to the Spark workers.
"""

from __future__ import annotations

import torch
from torch import nn

WIDTH = 8  # not callable: the error for a factory that is not one


class TinyGRU(nn.Module):
    """One GRU layer of ``width`` units over the steps; its last state -> ``n_out``."""

    def __init__(self, inputs: int, n_out: int, width: int) -> None:
        super().__init__()
        self.gru = nn.GRU(inputs, width, batch_first=True)
        self.head = nn.Linear(width, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.gru(x)
        return self.head(out[:, -1])


def make(x_shape: tuple[int, ...], n_out: int, task: str, width: int = WIDTH) -> nn.Module:
    if len(x_shape) != 2:
        raise ValueError(f"expected sequence features [steps, inputs], got {x_shape}")
    return TinyGRU(x_shape[1], n_out, width)


def not_a_module(x_shape: tuple[int, ...], n_out: int, task: str) -> dict:
    return {"x_shape": x_shape}


def per_step(x_shape: tuple[int, ...], n_out: int, task: str) -> nn.Module:
    return nn.Linear(x_shape[-1], n_out)  # one answer per step: (batch, steps, n_out)
