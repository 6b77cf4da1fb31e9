"""The compiled CPU rasterizer (splat4d/raster_cpu.py + csrc/rasterize_cpu.cpp) against the
pure-PyTorch reference and a scalar per-pixel oracle: images, alphas and every gradient.

The first test to run compiles the extension (10-30 s; cached afterwards in torch's extension
directory). If no C++ compiler exists at all, or SPLAT4D_DISABLE_CPU_KERNEL is set, the module
is skipped; a compiler that fails on our source is a test failure."""

from __future__ import annotations

import math
import os
import shutil

import pytest
import torch
from raster_cpu_cases import assert_grads_close, compare_with_reference, render_and_grad, scene_inputs

from splat4d import raster_cpu, rasterize
from splat4d.projection import project_gaussians
from splat4d.random_scene import random_scene
from splat4d.raster_cpu import rasterize_to_pixels_cpu
from splat4d.raster_reference import rasterize_to_pixels_reference
from splat4d.tiles import intersect_tiles, intersect_tiles_torch

if shutil.which("c++") is None and shutil.which("g++") is None:
    pytest.skip("no C++ compiler: the compiled CPU rasterizer cannot be built here", allow_module_level=True)
if os.environ.get("SPLAT4D_DISABLE_CPU_KERNEL", "") not in ("", "0"):
    pytest.skip("the compiled CPU rasterizer is disabled (SPLAT4D_DISABLE_CPU_KERNEL)", allow_module_level=True)


@pytest.fixture(scope="module", autouse=True)
def built_extension():
    return raster_cpu.load_extension()  # raises (fails every test) if the source does not build


