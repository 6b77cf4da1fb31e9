"""Random Gaussian scenes seen by a small camera arc, for tests, benchmarks and examples."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch
from torch import Tensor


@dataclass
class Scene:
    means: Tensor
    quats: Tensor
    scales: Tensor
    opacities: Tensor
    colors: Tensor
    viewmats: Tensor
    Ks: Tensor
    width: int
    height: int

    def params(self):
        return [self.means, self.quats, self.scales, self.opacities, self.colors]


def look_at_viewmat(eye: Tensor, target: Tensor) -> Tensor:
    """World->camera matrix (OpenCV axes: x right, y down, z forward) looking from eye to target."""
    forward = torch.nn.functional.normalize(target - eye, dim=0)
    right = torch.nn.functional.normalize(
        torch.linalg.cross(forward, torch.tensor([0.0, -1.0, 0.0], dtype=eye.dtype)), dim=0
    )
    down = torch.linalg.cross(forward, right)
    R = torch.stack([right, down, forward])  # rows: camera axes in world coordinates
    viewmat = torch.eye(4, dtype=eye.dtype)
    viewmat[:3, :3] = R
    viewmat[:3, 3] = -R @ eye
    return viewmat


def random_scene(
    n: int,
    width: int,
    height: int,
    n_cameras: int = 1,
    channels: int = 3,
    sh_degree: Optional[int] = None,
    scale_range: tuple = (0.01, 0.05),
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
) -> Scene:
    """n Gaussians uniformly in a unit box at the origin, seen by cameras on a small arc at
    distance ~2.5 with a 60° horizontal field of view."""
    g = torch.Generator().manual_seed(seed)
    means = (torch.rand(n, 3, generator=g) - 0.5) * 2.0
    quats = torch.randn(n, 4, generator=g)
    lo, hi = scale_range
    scales = lo * (hi / lo) ** torch.rand(n, 3, generator=g)
    opacities = torch.rand(n, generator=g) * 0.9 + 0.05
    if sh_degree is None:
        colors = torch.rand(n, channels, generator=g)
    else:
        colors = torch.randn(n, (sh_degree + 1) ** 2, 3, generator=g) * 0.3
    viewmats = []
    for i in range(n_cameras):
        angle = 0.3 * (i - (n_cameras - 1) / 2)
        eye = torch.tensor([2.5 * math.sin(angle), -0.3, -2.5 * math.cos(angle)])
        viewmats.append(look_at_viewmat(eye, torch.zeros(3)))
    f = 0.5 * width / math.tan(math.radians(30))
    K = torch.tensor([[f, 0.0, width / 2], [0.0, f, height / 2], [0.0, 0.0, 1.0]])
    return Scene(
        means=means.to(dtype),
        quats=quats.to(dtype),
        scales=scales.to(dtype),
        opacities=opacities.to(dtype),
        colors=colors.to(dtype),
        viewmats=torch.stack(viewmats).to(dtype),
        Ks=K[None].repeat(n_cameras, 1, 1).to(dtype),
        width=width,
        height=height,
    )
