"""The compiled preprocessing (splat4d/preprocess_cpu.py: csrc/project_cpu.cpp, csrc/sh_cpu.cpp)
against the PyTorch functions it replaces on the CPU backend (projection.py and sh.py, themselves
checked against gsplat in test_projection.py): outputs and the gradients of means, quats,
scales and SH coefficients."""

from __future__ import annotations

import os
import shutil
from typing import List, Tuple

import pytest
import torch

from splat4d import raster_cpu
from splat4d.preprocess_cpu import project_gaussians_cpu, view_dependent_colors_cpu
from splat4d.projection import Projection, project_gaussians
from splat4d.random_scene import Scene, random_scene
from splat4d.sh import view_dependent_colors

if shutil.which("c++") is None and shutil.which("g++") is None:
    pytest.skip("no C++ compiler: the compiled CPU kernels cannot be built here", allow_module_level=True)
if os.environ.get("SPLAT4D_DISABLE_CPU_KERNEL", "") not in ("", "0"):
    pytest.skip("the compiled CPU kernels are disabled (SPLAT4D_DISABLE_CPU_KERNEL)", allow_module_level=True)

OUTPUTS = ("means2d", "depths", "conics", "compensations")


@pytest.fixture(scope="module", autouse=True)
def built_extension():
    return raster_cpu.load_extension()


def hard_scene(dtype: torch.dtype, n: int = 3000, seed: int = 1) -> Scene:
    """Gaussians behind the cameras, off screen, flat and huge beside ordinary ones."""
    s = random_scene(n, 160, 120, n_cameras=3, scale_range=(1e-3, 0.3), seed=seed, dtype=dtype)
    s.means[:50, 2] -= 6.0
    s.means[50:100] *= 4.0
    s.scales[100:120, 2] = 0.0
    s.scales[120:130] = 20.0
    return s


def project_and_grad(fn, s: Scene, comp: bool, **kwargs) -> Tuple[Projection, List[torch.Tensor]]:
    leaves = [t.clone().requires_grad_(True) for t in (s.means, s.quats, s.scales)]
    proj = fn(*leaves, s.viewmats, s.Ks, s.width, s.height, calc_compensations=comp, **kwargs)
    g = torch.Generator().manual_seed(7)
    loss = sum(
        (getattr(proj, k) * torch.randn(getattr(proj, k).shape, generator=g, dtype=s.means.dtype)).sum()
        for k in OUTPUTS
        if getattr(proj, k) is not None
    )
    loss.backward()
    return proj, [t.grad for t in leaves]


def assert_relative_close(a: torch.Tensor, b: torch.Tensor, tol: float, what: str) -> None:
    scale = a.abs().max().clamp(min=1e-30)
    err = ((a - b).abs().max() / scale).item()
    assert err <= tol, f"{what}: max |difference| / max |value| = {err:.3g} > {tol}"


@pytest.mark.parametrize("comp", [False, True])
def test_matches_pytorch_projection_float64(comp):
    s = hard_scene(torch.float64)
    ref, ref_grads = project_and_grad(project_gaussians, s, comp)
    out, grads = project_and_grad(project_gaussians_cpu, s, comp)
    assert torch.equal(out.radii, ref.radii)
    valid = ref.radii > 0
    assert valid.sum() > 3000 and (~valid).sum() > 100
    for k in OUTPUTS:
        if comp or k != "compensations":
            assert_relative_close(getattr(ref, k), getattr(out, k), 1e-12, k)
    assert (out.compensations is None) == (not comp)
    for name, a, b in zip(("means", "quats", "scales"), ref_grads, grads):
        assert torch.isfinite(b).all(), name
        assert_relative_close(a, b, 1e-11, f"grad {name}")


def test_float32_rounding_no_worse_than_pytorch():
    """In float32 the two differ by rounding (another operation order; the flat and huge
    Gaussians' conics are ill-conditioned): both are compared with the float64 result."""
    exact, exact_grads = project_and_grad(project_gaussians, hard_scene(torch.float64), True)
    s = hard_scene(torch.float32)
    torch_proj, torch_grads = project_and_grad(project_gaussians, s, True)
    ours, grads = project_and_grad(project_gaussians_cpu, s, True)
    assert torch.equal(ours.radii, torch_proj.radii)
    pairs = [(getattr(exact, k), getattr(torch_proj, k), getattr(ours, k), k) for k in OUTPUTS]
    pairs += [(e, t, o, f"grad {n}") for e, t, o, n in zip(exact_grads, torch_grads, grads, "mqs")]
    for e, t, o, what in pairs:
        scale = e.abs().max()
        torch_err = ((t.double() - e).abs().max() / scale).item()
        our_err = ((o.double() - e).abs().max() / scale).item()
        assert our_err <= max(2 * torch_err, 1e-6), f"{what}: {our_err:.3g} vs PyTorch's {torch_err:.3g}"