@pytest.fixture(autouse=True)
def single_thread():
    """The scenes here are tiny: one thread keeps them fast on a busy machine (thread-count
    independence is tested explicitly below)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ---------------------------------------------------------------------------------------------
# kernel vs reference


@pytest.mark.parametrize(
    "n, width, height, cams, channels, tile, bg, seed",
    [
        (300, 64, 48, 2, 3, 16, True, 0),  # C=2, RGB, background
        (400, 37, 29, 1, 1, 8, False, 1),  # D=1, partial tiles, no background
        (250, 50, 30, 2, 7, 16, True, 2),  # D=7
        (150, 33, 17, 1, 4, 16, False, 3),  # D=4, a single tile row
        (200, 30, 22, 1, 2, 6, True, 4),  # D=2, tiles of 6 (not a multiple of the SIMD width)
        (120, 24, 20, 2, 40, 16, True, 5),  # D=40
    ],
)
def test_matches_reference_random_scenes(n, width, height, cams, channels, tile, bg, seed):
    leaves, geom = scene_inputs(n, width, height, cams, channels, tile, seed=seed)
    assert geom["flatten_ids"].numel() > 0
    backgrounds = torch.rand(cams, channels, generator=torch.Generator().manual_seed(seed)) if bg else None
    img, alpha, _ = compare_with_reference(leaves, geom, backgrounds)
    assert img.shape == (cams, height, width, channels) and alpha.shape == (cams, height, width, 1)


def test_saturated_pixels_and_clamped_alpha():
    """Opaque, large Gaussians: pixels stop early (T <= 1e-4) and alpha is clamped at 0.999."""

    def edit(s):
        s.opacities[:] = 1.0
        s.opacities[::3] = 0.6

    leaves, geom = scene_inputs(2000, 94, 70, 2, 3, 16, seed=4, scale_range=(0.1, 0.4), edit=edit)  # partial tiles
    _, alpha, _ = compare_with_reference(leaves, geom, torch.rand(2, 3))
    assert (alpha > 0.999).float().mean() > 0.8, "scene should saturate most pixels"


def test_degenerate_gaussians():
    """Behind the camera, zero opacity, huge and extremely flat, and clustered Gaussians."""

    def edit(s):
        n = s.means.shape[0]
        s.means[: n // 10, 2] = -5.0  # many of these end up behind the cameras (radius 0)
        s.opacities[n // 10 : n // 5] = 0.0
        s.opacities[n // 5 : n // 5 + 5] = 1e-3  # below 1/255 everywhere
        s.scales[n // 4 : n // 4 + 6] = torch.tensor([3.0, 2.0, 1.5])  # cover the whole image
        s.scales[n // 3 : n // 3 + 20] = torch.tensor([4.0, 1e-4, 1e-4])  # needles
        s.scales[n // 3 + 20 : n // 3 + 30] = torch.tensor([200.0, 1e-3, 1e-3])  # conic condition ~1e7
        s.scales[n // 2 : n // 2 + 20] = torch.tensor([2.0, 1.0, 1e-6])  # flat discs
        s.means[-30:] = s.means[-1]  # identical positions: depth ties

    for channels, bg in ((3, True), (1, False), (7, True)):
        leaves, geom = scene_inputs(300, 40, 36, 2, channels, 16, seed=5, edit=edit)
        backgrounds = torch.rand(2, channels) if bg else None
        compare_with_reference(leaves, geom, backgrounds)


def test_handcrafted_conics():
    """Conics a projection never produces: indefinite, negative, zero, nearly singular, huge."""
    g = torch.Generator().manual_seed(12)
    C, N, W, H = 2, 64, 45, 35
    means2d = torch.rand(C, N, 2, generator=g) * torch.tensor([W + 20.0, H + 20.0]) - 10.0
    conics = torch.tensor([0.05, 0.01, 0.08]).repeat(C, N, 1)
    special = torch.tensor(
        [
            [0.05, 0.2, 0.05],
            [-0.05, 0.0, 0.05],
            [0.05, 0.0, -0.01],
            [0.0, 0.0, 0.0],
            [1e-7, 0.0, 3.0],
            [3.0, 1.7320508, 1.0],
            [2.0, 1e-3, 1e-7],
            [50.0, 0.0, 50.0],
            [1e-9, 1e-9, 1e-9],
            [0.3, -0.29, 0.3],
        ]
    )
    conics[:, : len(special) * 4] = special.repeat(4, 1)
    conics[1] *= 1.5
    opacities = torch.rand(C, N, generator=g) * 0.9 + 0.05
    colors = torch.rand(C, N, 3, generator=g)
    radii = (torch.rand(C, N, generator=g) * 25 + 1).int()
    radii[:, ::7] = 0
    depths = torch.rand(C, N, generator=g)
    offsets, ids = intersect_tiles(means2d, radii, depths, 8, W, H)
    geom = dict(image_width=W, image_height=H, tile_size=8, isect_offsets=offsets, flatten_ids=ids)
    leaves = {"means2d": means2d, "conics": conics, "colors": colors, "opacities": opacities}
    compare_with_reference(leaves, geom, torch.rand(C, 3, generator=g))


@pytest.mark.parametrize("bg", [True, False])
def test_nothing_on_screen(bg):
    """All Gaussians off-screen (M == 0) and no Gaussians at all (N == 0). (The reference's
    outputs are then not connected to its inputs, so gradients are checked directly.)"""

    def edit(s):
        s.means[:, 0] += 50.0

    leaves, geom = scene_inputs(50, 30, 20, 2, 3, 16, seed=6, edit=edit)
    assert geom["flatten_ids"].numel() == 0
    backgrounds = torch.rand(2, 3) if bg else None
    want_img = backgrounds[:, None, None, :].expand(2, 20, 30, 3) if bg else torch.zeros(2, 20, 30, 3)
    ref_img, _ = rasterize_to_pixels_reference(**leaves, backgrounds=backgrounds, **geom)
    torch.testing.assert_close(ref_img, want_img)
    for inputs in (leaves, {k: v[:, :0] for k, v in leaves.items()}):
        img, alpha, grads = render_and_grad(rasterize_to_pixels_cpu, inputs, geom, backgrounds, seed=3)
        torch.testing.assert_close(img, want_img, atol=0, rtol=0)
        assert alpha.shape == (2, 20, 30, 1) and (alpha == 0).all()
        for name, g in grads.items():
            if name == "backgrounds":  # d/d bg of sum(w * (pix + T bg)) with T = 1
                w = torch.randn((2, 20, 30, 3), generator=torch.Generator().manual_seed(3))
                torch.testing.assert_close(g, w.sum(dim=(1, 2)))
            else:
                assert g.shape[:2] == (2, inputs["means2d"].shape[1]) and (g == 0).all(), name


def test_full_pipeline_matches_reference_backend():
    """rasterize(..., backend="cpu") vs backend="reference": images, 3D parameter gradients and
    the means2d grad/absgrad that gsplat's strategies read."""
    s = random_scene(400, 48, 32, n_cameras=2, sh_degree=1, seed=7)
    bg0 = torch.rand(2, 3)
    out = {}
    for backend in ("reference", "cpu"):
        params = [p.detach().clone().requires_grad_(True) for p in s.params()]
        bg = bg0.clone().requires_grad_(True)
        img, alpha, info = rasterize(
            *params,
            s.viewmats,
            s.Ks,
            s.width,
            s.height,
            sh_degree=1,
            backgrounds=bg,
            render_mode="RGB+ED",
            absgrad=True,
            backend=backend,
        )
        info["means2d"].retain_grad()
        (img.square().sum() + alpha.sum()).backward()
        grads = {f"param{i}": p.grad for i, p in enumerate(params)}
        grads.update(backgrounds=bg.grad, means2d=info["means2d"].grad, absgrad=info["means2d"].absgrad)
        out[backend] = (img.detach(), alpha.detach(), grads)
    (img_r, alpha_r, grads_r), (img_k, alpha_k, grads_k) = out["reference"], out["cpu"]
    torch.testing.assert_close(img_k, img_r, atol=1e-5, rtol=1e-5)  # expected depth: relative
    torch.testing.assert_close(alpha_k, alpha_r, atol=1e-5, rtol=0)
    assert_grads_close(grads_k, grads_r, rtol=1e-4, atol_scale=5e-5)


