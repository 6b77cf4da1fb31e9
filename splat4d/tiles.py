"""Tile binning: which Gaussians touch which 16x16 pixel tile, sorted front to back.

Matches gsplat 1.4.0's ``isect_tiles`` + ``isect_offset_encode`` (packed=False): a Gaussian
covers the tiles of its square bounding box ``mean2d ± radius``; within a tile the Gaussians
are ordered by depth, ties broken by Gaussian index (gsplat's radix sort is stable).
"""

from __future__ import annotations

import math
from typing import Tuple

import torch
from torch import Tensor


def tile_grid(width: int, height: int, tile_size: int) -> Tuple[int, int]:
    """Number of tiles (along x, along y) covering a ``width`` x ``height`` image."""
    return math.ceil(width / tile_size), math.ceil(height / tile_size)


@torch.no_grad()
def intersect_tiles(
    means2d: Tensor,  # [C, N, 2]
    radii: Tensor,  # [C, N] int32, 0 = culled
    depths: Tensor,  # [C, N]
    tile_size: int,
    width: int,
    height: int,
) -> Tuple[Tensor, Tensor]:
    """Returns ``isect_offsets`` [C, tile_h, tile_w] int32 (start of each tile's range) and
    ``flatten_ids`` [M] int32 (indices into the flattened C*N Gaussians).

    CPU tensors go to the compiled binning of ``raster_cpu``'s extension when it builds (the
    same result in linear time: no sort of all intersections), everything else to PyTorch."""
    if means2d.device.type == "cpu":
        from splat4d import raster_cpu

        try:
            ext = raster_cpu.load_extension()
        except RuntimeError:  # (rasterization warns once about the missing extension)
            ext = None
        if ext is not None:
            offsets, flatten_ids = ext.isect_tiles(means2d, radii, depths, int(tile_size), int(width), int(height))
            return offsets, flatten_ids
    return intersect_tiles_torch(means2d, radii, depths, tile_size, width, height)


@torch.no_grad()
def intersect_tiles_torch(
    means2d: Tensor, radii: Tensor, depths: Tensor, tile_size: int, width: int, height: int
) -> Tuple[Tensor, Tensor]:
    """``intersect_tiles`` in PyTorch (any device): every intersection enumerated and sorted."""
    C, N = radii.shape
    device = means2d.device
    tile_w, tile_h = tile_grid(width, height, tile_size)
    n_tiles = tile_w * tile_h

    tile_xy = means2d.float() / tile_size  # [C, N, 2]
    tile_r = (radii.float() / tile_size)[..., None]
    upper = torch.tensor([tile_w, tile_h], device=device)
    lo = torch.minimum(torch.floor(tile_xy - tile_r).clamp(min=0).long(), upper)
    hi = torch.minimum(torch.ceil(tile_xy + tile_r).clamp(min=0).long(), upper)
    extent = (hi - lo).clamp(min=0)  # [C, N, 2]
    counts = extent[..., 0] * extent[..., 1] * (radii > 0)  # tiles per Gaussian, [C, N]

    flat_counts = counts.flatten()
    n_isects = int(flat_counts.sum())
    if n_isects == 0:
        offsets = torch.zeros((C, tile_h, tile_w), dtype=torch.int32, device=device)
        return offsets, torch.zeros((0,), dtype=torch.int32, device=device)

    # One row per (Gaussian, covered tile): enumerate tiles of each bounding box.
    gauss = torch.repeat_interleave(torch.arange(C * N, device=device), flat_counts)
    first = torch.cumsum(flat_counts, 0) - flat_counts
    local = torch.arange(n_isects, device=device) - first[gauss]
    ext_x = extent[..., 0].flatten()[gauss]
    tx = lo[..., 0].flatten()[gauss] + local % ext_x
    ty = lo[..., 1].flatten()[gauss] + local // ext_x
    cam = gauss // N
    tile_key = cam * n_tiles + ty * tile_w + tx  # camera-major, then row-major tile id

    # Sort by depth, then (stably) by tile: each tile's range ends up front to back.
    depth_order = torch.sort(depths.flatten()[gauss], stable=True).indices
    tile_order = torch.sort(tile_key[depth_order], stable=True).indices
    order = depth_order[tile_order]
    flatten_ids = gauss[order].int()

    per_tile = torch.bincount(tile_key, minlength=C * n_tiles)
    offsets = (torch.cumsum(per_tile, 0) - per_tile).reshape(C, tile_h, tile_w).int()
    return offsets, flatten_ids