def test_near_far_and_radius_clip_match():
    s = hard_scene(torch.float64)
    kwargs = dict(near_plane=2.5, far_plane=3.0, radius_clip=3.0, eps2d=0.1)
    ref, ref_grads = project_and_grad(project_gaussians, s, True, **kwargs)
    out, grads = project_and_grad(project_gaussians_cpu, s, True, **kwargs)
    assert torch.equal(out.radii, ref.radii) and (ref.radii > 0).any()
    for a, b in zip(ref_grads, grads):
        assert_relative_close(a, b, 1e-11, "gradient")


def test_gradcheck_float64():
    s = random_scene(40, 64, 48, n_cameras=2, seed=4, dtype=torch.float64)
    leaves = [t.clone().requires_grad_(True) for t in (s.means, s.quats, s.scales)]

    def fn(means, quats, scales):
        p = project_gaussians_cpu(means, quats, scales, s.viewmats, s.Ks, 64, 48, calc_compensations=True)
        return p.means2d, p.depths, p.conics, p.compensations

    assert torch.autograd.gradcheck(fn, leaves, eps=1e-6, atol=1e-6, rtol=1e-5)


def test_camera_gradients_use_the_pytorch_projection():
    s = random_scene(300, 64, 48, seed=5)
    viewmats = s.viewmats.clone().requires_grad_(True)
    proj = project_gaussians_cpu(s.means, s.quats, s.scales, viewmats, s.Ks, 64, 48)
    proj.means2d.sum().backward()
    assert viewmats.grad is not None and viewmats.grad.abs().sum() > 0


def test_deterministic_across_thread_counts():
    s = hard_scene(torch.float32, n=20_000, seed=6)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = project_and_grad(project_gaussians_cpu, s, True)
        torch.set_num_threads(3)
        many = project_and_grad(project_gaussians_cpu, s, True)
    finally:
        torch.set_num_threads(threads)
    for k in ("radii",) + OUTPUTS:
        assert torch.equal(getattr(one[0], k), getattr(many[0], k)), k
    for a, b in zip(one[1], many[1]):
        assert torch.equal(a, b)


def sh_and_grad(fn, degree: int, means: torch.Tensor, coeffs: torch.Tensor, viewmats: torch.Tensor):
    means, coeffs = means.clone().requires_grad_(True), coeffs.clone().requires_grad_(True)
    colors = fn(degree, means, coeffs, viewmats)
    g = torch.Generator().manual_seed(8)
    (colors * torch.randn(colors.shape, generator=g, dtype=colors.dtype)).sum().backward()
    return colors, means.grad, coeffs.grad


@pytest.mark.parametrize("per_camera", [False, True])
@pytest.mark.parametrize("degree", [0, 1, 2, 3, 4])
def test_sh_colors_match_pytorch(degree, per_camera):
    s = random_scene(2000, 64, 48, n_cameras=3, sh_degree=4, seed=9, dtype=torch.float64)
    coeffs = s.colors * 3.0  # K = 25 >= (degree + 1)², large enough that some colours clamp at 0
    if per_camera:
        coeffs = coeffs[None].repeat(3, 1, 1, 1) + 0.1 * torch.randn((3,) + coeffs.shape, dtype=torch.float64)
    ref = sh_and_grad(view_dependent_colors, degree, s.means, coeffs, s.viewmats)
    out = sh_and_grad(view_dependent_colors_cpu, degree, s.means, coeffs, s.viewmats)
    assert (ref[0] == 0).any() and (ref[0] > 0).any()
    for what, a, b in zip(("colours", "grad means", "grad coeffs"), ref, out):
        if a is None:  # degree 0: the colour does not depend on the direction
            assert what == "grad means" and degree == 0 and not b.any()
            continue
        assert a.shape == b.shape, what
        assert_relative_close(a, b, 1e-12, what)


def test_sh_gradcheck_float64():
    s = random_scene(30, 64, 48, n_cameras=2, sh_degree=3, seed=10, dtype=torch.float64)
    leaves = [s.means.clone().requires_grad_(True), s.colors.clone().requires_grad_(True)]
    fn = lambda means, coeffs: view_dependent_colors_cpu(3, means, coeffs, s.viewmats)  # noqa: E731
    assert torch.autograd.gradcheck(fn, leaves, eps=1e-6, atol=1e-6, rtol=1e-5)
