"""Shape of Motion's motion model: B shared SE(3) motion bases blended per Gaussian.

Each basis b has, for every frame f, a rotation in the continuous 6D representation
``rots[b, f]`` (the first two columns of the rotation matrix) and a translation
``transls[b, f]``. A dynamic Gaussian with coefficient logits ``w`` moves rigidly by the
blend of the bases: the 6D vectors and translations are averaged with softmax(w), the blended
6D vector becomes a rotation by Gram–Schmidt, and the canonical mean / rotation follow.
Times between frames interpolate the basis parameters linearly.

The ablation without bases (Shape of Motion's "per-Gaussian translation") gives each dynamic
Gaussian its own translation d[g, f] per frame and no rotation: μ_f = μ_0 + d_f.

Quaternions are (w, x, y, z), as in gsplat.
"""

from __future__ import annotations

from typing import Tuple

import torch
import torch.nn.functional as F
from torch import Tensor


def rotation_6d_to_matrix(rot6: Tensor) -> Tensor:
    """[..., 6] → [..., 3, 3] by Gram–Schmidt on the two column vectors."""
    a, b = rot6[..., :3], rot6[..., 3:]
    x = F.normalize(a, dim=-1)  # x = a / |a|
    y = F.normalize(b - (b * x).sum(-1, keepdim=True) * x, dim=-1)  # y = (b − (b·x)x) / |…|
    z = torch.linalg.cross(x, y, dim=-1)  # z = x × y
    return torch.stack([x, y, z], dim=-1)


def matrix_to_rotation_6d(matrix: Tensor) -> Tensor:
    """[..., 3, 3] → [..., 6]: the first two columns."""
    return torch.cat([matrix[..., 0], matrix[..., 1]], dim=-1)


def matrix_to_quat(matrix: Tensor) -> Tensor:
    """Unit quaternions [..., 4] (w, x, y, z, w ≥ 0) of rotation matrices [..., 3, 3]."""
    m = matrix
    m00, m11, m22 = m[..., 0, 0], m[..., 1, 1], m[..., 2, 2]
    # 4·w² = 1 + tr R, 4·x² = 1 + m00 − m11 − m22, …: build the quaternion from the largest
    four_sq = torch.stack([1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22], -1)
    root = torch.sqrt(four_sq.clamp(min=1e-12))  # 2|q_i|
    d21, d02, d10 = m[..., 2, 1] - m[..., 1, 2], m[..., 0, 2] - m[..., 2, 0], m[..., 1, 0] - m[..., 0, 1]
    s21, s02, s10 = m[..., 2, 1] + m[..., 1, 2], m[..., 0, 2] + m[..., 2, 0], m[..., 1, 0] + m[..., 0, 1]
    candidates = torch.stack(
        [
            torch.stack([root[..., 0] ** 2, d21, d02, d10], -1) / (2 * root[..., 0:1]),
            torch.stack([d21, root[..., 1] ** 2, s10, s02], -1) / (2 * root[..., 1:2]),
            torch.stack([d02, s10, root[..., 2] ** 2, s21], -1) / (2 * root[..., 2:3]),
            torch.stack([d10, s02, s21, root[..., 3] ** 2], -1) / (2 * root[..., 3:4]),
        ],
        dim=-2,
    )
    best = four_sq.argmax(dim=-1, keepdim=True)[..., None].expand(*m.shape[:-2], 1, 4)
    quat = F.normalize(torch.gather(candidates, -2, best).squeeze(-2), dim=-1)
    return quat * torch.where(quat[..., :1] < 0, -1.0, 1.0)


def quat_multiply(p: Tensor, q: Tensor) -> Tensor:
    """Hamilton product p ⊗ q of (w, x, y, z) quaternions (broadcast)."""
    pw, px, py, pz = p.unbind(-1)
    qw, qx, qy, qz = q.unbind(-1)
    return torch.stack(
        [
            pw * qw - px * qx - py * qy - pz * qz,
            pw * qx + px * qw + py * qz - pz * qy,
            pw * qy - px * qz + py * qw + pz * qx,
            pw * qz + px * qy - py * qx + pz * qw,
        ],
        dim=-1,
    )


def interpolate_frames(values: Tensor, frames: Tensor) -> Tensor:
    """Per-frame values [M, F, D] at (possibly fractional) frames [K]: [M, K, D].

    Between frames f and f + 1 the values are interpolated linearly; frames outside
    [0, F − 1] are clamped."""
    num_frames = values.shape[1]
    frames = frames.to(values.dtype).clamp(0, num_frames - 1)
    lo = frames.floor().long().clamp(0, max(num_frames - 2, 0))
    hi = (lo + 1).clamp(max=num_frames - 1)
    w = (frames - lo.to(frames.dtype))[None, :, None]
    return (1 - w) * values[:, lo] + w * values[:, hi]  # P(f) = (1 − w)·P(⌊f⌋) + w·P(⌊f⌋ + 1)


def bases_at(rots: Tensor, transls: Tensor, frames: Tensor) -> Tuple[Tensor, Tensor]:
    """Basis parameters at (possibly fractional) frames [K]: ([B, K, 6], [B, K, 3]), interpolated
    linearly (interpolate_frames)."""
    return interpolate_frames(rots, frames), interpolate_frames(transls, frames)


def blend(coef_logits: Tensor, rots: Tensor, transls: Tensor) -> Tuple[Tensor, Tensor]:
    """Per-Gaussian rigid transforms from the bases at K frames.

    coef_logits [G, B]; rots [B, K, 6]; transls [B, K, 3] → (R [G, K, 3, 3], t [G, K, 3])."""
    coefs = torch.softmax(coef_logits, dim=-1)
    rot6 = torch.einsum("gb,bkd->gkd", coefs, rots)  # r_g = Σ_b softmax(w_g)_b · r_b
    transl = torch.einsum("gb,bkd->gkd", coefs, transls)  # t_g = Σ_b softmax(w_g)_b · t_b
    return rotation_6d_to_matrix(rot6), transl


def move_means(means: Tensor, rotations: Tensor, translations: Tensor) -> Tensor:
    """μ_t = R μ_0 + t: means [G, 3], R [G, K, 3, 3], t [G, K, 3] → [G, K, 3]."""
    return torch.einsum("gkij,gj->gki", rotations, means) + translations


def move_quats(quats: Tensor, rotations: Tensor) -> Tensor:
    """q_t = quat(R) ⊗ q_0: quats [G, 4] (any norm), R [G, K, 3, 3] → unit quats [G, K, 4]."""
    return F.normalize(quat_multiply(matrix_to_quat(rotations), F.normalize(quats, dim=-1)[:, None]), dim=-1)


def displacements_from_bases(means: Tensor, coef_logits: Tensor, rots: Tensor, transls: Tensor) -> Tensor:
    """Per-frame translations [G, F, 3] that move means [G, 3] where the blended bases ([B, F, 6],
    [B, F, 3]) move them: d_f = R_f μ_0 + t_f − μ_0."""
    return move_means(means, *blend(coef_logits, rots, transls)) - means[:, None]


def canonical_frame(visible: Tensor) -> int:
    """The frame in which most tracks are visible: visible [P, F] bool."""
    return int(visible.sum(dim=0).argmax())


def identity_bases(num_bases: int, num_frames: int) -> Tuple[Tensor, Tensor]:
    """Bases that do not move: ([B, F, 6] identity 6D rotations, [B, F, 3] zeros)."""
    rots = matrix_to_rotation_6d(torch.eye(3)).expand(num_bases, num_frames, 6).clone()
    return rots, torch.zeros(num_bases, num_frames, 3)
