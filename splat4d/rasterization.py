"""``rasterize``: gsplat's ``rasterization`` interface on CUDA (gsplat itself) and CPU (ours).

CPU pipeline: projection (``projection.py``) → SH colours (``sh.py``) → tile binning
(``tiles.py``) → compositing, either by the compiled kernel (``raster_cpu.py``, default) or by
the pure-PyTorch reference (``raster_reference.py``). The "cpu" backend runs projection and SH
colours compiled as well (``preprocess_cpu.py``); "reference" runs all of it in PyTorch.
"""

from __future__ import annotations

import logging
from typing import Any, Dict, Literal, Optional, Tuple

import torch
from torch import Tensor

from splat4d.gsplat_backend import require_gsplat_cuda
from splat4d.preprocess_cpu import project_gaussians_cpu, view_dependent_colors_cpu
from splat4d.projection import project_gaussians
from splat4d.raster_reference import rasterize_to_pixels_reference
from splat4d.sh import view_dependent_colors
from splat4d.tiles import intersect_tiles, tile_grid

logger = logging.getLogger(__name__)

Backend = Literal["auto", "gsplat", "cpu", "reference"]
RenderMode = Literal["RGB", "D", "ED", "RGB+D", "RGB+ED"]
_warned_fallback = False


def rasterize(
    means: Tensor,  # [N, 3]
    quats: Tensor,  # [N, 4]
    scales: Tensor,  # [N, 3]
    opacities: Tensor,  # [N]
    colors: Tensor,  # [(C,) N, D] features or [(C,) N, K, 3] SH coefficients
    viewmats: Tensor,  # [C, 4, 4] world -> camera (OpenCV axes)
    Ks: Tensor,  # [C, 3, 3]
    width: int,
    height: int,
    near_plane: float = 0.01,
    far_plane: float = 1e10,
    radius_clip: float = 0.0,
    eps2d: float = 0.3,
    sh_degree: Optional[int] = None,
    packed: bool = False,
    tile_size: int = 16,
    backgrounds: Optional[Tensor] = None,  # [C, D]
    render_mode: RenderMode = "RGB",
    sparse_grad: bool = False,
    absgrad: bool = False,
    rasterize_mode: Literal["classic", "antialiased"] = "classic",
    backend: Backend = "auto",
) -> Tuple[Tensor, Tensor, Dict[str, Any]]:
    """Rasterize 3D Gaussians into C images. Returns ``(render [C,H,W,D(+1)], alpha [C,H,W,1],
    info)`` exactly like ``gsplat.rasterization``; ``info`` holds what gsplat's strategies read
    (``means2d`` with ``.grad``/``.absgrad`` after backward, ``radii``, ``width``, ``height``,
    ``n_cameras``, ``gaussian_ids``...).

    ``backend``: "auto" uses gsplat for CUDA tensors and the compiled CPU kernel otherwise
    (falling back to the reference with a warning if it cannot be compiled); "gsplat", "cpu"
    and "reference" force one.
    """
    if backend == "auto":
        backend = "gsplat" if means.is_cuda else "cpu"
    if backend == "gsplat":
        from gsplat import rasterization

        require_gsplat_cuda()  # a clear error instead of gsplat's "'NoneType' object has no attribute"

        return rasterization(
            means,
            quats,
            scales,
            opacities,
            colors,
            viewmats,
            Ks,
            width,
            height,
            near_plane=near_plane,
            far_plane=far_plane,
            radius_clip=radius_clip,
            eps2d=eps2d,
            sh_degree=sh_degree,
            packed=packed,
            tile_size=tile_size,
            backgrounds=backgrounds,
            render_mode=render_mode,
            sparse_grad=sparse_grad,
            absgrad=absgrad,
            rasterize_mode=rasterize_mode,
        )
    if backend not in ("cpu", "reference"):
        raise ValueError(f"unknown rasterization backend {backend!r}")
    if packed:
        raise ValueError("the CPU rasterization backend supports packed=False only")
    if render_mode not in ("RGB", "D", "ED", "RGB+D", "RGB+ED"):
        raise ValueError(f"unknown render_mode {render_mode!r}")
    _check_shapes(means, quats, scales, opacities, colors, viewmats, Ks, sh_degree)
    C, N = viewmats.shape[0], means.shape[0]

    project = project_gaussians_cpu if backend == "cpu" else project_gaussians
    proj = project(
        means,
        quats,
        scales,
        viewmats,
        Ks,
        width,
        height,
        eps2d=eps2d,
        near_plane=near_plane,
        far_plane=far_plane,
        radius_clip=radius_clip,
        calc_compensations=rasterize_mode == "antialiased",
    )
    opacities = opacities.expand(C, N)
    if proj.compensations is not None:
        opacities = opacities * proj.compensations

    if sh_degree is None:
        colors = colors.expand(C, N, colors.shape[-1])
    else:
        sh_colors = view_dependent_colors_cpu if backend == "cpu" else view_dependent_colors
        colors = sh_colors(sh_degree, means, colors, viewmats)
    if render_mode in ("RGB+D", "RGB+ED"):
        colors = torch.cat([colors, proj.depths[..., None]], dim=-1)
        if backgrounds is not None:
            backgrounds = torch.cat([backgrounds, backgrounds.new_zeros(C, 1)], dim=-1)
    elif render_mode in ("D", "ED"):
        colors = proj.depths[..., None]
        if backgrounds is not None:
            backgrounds = backgrounds.new_zeros(C, 1)

    isect_offsets, flatten_ids = intersect_tiles(proj.means2d, proj.radii, proj.depths, tile_size, width, height)
    composite = _cpu_compositor() if backend == "cpu" else rasterize_to_pixels_reference
    render, alphas = composite(
        proj.means2d,
        proj.conics,
        colors.contiguous(),
        opacities.contiguous(),
        width,
        height,
        tile_size,
        isect_offsets,
        flatten_ids,
        backgrounds=backgrounds,
        absgrad=absgrad,
    )
    if render_mode in ("ED", "RGB+ED"):  # expected depth: normalise by accumulated opacity
        render = torch.cat([render[..., :-1], render[..., -1:] / alphas.clamp(min=1e-10)], dim=-1)

    tile_w, tile_h = tile_grid(width, height, tile_size)
    info = {
        "camera_ids": None,
        "gaussian_ids": None,
        "radii": proj.radii,
        "means2d": proj.means2d,
        "depths": proj.depths,
        "conics": proj.conics,
        "opacities": opacities,
        "tile_width": tile_w,
        "tile_height": tile_h,
        "isect_offsets": isect_offsets,
        "flatten_ids": flatten_ids,
        "width": width,
        "height": height,
        "tile_size": tile_size,
        "n_cameras": C,
    }
    return render, alphas, info


