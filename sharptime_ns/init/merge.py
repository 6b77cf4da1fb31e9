"""Merging the per-frame points: static points deduplicated by a voxel grid, the total capped."""

from __future__ import annotations

from typing import Optional, Tuple

import numpy as np


def voxel_downsample(xyz: np.ndarray, rgb: np.ndarray, voxel: float) -> Tuple[np.ndarray, np.ndarray]:
    """Mean position and colour per occupied voxel (order: first occurrence)."""
    if len(xyz) == 0 or voxel <= 0:
        return xyz, rgb
    keys = np.floor(xyz / voxel).astype(np.int64)
    _, first, inverse = np.unique(keys, axis=0, return_index=True, return_inverse=True)
    inverse = inverse.reshape(-1)
    counts = np.bincount(inverse).astype(np.float64)
    pos = np.stack([np.bincount(inverse, weights=xyz[:, i]) for i in range(3)], axis=1) / counts[:, None]
    col = (
        np.stack([np.bincount(inverse, weights=rgb[:, i].astype(np.float64)) for i in range(3)], axis=1)
        / counts[:, None]
    )
    order = np.argsort(first)
    return pos[order], np.clip(np.round(col[order]), 0, 255).astype(np.uint8)


def cap_indices(is_dynamic: np.ndarray, max_points: int, seed: int) -> Optional[np.ndarray]:
    """Sorted indices of a random subset of at most max_points keeping the static/dynamic
    proportion, or None when no cap is needed."""
    n = len(is_dynamic)
    if max_points <= 0 or n <= max_points:
        return None
    rng = np.random.default_rng(seed)
    dyn = np.flatnonzero(is_dynamic)
    sta = np.flatnonzero(~is_dynamic)
    n_dyn = int(round(max_points * len(dyn) / n))
    n_sta = max_points - n_dyn
    keep = np.concatenate([rng.choice(sta, n_sta, replace=False), rng.choice(dyn, n_dyn, replace=False)])
    return np.sort(keep)
