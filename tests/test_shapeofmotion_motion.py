"""Shape of Motion motion bases: 6D rotations, quaternion conversions, blending, interpolation."""

import math

import torch

from shapeofmotion_ns.motion import (
    bases_at,
    blend,
    canonical_frame,
    identity_bases,
    matrix_to_quat,
    matrix_to_rotation_6d,
    move_means,
    move_quats,
    quat_multiply,
    rotation_6d_to_matrix,
)
from splat4d.projection import quat_to_rotmat


def random_rotations(n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return quat_to_rotmat(torch.randn(n, 4, generator=g, dtype=torch.float64))


def test_6d_round_trip_and_gram_schmidt():
    R = random_rotations(64)
    assert torch.allclose(rotation_6d_to_matrix(matrix_to_rotation_6d(R)), R, atol=1e-12)
    raw = torch.randn(64, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    M = rotation_6d_to_matrix(raw)
    eye = torch.eye(3, dtype=torch.float64).expand(64, 3, 3)
    assert torch.allclose(M.transpose(-1, -2) @ M, eye, atol=1e-12)
    assert torch.allclose(torch.linalg.det(M), torch.ones(64, dtype=torch.float64), atol=1e-12)
    # the first column is the normalised first vector
    assert torch.allclose(M[:, :, 0], raw[:, :3] / raw[:, :3].norm(dim=-1, keepdim=True), atol=1e-12)


def test_matrix_to_quat_inverts_quat_to_rotmat_including_half_turns():
    q = torch.randn(200, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    half_turns = torch.tensor(
        [[0.0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1], [0, 1, 1, 0], [1e-9, 0, 0.6, 0.8]], dtype=torch.float64
    )
    q = torch.nn.functional.normalize(torch.cat([q, half_turns]), dim=-1)
    back = matrix_to_quat(quat_to_rotmat(q))
    sign = torch.where((back * q).sum(-1, keepdim=True) < 0, -1.0, 1.0)
    assert torch.allclose(back, q * sign, atol=1e-7)
    assert (back[:, 0] >= 0).all()


def test_quat_multiply_composes_rotations():
    p, q = torch.randn(2, 32, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    lhs = quat_to_rotmat(quat_multiply(p, q))
    assert torch.allclose(lhs, quat_to_rotmat(p) @ quat_to_rotmat(q), atol=1e-12)


def known_motion(num_frames: int):
    """One basis rotating about z by 0.2 rad per frame and translating by (0.1 f, 0, 0.05 f)."""
    angles = 0.2 * torch.arange(num_frames, dtype=torch.float64)
    c, s = torch.cos(angles), torch.sin(angles)
    R = torch.zeros(num_frames, 3, 3, dtype=torch.float64)
    R[:, 0, 0], R[:, 0, 1], R[:, 1, 0], R[:, 1, 1], R[:, 2, 2] = c, -s, s, c, 1.0
    t = torch.stack([0.1 * torch.arange(num_frames), torch.zeros(num_frames), 0.05 * torch.arange(num_frames)], -1)
    return R, t.double()


def test_points_follow_a_known_se3_motion():
    F_ = 6
    R, t = known_motion(F_)
    rots = matrix_to_rotation_6d(R)[None]  # [1, F, 6]
    transls = t[None]
    g = torch.Generator().manual_seed(4)
    means = torch.randn(10, 3, dtype=torch.float64, generator=g)
    quats = torch.randn(10, 4, dtype=torch.float64, generator=g)
    rot_f, transl_f = bases_at(rots, transls, torch.arange(F_))
    Rg, tg = blend(torch.zeros(10, 1, dtype=torch.float64), rot_f, transl_f)
    moved = move_means(means, Rg, tg)  # [10, F, 3]
    expected = torch.einsum("fij,gj->gfi", R, means) + t[None]
    assert torch.allclose(moved, expected, atol=1e-12)
    q_t = move_quats(quats, Rg)
    assert torch.allclose(quat_to_rotmat(q_t), R[None] @ quat_to_rotmat(quats)[:, None], atol=1e-10)


def test_blend_weights_bases_by_softmax_of_logits():
    F_ = 4
    rots, transls = identity_bases(3, F_)
    rots, transls = rots.double(), transls.double()
    transls[0] = 1.0
    transls[1] = -2.0
    transls[2] = 5.0
    R_other, _ = known_motion(F_)
    rots[2] = matrix_to_rotation_6d(R_other)
    logits = torch.tensor([[math.log(3.0), 0.0, -1e9], [0.0, -1e9, 0.0]], dtype=torch.float64)
    R, t = blend(logits, rots, transls)
    assert torch.allclose(t[0], torch.full((F_, 3), (3 * 1.0 - 2.0) / 4, dtype=torch.float64))
    assert torch.allclose(R[0], torch.eye(3, dtype=torch.float64).expand(F_, 3, 3), atol=1e-12)
    # the second Gaussian blends the identity with the z-rotation: half the 6D vector of each
    half = rotation_6d_to_matrix(0.5 * (matrix_to_rotation_6d(torch.eye(3, dtype=torch.float64)) + rots[2]))
    assert torch.allclose(R[1], half, atol=1e-12)
    assert torch.allclose(t[1], torch.full((F_, 3), 3.0, dtype=torch.float64))


def test_bases_interpolate_linearly_between_frames_and_clamp():
    rots = torch.randn(2, 5, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    transls = torch.randn(2, 5, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(6))
    r, t = bases_at(rots, transls, torch.tensor([0.0, 2.0, 2.25, 4.0, 7.0, -1.0], dtype=torch.float64))
    assert torch.equal(r[:, 0], rots[:, 0]) and torch.equal(t[:, 1], transls[:, 2])
    assert torch.allclose(t[:, 2], 0.75 * transls[:, 2] + 0.25 * transls[:, 3])
    assert torch.allclose(r[:, 2], 0.75 * rots[:, 2] + 0.25 * rots[:, 3])
    assert torch.equal(t[:, 3], transls[:, 4]) and torch.equal(t[:, 4], transls[:, 4])
    assert torch.equal(t[:, 5], transls[:, 0])
    single_r, single_t = bases_at(rots[:, :1], transls[:, :1], torch.tensor([0.0, 0.5]))
    assert torch.equal(single_t[:, 1], transls[:, 0])


def test_gradients_reach_logits_and_bases():
    g = torch.Generator().manual_seed(7)
    rots = torch.randn(3, 4, 6, generator=g, requires_grad=True)
    transls = torch.randn(3, 4, 3, generator=g, requires_grad=True)
    logits = torch.randn(5, 3, requires_grad=True)
    means = torch.randn(5, 3)
    r, t = bases_at(rots, transls, torch.tensor([1.5]))
    R, tr = blend(logits, r, t)
    (move_means(means, R, tr).square().sum() + move_quats(torch.randn(5, 4), R)[..., 1].sum()).backward()
    assert logits.grad.abs().sum() > 0 and rots.grad[:, 1:3].abs().sum() > 0 and transls.grad[:, 1:3].abs().sum() > 0
    assert rots.grad[:, [0, 3]].abs().sum() == 0


def test_canonical_frame_has_most_visible_tracks():
    visible = torch.zeros(6, 4, dtype=torch.bool)
    visible[:, 2] = True
    visible[:3, 1] = True
    assert canonical_frame(visible) == 2
