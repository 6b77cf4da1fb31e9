"""The rasterizer's per-Gaussian preprocessing by the compiled CPU extension: the projection
(``projection.project_gaussians``; ``csrc/project_cpu.cpp``) and the view-dependent SH colours
(``sh.view_dependent_colors``; ``csrc/sh_cpu.cpp``), each one fused C++ pass per Gaussian with
a hand-written backward instead of PyTorch's op-by-op graph and its autograd.

Same inputs, outputs and conventions as the PyTorch functions; float32 and float64. Gradients
reach means, quats, scales and SH coefficients. Where the compiled path does not apply each
hands over to the PyTorch version: when ``viewmats`` or ``Ks`` need gradients (camera
optimisation), for SH degree 4, and when the extension cannot be built
(``raster_cpu.load_extension`` raised; ``rasterization`` warns once about that).
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from splat4d import raster_cpu
from splat4d.projection import Projection, project_gaussians
from splat4d.sh import view_dependent_colors

_MAX_COMPILED_SH_DEGREE = 3  # csrc/sh_cpu.cpp's bases


class _ProjectCPU(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx, means, quats, scales, viewmats, Ks, width, height, eps2d, near_plane, far_plane, radius_clip, comp
    ):
        dtype = means.dtype
        inputs = [t.detach().to(dtype).contiguous() for t in (means, quats, scales, viewmats, Ks)]
        radii, means2d, depths, conics, comps = raster_cpu.load_extension().project_fwd(
            *inputs, width, height, eps2d, near_plane, far_plane, radius_clip, comp
        )
        ctx.save_for_backward(*inputs, radii)
        ctx.settings = (width, height, eps2d, near_plane, far_plane, comp)
        ctx.mark_non_differentiable(radii)
        return radii, means2d, depths, conics, comps

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, _v_radii, v_means2d, v_depths, v_conics, v_comps):
        means, quats, scales, viewmats, Ks, radii = ctx.saved_tensors
        width, height, eps2d, near_plane, far_plane, comp = ctx.settings
        grads = [g.to(means.dtype).contiguous() for g in (v_means2d, v_depths, v_conics)]
        v_comps = v_comps.to(means.dtype).contiguous() if comp else means.new_zeros(0)
        v_means, v_quats, v_scales = raster_cpu.load_extension().project_bwd(
            means, quats, scales, viewmats, Ks, width, height, eps2d, near_plane, far_plane, radii, *grads, v_comps
        )
        return (v_means, v_quats, v_scales) + (None,) * 9


def project_gaussians_cpu(
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
    """``projection.project_gaussians`` by the compiled kernel (see the module docstring)."""
    settings = dict(
        eps2d=eps2d,
        near_plane=near_plane,
        far_plane=far_plane,
        radius_clip=radius_clip,
        calc_compensations=calc_compensations,
    )
    if not _compiled(means, viewmats, Ks):
        return project_gaussians(means, quats, scales, viewmats, Ks, width, height, **settings)
    radii, means2d, depths, conics, comps = _ProjectCPU.apply(
        means,
        quats,
        scales,
        viewmats,
        Ks,
        int(width),
        int(height),
        float(eps2d),
        float(near_plane),
        float(far_plane),
        float(radius_clip),
        bool(calc_compensations),
    )
    compensations: Optional[Tensor] = comps if calc_compensations else None
    return Projection(radii=radii, means2d=means2d, depths=depths, conics=conics, compensations=compensations)


class _ViewDependentColorsCPU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, degree, means, coeffs, campos):
        inputs = [t.detach().to(means.dtype).contiguous() for t in (means, coeffs, campos)]
        ctx.save_for_backward(*inputs)
        ctx.degree = degree
        return raster_cpu.load_extension().sh_fwd(degree, *inputs)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, v_colors):
        means, coeffs, campos = ctx.saved_tensors
        v_means, v_coeffs = raster_cpu.load_extension().sh_bwd(
            ctx.degree, means, coeffs, campos, v_colors.to(means.dtype).contiguous()
        )
        return None, v_means, v_coeffs, None


def view_dependent_colors_cpu(degree: int, means: Tensor, coeffs: Tensor, viewmats: Tensor) -> Tensor:
    """``sh.view_dependent_colors`` by the compiled kernel (see the module docstring)."""
    if degree > _MAX_COMPILED_SH_DEGREE or not _compiled(means, viewmats):
        return view_dependent_colors(degree, means, coeffs, viewmats)
    campos = torch.linalg.inv(viewmats)[:, :3, 3]  # [C, 3], as sh.py
    return _ViewDependentColorsCPU.apply(int(degree), means, coeffs, campos)


def _compiled(means: Tensor, *cameras: Tensor) -> bool:
    """Whether the compiled path applies: float32/64, no camera gradients, a built extension."""
    if means.dtype not in (torch.float32, torch.float64) or any(c.requires_grad for c in cameras):
        return False
    try:
        raster_cpu.load_extension()
    except RuntimeError:
        return False
    return True
