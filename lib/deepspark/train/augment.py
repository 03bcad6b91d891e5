"""Vectorized image augmentation: one random affine transform per image, one kernel per batch."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def random_affine(
    images: torch.Tensor, *, shift: float, rotate: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Rotate each image by up to ``rotate`` degrees and shift it by up to ``shift`` pixels.

    ``images`` is ``[batch, channels, height, width]``; pixels moved in from outside are 0.
    """
    if shift <= 0 and rotate <= 0:
        return images
    n, _, h, w = images.shape
    opts = {"device": images.device, "dtype": images.dtype}

    def uniform(limit: float) -> torch.Tensor:
        u = torch.rand(n, generator=generator, device=generator.device if generator else None)
        return ((u * 2 - 1) * limit).to(**opts)

    angle = uniform(math.radians(rotate))
    # affine_grid works in [-1, 1] coordinates: a shift of s pixels is 2s / size.
    tx, ty = uniform(shift) * 2 / w, uniform(shift) * 2 / h
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, padding_mode="zeros", align_corners=False)
