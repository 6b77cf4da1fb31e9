"""``safe_quantile``: ``torch.quantile`` (linear interpolation) without its size limit.

``torch.quantile`` sorts its input and, on the torch versions we support (e.g. 2.5.1), raises
for inputs of more than 2^24 elements; Shape of Motion's initialization and masked losses call
it on [tracks × frames] tensors that reach ~17M elements on a DyCheck scene. This helper picks
the two order statistics around the interpolated rank with ``torch.kthvalue`` (a selection, no
full sort, no size limit) and interpolates between them as ``torch.quantile`` does: rank
q · (n − 1) with q rounded to the input's dtype, ``torch.lerp`` between the values at its floor
and ceiling, NaN wherever the reduced slice holds a NaN. On inputs that ``torch.quantile``
accepts the results are equal.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch import Tensor


def safe_quantile(x: Tensor, q: float, dim: Optional[int] = None, keepdim: bool = False) -> Tensor:
    """The ``q``-quantile (0 ≤ q ≤ 1) of ``x`` over ``dim`` (all elements when None), as
    ``torch.quantile(x, q, dim, keepdim)`` with ``interpolation="linear"``."""
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"quantile q must be in [0, 1], got {q}")
    if not x.is_floating_point():
        raise TypeError(f"safe_quantile needs a floating-point tensor, got {x.dtype}")
    if x.numel() == 0:
        raise ValueError(f"safe_quantile of an empty tensor (shape {list(x.shape)})")
    if dim is None:
        result = _quantile_last_dim(x.reshape(1, -1), q)[0]
        return result.reshape([1] * x.dim()) if keepdim else result
    moved = x.movedim(dim, -1)
    result = _quantile_last_dim(moved.reshape(-1, moved.shape[-1]), q).reshape(moved.shape[:-1])
    return result.unsqueeze(dim) if keepdim else result


def _quantile_last_dim(rows: Tensor, q: float) -> Tensor:
    """Quantile of each row of ``rows`` [R, n] -> [R]."""
    n = rows.shape[-1]
    rank = float(torch.tensor(q, dtype=rows.dtype)) * (n - 1)  # q rounded to the input's dtype, as torch does
    below = int(rank)  # floor (rank ≥ 0)
    above = min(math.ceil(rank), n - 1)
    weight = torch.tensor(rank - below, dtype=rows.dtype, device=rows.device)
    low = rows.kthvalue(below + 1, dim=-1).values
    high = low if above == below else rows.kthvalue(above + 1, dim=-1).values
    result = torch.lerp(low, high, weight)
    return torch.where(rows.isnan().any(dim=-1), torch.full_like(result, float("nan")), result)
