"""EWA projection of 3D Gaussians to the image plane (pinhole), as gsplat 1.4.0 does it.

Pure PyTorch, differentiable through autograd. Outputs follow gsplat's ``packed=False``
convention: tensors of shape [C, N, ...]; entries of culled Gaussians (radius 0) are zero.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import torch
import torch.nn.functional as F
from torch import Tensor

# Frustum guard band of the Jacobian: means outside the image by more than 30% of the half
# field of view are clamped when linearising the projection (gsplat/Inria convention).
_FRUSTUM_GUARD = 0.3


class Projection(NamedTuple):
    radii: Tensor  # [C, N] int32, 0 where culled
    means2d: Tensor  # [C, N, 2]
    depths: Tensor  # [C, N] camera-space z
    conics: Tensor  # [C, N, 3] upper triangle (a, b, c) of the inverse 2D covariance
    compensations: Optional[Tensor]  # [C, N] antialiasing opacity factor, or None


def quat_to_rotmat(quats: Tensor) -> Tensor:
    """Rotation matrices [..., 3, 3] from (w, x, y, z) quaternions [..., 4] (normalised here)."""
    w, x, y, z = F.normalize(quats, dim=-1).unbind(-1)
    rows = (
        1 - 2 * (y * y + z * z),
        2 * (x * y - w * z),
        2 * (x * z + w * y),
        2 * (x * y + w * z),
        1 - 2 * (x * x + z * z),
        2 * (y * z - w * x),
        2 * (x * z - w * y),
        2 * (y * z + w * x),
        1 - 2 * (x * x + y * y),
    )
    return torch.stack(rows, dim=-1).reshape(quats.shape[:-1] + (3, 3))


def quat_scale_to_covar(quats: Tensor, scales: Tensor) -> Tensor:
    """3D covariances [N, 3, 3]: Σ = R S Sᵀ Rᵀ."""
    M = quat_to_rotmat(quats) * scales[..., None, :]
    return M @ M.transpose(-1, -2)


def project_gaussians(
    means: Tensor,  # [N, 3]
    quats: Tensor,  # [N, 4]
    scales: Tensor,  # [N, 3]
    viewmats: Tensor,  # [C, 4, 4] world -> camera (OpenCV axes)
    Ks: Tensor,  # [C, 3, 3]
    width: int,
    height: int,
    eps2d: float = 0.3,
    near_plane: float = 0.01,
    far_plane: float = 1e10,
    radius_clip: float = 0.0,
    calc_compensations: bool = False,
) -> Projection:
    R = viewmats[:, :3, :3]
    t = viewmats[:, :3, 3]
    means_c = torch.einsum("cij,nj->cni", R, means) + t[:, None, :]  # [C, N, 3]
    covars_c = torch.einsum("cij,njk,clk->cnil", R, quat_scale_to_covar(quats, scales), R)

    x, y, z = means_c.unbind(-1)
    in_depth = (z >= near_plane) & (z <= far_plane)
    z = torch.where(in_depth, z, torch.ones_like(z))  # keep culled entries finite
    fx, fy = Ks[:, 0, 0, None], Ks[:, 1, 1, None]  # [C, 1]
    cx, cy = Ks[:, 0, 2, None], Ks[:, 1, 2, None]

    # Jacobian of the perspective projection at the (guard-band clamped) mean.
    tan_fovx, tan_fovy = 0.5 * width / fx, 0.5 * height / fy
    tx = z * torch.clamp(
        x / z,
        min=-(cx / fx + _FRUSTUM_GUARD * tan_fovx),
        max=(width - cx) / fx + _FRUSTUM_GUARD * tan_fovx,
    )
    ty = z * torch.clamp(
        y / z,
        min=-(cy / fy + _FRUSTUM_GUARD * tan_fovy),
        max=(height - cy) / fy + _FRUSTUM_GUARD * tan_fovy,
    )
    zeros = torch.zeros_like(z)
    J = torch.stack([fx / z, zeros, -fx * tx / (z * z), zeros, fy / z, -fy * ty / (z * z)], dim=-1).reshape(
        z.shape + (2, 3)
    )
    cov2d = J @ covars_c @ J.transpose(-1, -2)  # [C, N, 2, 2]
    means2d = torch.stack([fx * x / z + cx, fy * y / z + cy], dim=-1)

    # Low-pass filter: Σ2d + eps2d·I; the antialiased mode rescales opacity by the area ratio.
    a, b, c = cov2d[..., 0, 0], 0.5 * (cov2d[..., 0, 1] + cov2d[..., 1, 0]), cov2d[..., 1, 1]
    det_orig = a * c - b * b
    a, c = a + eps2d, c + eps2d
    det = a * c - b * b
    valid = in_depth & (det > 0)
    det = torch.where(valid, det, torch.ones_like(det))
    conics = torch.stack([c / det, -b / det, a / det], dim=-1)

    # 3-sigma radius of the larger eigenvalue, in whole pixels.
    mid = 0.5 * (a + c)
    lambda_max = mid + torch.sqrt(torch.clamp(mid * mid - det, min=0.01))
    radius = torch.ceil(3.0 * torch.sqrt(lambda_max)).detach()
    valid = valid & (radius > radius_clip)
    u, v = means2d.detach().unbind(-1)
    valid = valid & (u + radius > 0) & (u - radius < width) & (v + radius > 0) & (v - radius < height)

    radii = torch.where(valid, radius, torch.zeros_like(radius)).int()
    keep = valid[..., None]
    compensations = None
    if calc_compensations:
        # sqrt(det(Σ2d) / det(Σ2d + eps2d·I)); the floor keeps the gradient finite when flat
        compensations = torch.where(valid, torch.sqrt(torch.clamp(det_orig / det, min=1e-12)), 0.0)
    return Projection(
        radii=radii,
        means2d=torch.where(keep, means2d, 0.0),
        depths=torch.where(valid, means_c[..., 2], 0.0),
        conics=torch.where(keep, conics, 0.0),
        compensations=compensations,
    )
