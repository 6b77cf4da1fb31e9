"""The ``info`` a densification strategy receives from each training render, and its adaptation
to renders of a *subset* of the Gaussians.

``DynamicSplatModel.get_outputs`` builds it with :func:`render_info` (kept as ``model.info``) and
hands it to ``strategy.step_pre_backward`` right after the render and to
``strategy.step_post_backward`` after backward. It is everything per step that a strategy reads:

- gsplat's rasterization info: ``means2d`` (screen-space means, whose gradient the strategy
  reads after backward), ``radii`` [C, N], ``width``, ``height``, ``n_cameras``, ...;
- ``subset_ids`` (:data:`SUBSET_IDS`): [N] ids in the model's parameters of the rendered
  Gaussians, or None when all of them were rendered;
- ``error_probe`` (:data:`ERROR_PROBE`): a zero [N, 1] feature channel rendered beside the
  colours, or None. Rendering it changes nothing, but after backward of Σ_p e(p)·probe(p) its
  gradient is Σ_p e(p)·w_i(p), each rendered Gaussian's blend-weighted render error (SharpTimeGS
  in stage 2 of training).

The render's screen-space gradients ([C, N_subset, 2]) of a subset render are handed over in
gsplat's *packed* layout — one row per visible (camera, Gaussian) pair with its global id in
``gaussian_ids`` — so DefaultStrategy & co. accumulate them on the right Gaussians (call with
``packed=True``; :func:`packed_info_for_subset`).
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, Dict, Optional

from torch import Tensor

SUBSET_IDS = "subset_ids"
ERROR_PROBE = "error_probe"


def render_info(
    raster_info: Dict[str, Any], subset_ids: Optional[Tensor], error_probe: Optional[Tensor]
) -> Dict[str, Any]:
    """gsplat's info of a render plus this project's per-step keys (see the module docstring)."""
    return {**raster_info, SUBSET_IDS: subset_ids, ERROR_PROBE: error_probe}


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
