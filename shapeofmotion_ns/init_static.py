"""Static (background) points from the depth maps (reference: iPhoneDataset.get_bkgd_points).

Every training frame contributes about the same number of random pixels outside the motion
mask with valid image content and a known depth, unprojected to the world, with their colour
and the normal of the depth map's surface there.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import List, Optional

import torch
import torch.nn.functional as F
from rich.progress import Progress
from torch import Tensor

from shapeofmotion_ns.frames import TrainingFrames
from shapeofmotion_ns.geometry import unproject
from shapeofmotion_ns.lift import PriorWarning, samples_per_query
from splat4d.geometry import apply_transform


@dataclass
class StaticPoints:
    xyz: Tensor  # [N, 3] world
    normals: Tensor  # [N, 3] unit (0 where the depth map gives none)
    colors: Tensor  # [N, 3] in [0, 1]


def surface_normals(points: Tensor) -> Tensor:
    """Normals [H, W, 3] of a point map [H, W, 3] from central differences (0 on the border):
    n = normalize((p[i, j+1] − p[i, j−1]) × (p[i−1, j] − p[i+1, j]))."""
    left_to_right = points[1:-1, 2:] - points[1:-1, :-2]
    bottom_to_top = points[:-2, 1:-1] - points[2:, 1:-1]
    normals = F.normalize(torch.linalg.cross(left_to_right, bottom_to_top, dim=-1), dim=-1)
    return F.pad(normals.permute(2, 0, 1), (1, 1, 1, 1)).permute(1, 2, 0)


def static_points(
    frames: TrainingFrames, num_points: int, generator: torch.Generator, progress: Optional[Progress] = None
) -> StaticPoints:
    task = progress.add_task("sampling static points", total=len(frames)) if progress is not None else None
    chunks: List[StaticPoints] = []
    for f, count in enumerate(samples_per_query(num_points, len(frames))):
        data = frames.load(f)
        depth = torch.nan_to_num(data.depth.float(), nan=0.0, posinf=0.0, neginf=0.0)
        background = (data.motion_mask < 0.5) & data.valid & (depth > 0)
        if progress is not None:
            progress.advance(task)
        if not background.any():
            warnings.warn(
                f"frame {frames.names[f]}: no background pixel with a valid depth; it adds no static points",
                PriorWarning,
                stacklevel=2,
            )
            continue
        H, W = depth.shape
        jj, ii = torch.meshgrid(torch.arange(W) + 0.5, torch.arange(H) + 0.5, indexing="xy")
        c2w = torch.linalg.inv(frames.w2c[f].double()).float()
        world = apply_transform(c2w, unproject(torch.stack([jj, ii], -1), depth, frames.K[f].float()))
        normals = surface_normals(world)
        pixels = background.nonzero()
        chosen = pixels[torch.randperm(len(pixels), generator=generator)[:count]]
        i, j = chosen[:, 0], chosen[:, 1]
        chunks.append(StaticPoints(world[i, j], normals[i, j], data.image[i, j].float().clamp(0, 1)))
    if not chunks:
        raise ValueError(
            f"no training frame ({', '.join(frames.names)}) has background pixels with a valid depth "
            f"outside the motion mask: static Gaussians cannot be initialized"
        )
    return StaticPoints(*(torch.cat([getattr(c, name) for c in chunks]) for name in ("xyz", "normals", "colors")))
