"""DyCheck's masked image metrics as Shape of Motion computes them (reference: flow3d/metrics.py).

- mPSNR = −10 log₁₀( Σ m·(x̂ − x)² / (3 Σ m) );
- mSSIM: SSIM with an 11-tap Gaussian window (σ = 1.5) whose local statistics are averaged over
  the masked pixels only (the separable window passed horizontally, then vertically, as the
  reference), then averaged over the image;
- mLPIPS = Σ m · LPIPS_map(m·x̂, m·x) / Σ m with the spatial AlexNet LPIPS map (torchmetrics'
  network; its ImageNet AlexNet weights must be in the local torch hub cache: nothing is
  downloaded, and without them mLPIPS is reported unavailable).
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from splat4d.metrics import LazyLPIPS

WINDOW, SIGMA, K1, K2 = 11, 1.5, 0.01, 0.03


def masked_psnr(pred: Tensor, gt: Tensor, mask: Tensor) -> Tensor:
    """pred, gt [H, W, 3] in [0, 1]; mask [H, W] (1 = counted)."""
    mse = ((pred - gt) * mask[..., None]).square().sum() / (3 * mask.sum()).clamp(min=1)
    return -10.0 * torch.log10(mse)


def masked_blur(values: Tensor, mask: Tensor, taps: Tensor) -> Tensor:
    """Mean of values [C, H, W] over the masked pixels [H, W] of each separable-window position
    ('valid' convolution), 0 where the window holds none."""
    out, weight = values * mask, mask[None]
    for kernel in (taps[None, None, None, :], taps[None, None, :, None]):  # horizontal, then vertical
        ones = torch.ones_like(kernel)
        out_sum = F.conv2d(out[:, None], kernel)[:, 0]
        count = F.conv2d(weight[:, None], ones)[:, 0]
        out = torch.where(count > 0, out_sum * len(taps) / count.clamp(min=1e-12), 0.0)
        weight = (count > 0).to(values.dtype)
        out = out * weight
    return out


def masked_ssim(pred: Tensor, gt: Tensor, mask: Tensor) -> Tensor:
    """pred, gt [H, W, 3] in [0, 1]; mask [H, W]."""
    offsets = torch.arange(WINDOW, dtype=pred.dtype, device=pred.device) - WINDOW // 2
    taps = torch.exp(-0.5 * (offsets / SIGMA) ** 2)
    taps = taps / taps.sum()
    x, y, m = pred.permute(2, 0, 1), gt.permute(2, 0, 1), mask.to(pred.dtype)
    mu_x, mu_y = masked_blur(x, m, taps), masked_blur(y, m, taps)
    var_x = (masked_blur(x * x, m, taps) - mu_x**2).clamp(min=0)
    var_y = (masked_blur(y * y, m, taps) - mu_y**2).clamp(min=0)
    cov = masked_blur(x * y, m, taps) - mu_x * mu_y
    cov = torch.sign(cov) * torch.minimum(torch.sqrt(var_x * var_y), cov.abs())
    c1, c2 = K1**2, K2**2
    ssim = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return ssim.mean()


def masked_lpips(pred: Tensor, gt: Tensor, mask: Tensor, net: torch.nn.Module) -> Tensor:
    """pred, gt [H, W, 3] in [0, 1]; mask [H, W]; ``net`` a spatial LPIPS network (maps [1, 1, H, W])."""
    m = mask.to(pred.dtype)
    scores = net(
        (pred * m[..., None]).permute(2, 0, 1)[None], (gt * m[..., None]).permute(2, 0, 1)[None], normalize=True
    )
    return (scores[0, 0] * m).sum() / m.sum().clamp(min=1e-12)


class MaskedLPIPS:
    """mLPIPS with the spatial AlexNet LPIPS network of :class:`splat4d.metrics.LazyLPIPS` (built on
    first use when its weights are local); a ``net`` given here (e.g. randomly initialised, in
    tests) is used as it is."""

    def __init__(self, net: Optional[torch.nn.Module] = None) -> None:
        self.lpips = LazyLPIPS(spatial=True, purpose="mLPIPS", net=net)

    @property
    def available(self) -> bool:
        return self.lpips.available

    @torch.no_grad()
    def __call__(self, pred: Tensor, gt: Tensor, mask: Tensor) -> Tensor:
        return masked_lpips(pred, gt, mask, self.lpips.network(pred.device))
