"""3D trajectories of dynamic Gaussians for the viewer ("Show trajectories" under Custom Elements).

``sample_trajectories`` picks up to ``count`` dynamic Gaussians at random (a fixed seed, so a
redraw shows the same ones while their number is unchanged), preferring the ones at least
``min_opacity`` opaque, and colours them by their order along the axis of largest spread of their
mean positions (a rainbow, so neighbouring tracks get similar hues). ``draw_trajectories`` adds
them to a viser scene as one Catmull-Rom spline per Gaussian through its positions at every time
step, plus a point per time step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, List

import torch
from torch import Tensor

SCENE_NODE = "/shapeofmotion_trajectories"


@dataclass
class TrajectorySample:
    ids: Tensor  # [G] indices into the positions given to sample_trajectories
    positions: Tensor  # [G, T, 3]
    colors: Tensor  # [G, 3] in [0, 1]


def rainbow(values: Tensor) -> Tensor:
    """Hues [G, 3] (RGB in [0, 1]) of values in [0, 1], red through green and blue to magenta."""
    h = 5.0 * values.clamp(0, 1)[:, None]  # hue × 6, stopping before it wraps back to red
    r = (h - 3).abs() - 1
    g = 2 - (h - 2).abs()
    b = 2 - (h - 4).abs()
    return torch.cat([r, g, b], dim=1).clamp(0, 1)


def sample_trajectories(
    positions: Tensor, opacities: Tensor, count: int, min_opacity: float = 0.5, seed: int = 0
) -> TrajectorySample:
    """Up to ``count`` of G trajectories ``positions`` [G, T, 3] with opacities [G] (module docstring)."""
    if positions.ndim != 3 or positions.shape[-1] != 3 or opacities.shape != positions.shape[:1]:
        raise ValueError(
            f"expected positions [G, T, 3] and opacities [G], got {tuple(positions.shape)} and {tuple(opacities.shape)}"
        )
    if count < 0:
        raise ValueError(f"count must be ≥ 0, got {count}")
    opaque = (opacities >= min_opacity).nonzero().squeeze(-1)
    candidates = opaque if len(opaque) > 0 else torch.arange(len(positions))
    order = torch.randperm(len(candidates), generator=torch.Generator().manual_seed(seed))
    ids = candidates[order[:count]].sort().values
    chosen = positions[ids]
    means = chosen.mean(dim=1)
    if len(ids) < 2:
        return TrajectorySample(ids, chosen, rainbow(torch.zeros(len(ids))))
    along = means[:, int(means.var(dim=0).argmax())]
    rank = along.argsort().argsort().float() / (len(ids) - 1)
    return TrajectorySample(ids, chosen, rainbow(rank))


def draw_trajectories(scene: Any, sample: TrajectorySample, scale: float, line_width: float = 2.0) -> List[Any]:
    """Adds the sample to a viser scene (``server.scene``), positions × ``scale``; returns the handles."""
    handles = []
    points = (sample.positions * scale).numpy()
    colors = (sample.colors * 255).round().to(torch.uint8).numpy()
    if sample.positions.shape[1] >= 2:
        for k, (path, color) in enumerate(zip(points, colors)):
            handles.append(
                scene.add_spline_catmull_rom(
                    f"{SCENE_NODE}/track_{k}", path, line_width=line_width, color=tuple(int(c) for c in color)
                )
            )
    if len(points) > 0:
        per_point = colors[:, None].repeat(points.shape[1], axis=1).reshape(-1, 3)
        handles.append(
            scene.add_point_cloud(
                f"{SCENE_NODE}/points", points=points.reshape(-1, 3), colors=per_point, point_size=0.02 * scale
            )
        )
    return handles
