"""Pinhole geometry shared by initialization, losses and track metrics.

Conventions: cameras are OpenCV world→camera matrices ``w2c`` [4, 4] (x right, y down,
z forward) with intrinsics ``K`` [3, 3]; pixel (i, j) has its centre at (j + 0.5, i + 0.5),
like nerfstudio and gsplat.
"""

from __future__ import annotations

from typing import Tuple

import torch
import torch.nn.functional as F
from torch import Tensor


def apply_transform(matrix: Tensor, points: Tensor) -> Tensor:
    """x' = M[:3, :3] x + M[:3, 3] for points [..., 3] and M [4, 4] (or [..., 4, 4] batched like points)."""
    return (matrix[..., :3, :3] @ points[..., None]).squeeze(-1) + matrix[..., :3, 3]


def project(points_cam: Tensor, K: Tensor, min_depth: float = 1e-6) -> Tuple[Tensor, Tensor]:
    """Pixels [..., 2] and depths [...] of camera-space points [..., 3]: u = K x / z."""
    z = points_cam[..., 2]
    uvw = (K @ points_cam[..., None]).squeeze(-1)
    return uvw[..., :2] / z.clamp(min=min_depth)[..., None], z


def unproject(xy: Tensor, depth: Tensor, K: Tensor) -> Tensor:
    """Camera-space points [..., 3] of pixels [..., 2] at z-depths [...]: x = z K⁻¹ (u, v, 1)."""
    rays = (torch.linalg.inv(K) @ F.pad(xy, (0, 1), value=1.0)[..., None]).squeeze(-1)
    return rays * depth[..., None]


def camera_centres(w2c: Tensor) -> Tensor:
    """Camera centres [..., 3] of world→camera matrices [..., 4, 4]: c = −Rᵀ t."""
    return -(w2c[..., :3, :3].transpose(-1, -2) @ w2c[..., :3, 3:]).squeeze(-1)


def sample_image(image: Tensor, xy: Tensor, mode: str = "bilinear", padding_mode: str = "border") -> Tensor:
    """Values [P, C] of an image [H, W, C] at pixels xy [P, 2] (centres at +0.5)."""
    H, W = image.shape[:2]
    grid = torch.stack([2 * xy[:, 0] / W - 1, 2 * xy[:, 1] / H - 1], dim=-1)
    out = F.grid_sample(image.permute(2, 0, 1)[None], grid[None, None].to(image.dtype), mode=mode,
                        padding_mode=padding_mode, align_corners=False)  # fmt: skip
    return out[0, :, 0].T
