"""Real spherical harmonics up to degree 4 (Sloan, "Efficient Spherical Harmonic Evaluation",
JCGT 2013), in the basis order and sign convention gsplat and the Inria 3DGS code use."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

MAX_SH_DEGREE = 4


def sh_bases(degree: int, dirs: Tensor) -> Tensor:
    """Basis values [..., (degree+1)^2] at unit directions ``dirs`` [..., 3]."""
    if not 0 <= degree <= MAX_SH_DEGREE:
        raise ValueError(f"sh_degree must be in [0, {MAX_SH_DEGREE}], got {degree}")
    x, y, z = dirs.unbind(-1)
    out = [torch.full_like(x, 0.2820947917738781)]
    if degree >= 1:
        out += [-0.48860251190292 * y, 0.48860251190292 * z, -0.48860251190292 * x]
    if degree >= 2:
        z2 = z * z
        c1, s1 = x * x - y * y, 2 * x * y
        out += [
            0.5462742152960395 * s1,
            -1.092548430592079 * z * y,
            0.9461746957575601 * z2 - 0.3153915652525201,
            -1.092548430592079 * z * x,
            0.5462742152960395 * c1,
        ]
    if degree >= 3:
        c2, s2 = x * c1 - y * s1, x * s1 + y * c1
        tmp_c = -2.285228997322329 * z2 + 0.4570457994644658
        tmp_b = 1.445305721320277 * z
        out += [
            -0.5900435899266435 * s2,
            tmp_b * s1,
            tmp_c * y,
            z * (1.865881662950577 * z2 - 1.119528997770346),
            tmp_c * x,
            tmp_b * c1,
            -0.5900435899266435 * c2,
        ]
    if degree >= 4:
        c3, s3 = x * c2 - y * s2, x * s2 + y * c2
        tmp_d = z * (-4.683325804901025 * z2 + 2.007139630671868)
        tmp_c = 3.31161143515146 * z2 - 0.47308734787878
        tmp_b = -1.770130769779931 * z
        out += [
            0.6258357354491763 * s3,
            tmp_b * s2,
            tmp_c * s1,
            tmp_d * y,
            1.984313483298443 * z2 * (1.865881662950577 * z2 - 1.119528997770346)
            - 1.006230589874905 * (0.9461746957575601 * z2 - 0.3153915652525201),
            tmp_d * x,
            tmp_c * c1,
            tmp_b * c2,
            0.6258357354491763 * c3,
        ]
    return torch.stack(out, dim=-1)


def eval_sh(degree: int, dirs: Tensor, coeffs: Tensor) -> Tensor:
    """Colours [..., 3] from SH coefficients [..., K, 3] seen along ``dirs`` [..., 3];
    only the first (degree+1)^2 coefficients are used (K may be larger)."""
    n_bases = (degree + 1) ** 2
    if coeffs.shape[-2] < n_bases:
        raise ValueError(f"sh_degree {degree} needs {n_bases} coefficients, got {coeffs.shape[-2]}")
    bases = sh_bases(degree, F.normalize(dirs, dim=-1))
    return (bases[..., None] * coeffs[..., :n_bases, :]).sum(dim=-2)


def view_dependent_colors(degree: int, means: Tensor, coeffs: Tensor, viewmats: Tensor) -> Tensor:
    """RGB [C, N, 3] of Gaussians at ``means`` [N, 3] with SH ``coeffs`` [(C,) N, K, 3] seen
    from the cameras ``viewmats`` [C, 4, 4], with the Inria offset: max(SH + 0.5, 0)."""
    campos = torch.linalg.inv(viewmats)[:, :3, 3]  # [C, 3]
    dirs = means[None, :, :] - campos[:, None, :]
    coeffs = coeffs.expand((viewmats.shape[0],) + coeffs.shape[-3:])
    return torch.clamp_min(eval_sh(degree, dirs, coeffs) + 0.5, 0.0)
