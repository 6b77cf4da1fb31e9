"""Pure-PyTorch tile rasterizer: the readable specification of our CPU backend.

Same inputs, outputs and semantics as gsplat 1.4.0's ``rasterize_to_pixels`` (packed=False):
for every pixel the Gaussians of its tile are composited front to back with

    sigma = ½(a·dx² + c·dy²) + b·dx·dy,   alpha = min(0.999, o·exp(−sigma)),
    skipped when sigma < 0 or alpha < 1/255, stopping before the Gaussian that would bring
    the transmittance T to ≤ 1e-4;  C = Σ c_i·alpha_i·T_i + T_final·background.

Gradients come from autograd. It is slow (a Python loop over tiles) and is used as the oracle
for the compiled kernel in ``raster_cpu.py``.
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import Tensor

ALPHA_MAX = 0.999  # alpha clamp
ALPHA_MIN = 1.0 / 255.0  # Gaussians below this alpha are skipped
T_MIN = 1e-4  # a pixel stops before the Gaussian that would take T to <= T_MIN


class _GatherWithAbsGrad(torch.autograd.Function):
    """``values[index]`` whose backward also accumulates Σ|grad| per source row into ``sink``
    (gsplat's absgrad: the absolute value is taken per pixel before summing)."""

    @staticmethod
    def forward(ctx, values: Tensor, index: Tensor, sink: Tensor) -> Tensor:
        ctx.save_for_backward(index)
        ctx.sink = sink
        ctx.n_rows = values.shape[0]
        return values[index]

    @staticmethod
    def backward(ctx, grad: Tensor):
        (index,) = ctx.saved_tensors
        flat_index, flat_grad = index.reshape(-1), grad.reshape(-1, grad.shape[-1])
        ctx.sink.index_add_(0, flat_index, flat_grad.abs())
        grad_values = torch.zeros((ctx.n_rows, grad.shape[-1]), dtype=grad.dtype, device=grad.device)
        return grad_values.index_add_(0, flat_index, flat_grad), None, None


def composite_tile(
    pix: Tensor,  # [P, 2] pixel centres
    means: Tensor,  # [P, K, 2] or [K, 2]
    conics: Tensor,  # [K, 3]
    colors: Tensor,  # [K, D]
    opacities: Tensor,  # [K]
) -> Tuple[Tensor, Tensor]:
    """Front-to-back compositing of K depth-sorted Gaussians at P pixels.
    Returns accumulated colours [P, D] and final transmittance [P]."""
    delta = means - pix[:, None, :]  # [P, K, 2]
    dx, dy = delta[..., 0], delta[..., 1]
    a, b, c = conics.unbind(-1)
    sigma = 0.5 * (a * dx * dx + c * dy * dy) + b * dx * dy  # [P, K]
    alpha = torch.clamp(opacities * torch.exp(-sigma), max=ALPHA_MAX)
    contributes = (sigma >= 0) & (alpha >= ALPHA_MIN)
    with torch.no_grad():  # which Gaussians each pixel reaches before it saturates
        a_used = torch.where(contributes, alpha, 0.0)
        stops = contributes & (torch.cumprod(1 - a_used, dim=1) <= T_MIN)
        reached = contributes & (torch.cumsum(stops.int(), dim=1) == 0)
    alpha = torch.where(reached, alpha, 0.0)
    T_after = torch.cumprod(1 - alpha, dim=1)  # [P, K]
    T_before = torch.cat([torch.ones_like(T_after[:, :1]), T_after[:, :-1]], dim=1)
    return (alpha * T_before) @ colors, T_after[:, -1]


def rasterize_to_pixels_reference(
    means2d: Tensor,  # [C, N, 2]
    conics: Tensor,  # [C, N, 3]
    colors: Tensor,  # [C, N, D]
    opacities: Tensor,  # [C, N]
    image_width: int,
    image_height: int,
    tile_size: int,
    isect_offsets: Tensor,  # [C, tile_h, tile_w] int32
    flatten_ids: Tensor,  # [M] int32
    backgrounds: Optional[Tensor] = None,  # [C, D]
    absgrad: bool = False,
) -> Tuple[Tensor, Tensor]:
    """Returns render_colors [C, H, W, D] and render_alphas [C, H, W, 1]. With ``absgrad``,
    backward leaves Σ_pixels |∂L/∂means2d| in ``means2d.absgrad`` [C, N, 2]."""
    C, N = means2d.shape[:2]
    D = colors.shape[-1]
    tile_h, tile_w = isect_offsets.shape[1:]
    device, dtype = means2d.device, means2d.dtype
    flat_means = means2d.reshape(C * N, 2)
    flat_conics, flat_colors = conics.reshape(C * N, 3), colors.reshape(C * N, D)
    flat_opac = opacities.reshape(C * N)
    ends = torch.cat([isect_offsets.flatten()[1:].long(), torch.tensor([flatten_ids.numel()], device=device)])
    starts = isect_offsets.flatten().long().tolist()
    ends = ends.tolist()
    if absgrad:
        sink = torch.zeros((C * N, 2), dtype=dtype, device=device)
        means2d.absgrad = sink.view(C, N, 2)

    ii, jj = torch.meshgrid(
        torch.arange(tile_size, device=device), torch.arange(tile_size, device=device), indexing="ij"
    )
    local_pix = torch.stack([jj.flatten(), ii.flatten()], dim=-1).to(dtype) + 0.5  # [P, 2] (x, y)
    P = tile_size * tile_size

    tiles_rgb, tiles_T = [], []
    for cam in range(C):
        for ty in range(tile_h):
            for tx in range(tile_w):
                k = (cam * tile_h + ty) * tile_w + tx
                ids = flatten_ids[starts[k] : ends[k]].long()
                if ids.numel() == 0:
                    tiles_rgb.append(torch.zeros((P, D), dtype=dtype, device=device))
                    tiles_T.append(torch.ones((P,), dtype=dtype, device=device))
                    continue
                pix = local_pix + torch.tensor([tx * tile_size, ty * tile_size], dtype=dtype, device=device)
                if absgrad:
                    means = _GatherWithAbsGrad.apply(flat_means, ids.expand(P, -1), sink)
                else:
                    means = flat_means[ids]
                rgb, T = composite_tile(pix, means, flat_conics[ids], flat_colors[ids], flat_opac[ids])
                tiles_rgb.append(rgb)
                tiles_T.append(T)

    def untile(per_tile: list, channels: int) -> Tensor:
        grid = torch.stack(per_tile).reshape(C, tile_h, tile_w, tile_size, tile_size, channels)
        grid = grid.permute(0, 1, 3, 2, 4, 5).reshape(C, tile_h * tile_size, tile_w * tile_size, channels)
        return grid[:, :image_height, :image_width]

    render_colors = untile(tiles_rgb, D)
    T_final = untile(tiles_T, 1)
    if backgrounds is not None:
        render_colors = render_colors + T_final * backgrounds[:, None, None, :]
    return render_colors, 1 - T_final
