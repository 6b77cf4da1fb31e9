"""Pinhole geometry of Shape of Motion in torch: back-projection and image sampling (the
conventions, projection and camera centres: :mod:`splat4d.geometry`)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def unproject(xy: Tensor, depth: Tensor, K: Tensor) -> Tensor:
    """Camera-space points [..., 3] of pixels [..., 2] at z-depths [...]: x = z K⁻¹ (u, v, 1)."""
    rays = (torch.linalg.inv(K) @ F.pad(xy, (0, 1), value=1.0)[..., None]).squeeze(-1)
    return rays * depth[..., None]


def sample_image(image: Tensor, xy: Tensor, mode: str = "bilinear", padding_mode: str = "border") -> Tensor:
    """Values [P, C] of an image [H, W, C] at pixels xy [P, 2] (centres at +0.5)."""
    H, W = image.shape[:2]
    grid = torch.stack([2 * xy[:, 0] / W - 1, 2 * xy[:, 1] / H - 1], dim=-1)
    out = F.grid_sample(
        image.permute(2, 0, 1)[None],
        grid[None, None].to(image.dtype),
        mode=mode,
        padding_mode=padding_mode,
        align_corners=False,
    )
    return out[0, :, 0].T
