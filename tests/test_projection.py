"""Projection, radii, conics and SH against gsplat's own pure-torch implementation."""

import pytest
import torch
from gsplat.cuda._torch_impl import _fully_fused_projection, _quat_scale_to_covar_preci, _spherical_harmonics

from splat4d.projection import project_gaussians
from splat4d.random_scene import random_scene
from splat4d.sh import eval_sh


@pytest.mark.parametrize("calc_compensations", [False, True])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_projection_matches_gsplat_torch(calc_compensations, dtype):
    # float64 shows the formulas are the same; float32 bounds the rounding of a different op order
    tol = 1e-5 if dtype == torch.float64 else 2e-4
    s = random_scene(3000, 160, 120, n_cameras=3, scale_range=(1e-3, 0.3), seed=1, dtype=dtype)
    s.means[:50, 2] -= 6.0  # some Gaussians behind the cameras
    ours = project_gaussians(
        s.means, s.quats, s.scales, s.viewmats, s.Ks, s.width, s.height, calc_compensations=calc_compensations
    )
    covars, _ = _quat_scale_to_covar_preci(s.quats, s.scales, compute_preci=False)
    radii, means2d, depths, conics, comps = _fully_fused_projection(
        s.means, covars, s.viewmats, s.Ks, s.width, s.height, calc_compensations=calc_compensations
    )
    assert torch.equal(ours.radii, radii)
    valid = radii > 0
    assert valid.sum() > 1000 and (~valid).sum() > 50
    torch.testing.assert_close(ours.means2d[valid], means2d[valid], atol=tol, rtol=tol)
    torch.testing.assert_close(ours.depths[valid], depths[valid], atol=tol, rtol=tol)
    torch.testing.assert_close(ours.conics[valid], conics[valid], atol=tol, rtol=tol)
    if calc_compensations:
        torch.testing.assert_close(ours.compensations[valid], comps[valid], atol=tol, rtol=tol)
    # culled entries are zero, as gsplat's CUDA kernel leaves them
    assert ours.means2d[~valid].abs().max() == 0 and ours.conics[~valid].abs().max() == 0


def test_projection_near_far_and_radius_clip():
    s = random_scene(500, 64, 48, seed=2)
    full = project_gaussians(s.means, s.quats, s.scales, s.viewmats, s.Ks, s.width, s.height)
    depth = (torch.einsum("ij,nj->ni", s.viewmats[0, :3, :3], s.means) + s.viewmats[0, :3, 3])[:, 2]
    cut = project_gaussians(
        s.means, s.quats, s.scales, s.viewmats, s.Ks, s.width, s.height, near_plane=2.5, far_plane=3.0, radius_clip=3.0
    )
    kept = cut.radii[0] > 0
    assert kept.any()
    assert (depth[kept] >= 2.5).all() and (depth[kept] <= 3.0).all()
    assert (cut.radii[0][kept] > 3).all()
    assert torch.equal(cut.radii[0][kept], full.radii[0][kept])


def test_projection_gradients_are_finite_for_degenerate_gaussians():
    s = random_scene(200, 64, 48, seed=3)
    scales = s.scales.clone()
    scales[:20, 2] = 0.0  # perfectly flat
    scales[20:40] = 50.0  # huge
    means = s.means.clone()
    means[40:60, 2] = -2.5  # at the camera centre plane
    for t in (means, s.quats, scales):
        t.requires_grad_(True)
    proj = project_gaussians(means, s.quats, scales, s.viewmats, s.Ks, s.width, s.height, calc_compensations=True)
    loss = proj.means2d.sum() + proj.conics.sum() + proj.depths.sum() + proj.compensations.sum()
    loss.backward()
    for t in (means, s.quats, scales):
        assert torch.isfinite(t.grad).all()


@pytest.mark.parametrize("degree", [0, 1, 2, 3, 4])
def test_sh_matches_gsplat_torch(degree):
    g = torch.Generator().manual_seed(degree)
    dirs = torch.randn(1000, 3, generator=g)
    coeffs = torch.randn(1000, 25, 3, generator=g)
    ours = eval_sh(degree, dirs, coeffs)
    theirs = _spherical_harmonics(degree, dirs, coeffs)
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)
