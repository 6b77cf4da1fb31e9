"""Adapts the ``info`` of a render of a *subset* of the Gaussians (e.g. those alive at time t)
to gsplat strategies, which index their running state by Gaussian id.

The render's screen-space gradients ([C, N_subset, 2]) are handed over in gsplat's *packed*
layout — one row per visible (camera, Gaussian) pair with its global id in ``gaussian_ids`` —
so DefaultStrategy & co. accumulate them on the right Gaussians (call with ``packed=True``).
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, Dict

from torch import Tensor


def packed_info_for_subset(info: Dict[str, Any], subset_ids: Tensor) -> Dict[str, Any]:
    """``info`` of a render whose Gaussians were ``all_gaussians[subset_ids]``, after backward."""
    means2d = info["means2d"]
    visible = info["radii"] > 0  # [C, N_subset]
    grads = SimpleNamespace(
        grad=means2d.grad[visible] if means2d.retains_grad and means2d.grad is not None else None,
        absgrad=means2d.absgrad[visible] if hasattr(means2d, "absgrad") else None,
    )
    return {
        **info,
        "means2d": grads,
        "radii": info["radii"][visible],
        "gaussian_ids": subset_ids[visible.nonzero()[:, 1]],
    }