# ---------------------------------------------------------------------------------------------
# independent checks


def naive_composite(leaves, geometry, backgrounds):
    """Scalar per-pixel loop over each tile's list, straight from gsplat's kernel (float64)."""
    W, H, ts = geometry["image_width"], geometry["image_height"], geometry["tile_size"]
    offsets, ids = geometry["isect_offsets"].flatten().tolist(), geometry["flatten_ids"].tolist()
    means = leaves["means2d"].reshape(-1, 2).double().tolist()
    conics = leaves["conics"].reshape(-1, 3).double().tolist()
    opac = leaves["opacities"].reshape(-1).double().tolist()
    colors = leaves["colors"].double()
    C, N, D = colors.shape
    colors = colors.reshape(C * N, D)
    tw = math.ceil(W / ts)
    img = torch.zeros(C, H, W, D, dtype=torch.float64)
    alpha = torch.zeros(C, H, W, 1, dtype=torch.float64)
    for c in range(C):
        for i in range(H):
            for j in range(W):
                t = c * len(offsets) // C + (i // ts) * tw + j // ts
                end = offsets[t + 1] if t + 1 < len(offsets) else len(ids)
                T, pix = 1.0, torch.zeros(D, dtype=torch.float64)
                for g in ids[offsets[t] : end]:
                    dx, dy = means[g][0] - (j + 0.5), means[g][1] - (i + 0.5)
                    a, b, cc = conics[g]
                    sigma = 0.5 * (a * dx * dx + cc * dy * dy) + b * dx * dy
                    al = min(0.999, opac[g] * math.exp(-sigma))
                    if sigma < 0 or al < 1 / 255:
                        continue
                    if T * (1 - al) <= 1e-4:
                        break
                    pix += colors[g] * al * T
                    T *= 1 - al
                img[c, i, j] = pix + (T * backgrounds[c].double() if backgrounds is not None else 0)
                alpha[c, i, j, 0] = 1 - T
    return img, alpha


def test_matches_scalar_oracle():
    leaves, geom = scene_inputs(40, 21, 13, 2, 2, 8, seed=8, scale_range=(0.05, 0.4))
    leaves["opacities"][:, :8] = 1.0
    bg = torch.rand(2, 2)
    want_img, want_alpha = naive_composite(leaves, geom, bg)
    img, alpha = rasterize_to_pixels_cpu(**leaves, backgrounds=bg, **geom)
    torch.testing.assert_close(img.double(), want_img, atol=1e-5, rtol=0)
    torch.testing.assert_close(alpha.double(), want_alpha, atol=1e-5, rtol=0)