def _cpu_compositor():
    """The compiled kernel, or the reference (with one warning) if it cannot be built."""
    global _warned_fallback
    from splat4d import raster_cpu

    try:
        raster_cpu.load_extension()
        return raster_cpu.rasterize_to_pixels_cpu
    except RuntimeError as err:
        if not _warned_fallback:
            logger.warning("compiled CPU rasterizer unavailable, using the slow reference: %s", err)
            _warned_fallback = True
        return rasterize_to_pixels_reference


def _check_shapes(means, quats, scales, opacities, colors, viewmats, Ks, sh_degree) -> None:
    N, C = means.shape[0], viewmats.shape[0]
    expected = {
        "means": (means, (N, 3)),
        "quats": (quats, (N, 4)),
        "scales": (scales, (N, 3)),
        "opacities": (opacities, (N,)),
        "viewmats": (viewmats, (C, 4, 4)),
        "Ks": (Ks, (C, 3, 3)),
    }
    for name, (tensor, shape) in expected.items():
        if tuple(tensor.shape) != shape:
            raise ValueError(f"{name} must have shape {list(shape)}, got {list(tensor.shape)}")
    if sh_degree is None:
        ok = (colors.dim() == 2 and colors.shape[0] == N) or (colors.dim() == 3 and colors.shape[:2] == (C, N))
        if not ok:
            raise ValueError(f"colors must be [N, D] or [C, N, D] without sh_degree, got {list(colors.shape)}")
    else:
        ok = (colors.dim() == 3 and colors.shape[0] == N) or (colors.dim() == 4 and colors.shape[:2] == (C, N))
        if not ok or colors.shape[-1] != 3:
            raise ValueError(f"SH colors must be [N, K, 3] or [C, N, K, 3], got {list(colors.shape)}")
