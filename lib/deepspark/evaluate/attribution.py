"""Which inputs a model's output depends on: integrated gradients and permutation importance.

Integrated gradients (Sundararajan et al., 2017) attribute ``f(x) - f(baseline)`` to each input
value: ``(x - b) * mean over the path of df/dx``. With a zero baseline on these features that is
a black image (pixels are scaled to [0, 1]) or, for sequences, every input at its training mean
(inputs are standardized), both neutral points. The path integral is a midpoint Riemann sum, so
the completeness gap ``sum(attributions) - (f(x) - f(b))`` shrinks as ``steps`` grows; it is
returned so callers can report it instead of trusting it.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from deepspark.evaluate.inference import eval_mode

Scorer = Callable[[np.ndarray, np.ndarray], float]


def integrated_gradients(
    model: torch.nn.Module,
    x: np.ndarray,
    *,
    steps: int = 32,
    target: np.ndarray | None = None,
    baseline: np.ndarray | None = None,
    batch_rows: int = 8192,
) -> tuple[np.ndarray, np.ndarray]:
    """Integrated gradients of each row of ``x`` against a baseline (zeros by default).

    Args:
        model: Maps a batch like ``x`` to ``(n,)`` outputs or ``(n, k)`` class scores.
        x: Inputs, ``(n, ...)``.
        steps: Riemann steps along the straight path from the baseline to ``x``.
        target: For ``(n, k)`` outputs, the class whose score is explained, per row.
        baseline: One input like a row of ``x`` (default: zeros).
        batch_rows: Path points per forward/backward pass (bounds memory).

    Returns:
        (attributions shaped like ``x``; ``f(x) - f(baseline)`` per row, what they should sum to).
    """
    if steps < 1:
        raise ValueError(f"steps: expected >= 1, found {steps}")
    model = eval_mode(model)
    xs = torch.as_tensor(np.ascontiguousarray(x, dtype=np.float32))
    base = torch.zeros_like(xs[:1]) if baseline is None else _row(baseline, xs)
    alphas = (torch.arange(steps, dtype=torch.float32) + 0.5) / steps
    chunk = max(1, batch_rows // steps)
    attributions, deltas = [], []
    for start in range(0, len(xs), chunk):
        xc = xs[start : start + chunk]
        n = len(xc)
        idx = None if target is None else torch.as_tensor(target[start : start + chunk]).long()
        shape = (steps, 1) + (1,) * (xs.dim() - 1)
        path = (base + alphas.view(shape) * (xc - base)).reshape(steps * n, *xs.shape[1:])
        path.requires_grad_(True)
        with torch.enable_grad():
            out = _select(model(path), None if idx is None else idx.repeat(steps))
            (grad,) = torch.autograd.grad(out.sum(), path)
        mean_grad = grad.reshape(steps, n, *xs.shape[1:]).mean(0)
        attributions.append(((xc - base) * mean_grad).numpy())
        with torch.no_grad():
            both = torch.cat([xc, base.expand_as(xc)])
            ends = _select(model(both), None if idx is None else torch.cat([idx, idx]))
        deltas.append((ends[:n] - ends[n:]).numpy())
    return np.concatenate(attributions), np.concatenate(deltas).astype(np.float64)


def permutation_importance(
    predict: Callable[[np.ndarray], np.ndarray],
    x: np.ndarray,
    y: np.ndarray,
    *,
    score: Scorer,
    repeats: int = 3,
    seed: int = 0,
) -> tuple[float, np.ndarray]:
    """How much ``score`` worsens when one input feature is shuffled across rows.

    ``x`` is ``(n, steps, features)``: feature ``j``'s whole window (every step) moves to another
    row together, so the model sees realistic series of that input, just not this row's.

    Args:
        predict: Maps an ``x``-shaped array to forecasts.
        x: Inputs, ``(n, steps, features)``.
        y: Targets.
        score: ``score(pred, y)``, lower is better (e.g. MAE).
        repeats: Shuffles per feature.
        seed: Seeds the shuffles.

    Returns:
        (the unshuffled score; a ``features x repeats`` array of score increases).
    """
    if x.ndim != 3:
        raise ValueError(f"x: expected (rows, steps, features), found shape {x.shape}")
    rng = np.random.default_rng(seed)
    base = score(predict(x), y)
    out = np.zeros((x.shape[2], repeats))
    for j in range(x.shape[2]):
        for r in range(repeats):
            shuffled = x.copy()
            shuffled[:, :, j] = x[rng.permutation(len(x)), :, j]
            out[j, r] = score(predict(shuffled), y) - base
    return base, out


def completeness_error(attributions: np.ndarray, delta: np.ndarray) -> float:
    """Relative completeness gap, ``mean |sum(attributions) - delta| / mean |delta|``.

    0 when the attributions add up exactly to ``f(x) - f(baseline)`` (``delta``) on every row.
    """
    sums = attributions.reshape(len(attributions), -1).sum(1).astype(np.float64)
    scale = float(np.mean(np.abs(delta)))
    return float(np.mean(np.abs(sums - delta)) / scale) if scale > 0 else 0.0


def _row(baseline: np.ndarray, xs: torch.Tensor) -> torch.Tensor:
    b = torch.as_tensor(np.asarray(baseline, dtype=np.float32))
    if tuple(b.shape) != tuple(xs.shape[1:]):
        raise ValueError(f"baseline: expected shape {tuple(xs.shape[1:])}, found {tuple(b.shape)}")
    return b.unsqueeze(0)


def _select(out: torch.Tensor, idx: torch.Tensor | None) -> torch.Tensor:
    if out.dim() == 2 and idx is not None:
        return out.gather(1, idx.unsqueeze(1)).squeeze(1)
    if out.dim() == 2 and out.shape[1] == 1:
        return out.squeeze(1)
    if out.dim() != 1:
        raise ValueError(f"model output: expected (n,) or (n, k) with a target, found {out.shape}")
    return out
