"""Inputs and comparisons of the compiled CPU rasterizer's tests (test_raster_cpu_kernel.py):
random projected scenes with their tile binning, rendering with gradients, and the kernel
(each SIMD build) against the PyTorch reference."""

from __future__ import annotations

import contextlib
import os

import torch

from splat4d import raster_cpu
from splat4d.projection import project_gaussians
from splat4d.random_scene import random_scene
from splat4d.raster_cpu import rasterize_to_pixels_cpu
from splat4d.raster_reference import rasterize_to_pixels_reference
from splat4d.tiles import intersect_tiles


def scene_inputs(
    n,
    width,
    height,
    n_cameras=1,
    channels=3,
    tile_size=16,
    seed=0,
    scale_range=(0.02, 0.2),
    edit=None,
    dtype=torch.float32,
):
    """Projected Gaussians of a random scene (detached leaves) and their tile binning."""
    s = random_scene(n, width, height, n_cameras=n_cameras, channels=channels, scale_range=scale_range, seed=seed)
    if edit is not None:
        edit(s)
    with torch.no_grad():
        p = project_gaussians(s.means, s.quats, s.scales, s.viewmats, s.Ks, width, height)
    C = n_cameras
    offsets, ids = intersect_tiles(p.means2d, p.radii, p.depths, tile_size, width, height)
    leaves = {
        "means2d": p.means2d.to(dtype),
        "conics": p.conics.to(dtype),
        "colors": s.colors.expand(C, n, channels).to(dtype).contiguous(),
        "opacities": s.opacities.expand(C, n).to(dtype).contiguous(),
    }
    return leaves, dict(
        image_width=width, image_height=height, tile_size=tile_size, isect_offsets=offsets, flatten_ids=ids
    )


def render_and_grad(fn, leaves, geometry, backgrounds=None, absgrad=True, seed=123):
    """Renders with ``fn`` and back-propagates a random linear loss of image and alpha."""
    x = {k: v.detach().clone().requires_grad_(True) for k, v in leaves.items()}
    bg = None if backgrounds is None else backgrounds.detach().clone().requires_grad_(True)
    img, alpha = fn(x["means2d"], x["conics"], x["colors"], x["opacities"], backgrounds=bg, absgrad=absgrad, **geometry)
    g = torch.Generator().manual_seed(seed)
    w_img = torch.randn(img.shape, generator=g, dtype=img.dtype)
    w_alpha = torch.randn(alpha.shape, generator=g, dtype=img.dtype)
    ((img * w_img).sum() + (alpha * w_alpha).sum()).backward()
    grads = {k: v.grad for k, v in x.items()}
    if bg is not None:
        grads["backgrounds"] = bg.grad
    if absgrad:
        grads["absgrad"] = x["means2d"].absgrad
    return img.detach(), alpha.detach(), grads


def assert_grads_close(got, want, rtol=1e-4, atol_scale=2e-5):
    assert got.keys() == want.keys()
    for name in want:
        g, w = got[name], want[name]
        assert g is not None and w is not None, name
        assert g.shape == w.shape, (name, g.shape, w.shape)
        atol = atol_scale * max(float(w.abs().max()), 1e-6)
        torch.testing.assert_close(g, w, rtol=rtol, atol=atol, msg=lambda m, name=name: f"gradient of {name}: {m}")


@contextlib.contextmanager
def simd(mode):
    """Run the kernel with SPLAT4D_CPU_SIMD=mode ("baseline": 4 lanes, "auto": AVX2 if any)."""
    old = os.environ.get("SPLAT4D_CPU_SIMD")
    os.environ["SPLAT4D_CPU_SIMD"] = mode
    try:
        yield
    finally:
        if old is None:
            del os.environ["SPLAT4D_CPU_SIMD"]
        else:
            os.environ["SPLAT4D_CPU_SIMD"] = old


def simd_modes():
    """Both builds of the kernels where this CPU runs the AVX2 one, else just the baseline."""
    return ["baseline", "auto"] if raster_cpu.simd_isa() == "avx2" else ["baseline"]


def compare_with_reference(leaves, geometry, backgrounds=None, absgrad=True):
    """Kernel (each SIMD build) vs reference: images/alphas to 2e-5 (the AVX2 build's fused
    multiply-adds round otherwise than the reference's float32 ops; both are within ~5e-6 of
    float64 on the hand-made conics), gradients to 1e-4 rel."""
    ref = render_and_grad(rasterize_to_pixels_reference, leaves, geometry, backgrounds, absgrad)
    for mode in simd_modes():
        with simd(mode):
            ker = render_and_grad(rasterize_to_pixels_cpu, leaves, geometry, backgrounds, absgrad)
        torch.testing.assert_close(ker[0], ref[0], atol=2e-5, rtol=0)
        torch.testing.assert_close(ker[1], ref[1], atol=2e-5, rtol=0)
        assert_grads_close(ker[2], ref[2])
    return ker