def test_gradcheck_float64():
    """The hand-written backward against finite differences (float64 runs natively)."""
    leaves, geom = scene_inputs(8, 14, 11, 2, 2, 8, seed=9, scale_range=(0.15, 0.4), dtype=torch.float64)
    leaves["opacities"] = torch.linspace(0.3, 0.8, 16, dtype=torch.float64).reshape(2, 8)
    bg = torch.rand(2, 2, dtype=torch.float64)
    inputs = [leaves[k].clone().requires_grad_(True) for k in ("means2d", "conics", "colors", "opacities")]
    inputs.append(bg.requires_grad_(True))

    def fn(means2d, conics, colors, opacities, backgrounds):
        return rasterize_to_pixels_cpu(means2d, conics, colors, opacities, backgrounds=backgrounds, **geom)

    assert geom["flatten_ids"].numel() > 0
    assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("allow_avx2", [False, True])
def test_vectorised_exp_accuracy(built_extension, allow_avx2):
    """The kernels' float32 exp stays within ~1.5 ulp of the true exp (torch.exp: ~1 ulp)."""
    x = torch.linspace(-87.0, 0.5, 2_000_003)
    x = torch.cat([x, -torch.logspace(-8, 1, 10_001), torch.tensor([0.0, -0.0])])
    got = built_extension.vexp_f32(x, allow_avx2).double()
    want = torch.exp(x.double())
    rel = ((got - want).abs() / want).max().item()
    assert rel < 1.0e-7, rel  # 2^-24 = 6e-8 is half an ulp
    assert built_extension.vexp_f32(torch.tensor([0.0]), allow_avx2).item() == 1.0
    assert built_extension.vexp_f32(torch.tensor([-1000.0]), allow_avx2).item() < 1e-37


def test_simd_builds_agree(monkeypatch):
    """The AVX2 + FMA build (when this CPU has it) renders the baseline build's images up to
    float rounding (fused multiply-adds); gradients differ by rounding and summation order."""
    leaves, geom = scene_inputs(600, 61, 45, 2, 3, 16, seed=13)
    bg = torch.rand(2, 3)
    monkeypatch.setenv("SPLAT4D_CPU_SIMD", "baseline")
    assert raster_cpu.simd_isa() == "baseline"
    base = render_and_grad(rasterize_to_pixels_cpu, leaves, geom, bg)
    monkeypatch.setenv("SPLAT4D_CPU_SIMD", "auto")
    best = render_and_grad(rasterize_to_pixels_cpu, leaves, geom, bg)
    torch.testing.assert_close(best[0], base[0], atol=2e-6, rtol=0)
    torch.testing.assert_close(best[1], base[1], atol=2e-6, rtol=0)
    assert_grads_close(best[2], base[2], rtol=1e-5, atol_scale=1e-6)


def test_deterministic_across_thread_counts_and_layouts():
    leaves, geom = scene_inputs(2000, 96, 64, 2, 3, 16, seed=10)
    assert geom["flatten_ids"].numel() > 4 * 4096  # enough work for several threads
    bg = torch.rand(2, 3)
    one = render_and_grad(rasterize_to_pixels_cpu, leaves, geom, bg)  # one thread (fixture)
    torch.set_num_threads(3)
    many = render_and_grad(rasterize_to_pixels_cpu, leaves, geom, bg)
    # non-contiguous inputs (views with other strides) give the same result
    strided = {
        k: v.transpose(0, -1).contiguous().transpose(0, -1) if v.dim() == 3 else v.t().contiguous().t()
        for k, v in leaves.items()
    }
    assert not strided["means2d"].is_contiguous()
    other = render_and_grad(rasterize_to_pixels_cpu, strided, geom, bg)
    for result in (many, other):
        assert torch.equal(result[0], one[0]) and torch.equal(result[1], one[1])
        for name in one[2]:
            assert torch.equal(result[2][name], one[2][name]), name


