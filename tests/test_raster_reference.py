"""The pure-torch reference rasterizer against a per-pixel scalar oracle, plus autograd checks."""

import math

import pytest
import torch

from splat4d import rasterize
from splat4d.projection import project_gaussians
from splat4d.random_scene import random_scene


def naive_render(proj, colors, opacities, width, height, tile_size, background):
    """Scalar loop written from gsplat's definition: each pixel visits the Gaussians whose
    square bounding box overlaps its tile, nearest first."""
    C, N = proj.radii.shape
    out = torch.zeros(C, height, width, colors.shape[-1], dtype=torch.float64)
    alpha_out = torch.zeros(C, height, width, 1, dtype=torch.float64)
    for c in range(C):
        order = sorted(range(N), key=lambda i: (float(proj.depths[c, i]), i))
        for py in range(height):
            for px in range(width):
                T, pix = 1.0, torch.zeros(colors.shape[-1], dtype=torch.float64)
                for i in order:
                    r = float(proj.radii[c, i])
                    if r <= 0:
                        continue
                    mx, my = (float(v) for v in proj.means2d[c, i])
                    # tile range of the bounding box, as tile indices
                    if not (math.floor((mx - r) / tile_size) <= px // tile_size < math.ceil((mx + r) / tile_size)):
                        continue
                    if not (math.floor((my - r) / tile_size) <= py // tile_size < math.ceil((my + r) / tile_size)):
                        continue
                    a, b, cc = (float(v) for v in proj.conics[c, i])
                    dx, dy = mx - (px + 0.5), my - (py + 0.5)
                    sigma = 0.5 * (a * dx * dx + cc * dy * dy) + b * dx * dy
                    alpha = min(0.999, float(opacities[i]) * math.exp(-sigma))
                    if sigma < 0 or alpha < 1 / 255:
                        continue
                    if T * (1 - alpha) <= 1e-4:
                        break
                    pix += colors[i].double() * alpha * T
                    T *= 1 - alpha
                out[c, py, px] = pix + T * background[c].double()
                alpha_out[c, py, px, 0] = 1 - T
    return out, alpha_out


def test_reference_matches_scalar_oracle():
    s = random_scene(60, 40, 24, n_cameras=2, scale_range=(0.05, 0.3), seed=4)
    s.opacities[:10] = 1.0  # saturating Gaussians exercise the early stop
    bg = torch.rand(2, 3)
    render, alpha, info = rasterize(
        s.means,
        s.quats,
        s.scales,
        s.opacities,
        s.colors,
        s.viewmats,
        s.Ks,
        s.width,
        s.height,
        backgrounds=bg,
        backend="reference",
    )
    proj = project_gaussians(s.means, s.quats, s.scales, s.viewmats, s.Ks, s.width, s.height)
    want, want_alpha = naive_render(proj, s.colors, s.opacities, s.width, s.height, 16, bg)
    assert (alpha > 0.99).any(), "scene should contain saturated pixels"
    torch.testing.assert_close(render.double(), want, atol=1e-5, rtol=0)
    torch.testing.assert_close(alpha.double(), want_alpha, atol=1e-5, rtol=0)


def test_reference_gradcheck_float64():
    s = random_scene(6, 16, 16, scale_range=(0.1, 0.4), seed=5, dtype=torch.float64)
    s.opacities[:] = torch.linspace(0.3, 0.7, 6, dtype=torch.float64)
    bg = torch.rand(1, 3, dtype=torch.float64)
    params = [s.means, s.quats, s.scales, s.opacities, s.colors, bg]
    for p in params:
        p.requires_grad_(True)

    def render(means, quats, scales, opacities, colors, backgrounds):
        rgb, alpha, _ = rasterize(
            means,
            quats,
            scales,
            opacities,
            colors,
            s.viewmats,
            s.Ks,
            s.width,
            s.height,
            backgrounds=backgrounds,
            render_mode="RGB+ED",
            backend="reference",
        )
        return rgb, alpha

    assert torch.autograd.gradcheck(render, params, eps=1e-6, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("mode", ["D", "ED", "RGB+D", "RGB+ED"])
def test_depth_render_modes(mode):
    s = random_scene(400, 48, 32, n_cameras=2, seed=6)
    rgb, _, _ = rasterize(
        s.means, s.quats, s.scales, s.opacities, s.colors, s.viewmats, s.Ks, s.width, s.height, backend="reference"
    )
    out, alpha, info = rasterize(
        s.means,
        s.quats,
        s.scales,
        s.opacities,
        s.colors,
        s.viewmats,
        s.Ks,
        s.width,
        s.height,
        render_mode=mode,
        backend="reference",
    )
    assert out.shape == (2, 32, 48, 4 if mode.startswith("RGB") else 1)
    if mode.startswith("RGB"):
        torch.testing.assert_close(out[..., :3], rgb)
    depth = out[..., -1:]
    # accumulated depth = Σ w_i z_i; expected depth divides by the accumulated opacity
    z = info["depths"][info["radii"] > 0]
    if mode.endswith("ED"):
        covered = alpha > 0.5
        assert (depth[covered] >= z.min() - 1e-4).all() and (depth[covered] <= z.max() + 1e-4).all()
    else:
        assert (depth <= alpha * z.max() + 1e-4).all() and (depth >= alpha * z.min() - 1e-4).all()


def test_extra_channels_and_per_camera_colors():
    s = random_scene(300, 40, 30, n_cameras=3, channels=7, seed=7)
    per_cam = s.colors[None].repeat(3, 1, 1) * torch.tensor([1.0, 2.0, 3.0])[:, None, None]
    out, _, _ = rasterize(
        s.means, s.quats, s.scales, s.opacities, per_cam, s.viewmats, s.Ks, s.width, s.height, backend="reference"
    )
    single, _, _ = rasterize(
        s.means, s.quats, s.scales, s.opacities, s.colors, s.viewmats, s.Ks, s.width, s.height, backend="reference"
    )
    assert out.shape == (3, 30, 40, 7)
    for c in range(3):
        torch.testing.assert_close(out[c], single[c] * (c + 1), atol=1e-5, rtol=1e-5)


def test_sh_colors_render_and_bad_shapes_raise():
    s = random_scene(200, 32, 24, sh_degree=2, seed=8)
    out, _, _ = rasterize(
        s.means,
        s.quats,
        s.scales,
        s.opacities,
        s.colors,
        s.viewmats,
        s.Ks,
        s.width,
        s.height,
        sh_degree=2,
        backend="reference",
    )
    assert out.shape == (1, 24, 32, 3) and (out >= 0).all()
    with pytest.raises(ValueError, match="colors"):
        rasterize(
            s.means,
            s.quats,
            s.scales,
            s.opacities,
            s.colors[:, :3, :].reshape(200, 9),
            s.viewmats,
            s.Ks,
            s.width,
            s.height,
            sh_degree=2,
            backend="reference",
        )
    with pytest.raises(ValueError, match="packed"):
        rasterize(
            s.means,
            s.quats,
            s.scales,
            s.opacities,
            s.colors,
            s.viewmats,
            s.Ks,
            s.width,
            s.height,
            sh_degree=2,
            packed=True,
            backend="reference",
        )
