"""The model's normalized scene frame (Shape of Motion's scene normalization).

The model keeps its Gaussians and motion bases in a frame where the moving foreground is about
unit size: x_model = R (x_world − c) / s, with c the mean of the visible foreground track points,
s half the largest 5%–95% quantile range of them, and R the smallest rotation taking the mean
camera up vector to +z. Learning rates and the density-control thresholds refer to this frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from splat4d.geometry import rotation_to_z
from splat4d.quantile import safe_quantile


@dataclass
class SceneNormalization:
    """x_model = R (x_world − c) / s."""

    rotation: Tensor  # [3, 3] R
    centre: Tensor  # [3] c
    scale: float | Tensor  # s (a 0-d tensor in the model's buffers)

    @staticmethod
    def from_tracks(points: Tensor, w2c: Tensor) -> "SceneNormalization":
        """From visible foreground track points [M, 3] and the training cameras' OpenCV
        world→camera matrices [F, 4, 4] (their −y axis is up)."""
        if len(points) == 0:
            raise ValueError("scene normalization needs visible foreground track points; none were lifted")
        centre = points.mean(dim=0)
        centred = points - centre
        extent = (safe_quantile(centred, 0.95, dim=0) - safe_quantile(centred, 0.05, dim=0)).max()
        up = -F.normalize(w2c[:, 1, :3].mean(dim=0), dim=-1)
        rotation = torch.as_tensor(rotation_to_z(up.double().cpu().numpy()), dtype=up.dtype, device=up.device)
        return SceneNormalization(rotation, centre, max(float(extent) / 2.0, 1e-6))

    def points_to_model(self, points: Tensor) -> Tensor:
        return (points - self.centre) @ self.rotation.T / self.scale

    def points_to_world(self, points: Tensor) -> Tensor:
        return self.scale * points @ self.rotation + self.centre

    def w2c_to_model(self, w2c: Tensor) -> Tensor:
        """Camera matrices [..., 4, 4] taking model points to camera coordinates divided by s
        (so depths are in model units): x_cam / s = R_c Rᵀ x_model + (R_c c + t_c) / s."""
        out = w2c.clone()
        out[..., :3, :3] = w2c[..., :3, :3] @ self.rotation.T
        out[..., :3, 3] = ((w2c[..., :3, :3] @ self.centre) + w2c[..., :3, 3]) / self.scale
        return out