@pytest.mark.parametrize(
    "n, width, height, cams, tile, dtype",
    [(2000, 96, 64, 2, 16, torch.float32), (400, 37, 29, 1, 8, torch.float32), (300, 30, 22, 2, 6, torch.float64)],
)
def test_compiled_tile_binning_matches_pytorch(n, width, height, cams, tile, dtype):
    """The compiled binning (the CPU default) equals the PyTorch one exactly, depth ties, culled
    and off-screen Gaussians included."""
    s = random_scene(n, width, height, n_cameras=cams, scale_range=(0.01, 0.3), seed=1, dtype=dtype)
    s.means[-50:] = s.means[-1]  # identical depths: ties go by index
    s.means[:20, 2] = -5.0  # some behind the cameras
    s.means[20:40, 0] += 10.0  # some off-screen
    p = project_gaussians(s.means, s.quats, s.scales, s.viewmats, s.Ks, width, height)
    assert (p.radii == 0).any()
    got = intersect_tiles(p.means2d, p.radii, p.depths, tile, width, height)
    want = intersect_tiles_torch(p.means2d, p.radii, p.depths, tile, width, height)
    assert got[1].numel() > 0
    for g, w in zip(got, want):
        assert g.dtype == w.dtype == torch.int32 and torch.equal(g, w)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_compiled_tile_binning_depth_order_edge_cases(dtype):
    """torch.sort's order in the compiled binning's radix sort: -0 ties with +0 (index order),
    negative and infinite depths in place, NaN last."""
    g = torch.Generator().manual_seed(3)
    special = [0.0, -0.0, -1.5, float("inf"), float("nan"), float("-inf"), 2.0, 2.0, float("nan"), 1e-30, -1e-30]
    depths = torch.cat([torch.tensor(special), torch.randn(189, generator=g)]).to(dtype)[
        torch.randperm(200, generator=g)
    ]
    means2d = torch.rand(1, 200, 2, generator=g) * torch.tensor([40.0, 30.0])
    radii = torch.full((1, 200), 4, dtype=torch.int32)
    got = intersect_tiles(means2d, radii, depths[None], 8, 40, 30)
    want = intersect_tiles_torch(means2d, radii, depths[None], 8, 40, 30)
    for a, b in zip(got, want):
        assert torch.equal(a, b)


def test_bad_inputs_raise():
    leaves, geom = scene_inputs(20, 16, 16, 1, 3, 16, seed=11)
    with pytest.raises(TypeError, match="float32"):
        rasterize_to_pixels_cpu(**{k: v.half() for k, v in leaves.items()}, **geom)
    with pytest.raises(TypeError, match="dtype"):
        rasterize_to_pixels_cpu(**{**leaves, "colors": leaves["colors"].double()}, **geom)
    with pytest.raises(ValueError, match="conics"):
        rasterize_to_pixels_cpu(**{**leaves, "conics": leaves["conics"][..., :2]}, **geom)
    with pytest.raises(ValueError, match="isect_offsets"):
        rasterize_to_pixels_cpu(**leaves, **{**geom, "tile_size": 8})


def test_build_failure_is_a_runtime_error_with_fallback_hint(monkeypatch):
    from torch.utils import cpp_extension

    def broken_load(*args, **kwargs):
        raise RuntimeError("Error building extension 'splat4d_rasterize_cpu': fatal error: no compiler")

    monkeypatch.setattr(raster_cpu, "_ext", None)
    monkeypatch.setattr(raster_cpu, "_error", None)
    monkeypatch.setattr(cpp_extension, "load", broken_load)
    for _ in range(2):  # the failure is remembered
        with pytest.raises(RuntimeError, match="(?s)compiling the CPU rasterizer.*no compiler.*reference"):
            raster_cpu.load_extension()
    monkeypatch.setattr(raster_cpu, "_error", None)
    monkeypatch.setenv("SPLAT4D_DISABLE_CPU_KERNEL", "1")
    with pytest.raises(RuntimeError, match="reference"):
        raster_cpu.load_extension()
