"""Shape of Motion's training losses (reference: flow3d/trainer.py and flow3d/loss_utils.py).

Each function computes one term, unweighted; :class:`LossWeights` holds the weights (the
reference's defaults). Depths and 3D positions are in the model's normalized scene units.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from splat4d.quantile import safe_quantile

DISPARITY_EPS = 1e-5  # disparity = 1 / (z + ε)


@dataclass
class LossWeights:
    """Weights of the Shape of Motion loss terms."""

    w_rgb: float = 1.0
    """Photometric loss 0.8·L1 + 0.2·(1 − SSIM)."""
    w_depth_reg: float = 0.5
    """L1 between rendered and prior disparity."""
    w_depth_const: float = 0.1
    """L1 between the disparity of the tracked points at the target time and the prior's there."""
    w_depth_grad: float = 1.0
    """L1 between the image gradients of rendered and prior disparity."""
    w_track: float = 2.0
    """L1 between projected tracked points and the 2D tracks, in units of the image size."""
    w_mask: float = 1.0
    """Accumulation → 1 and rendered dynamic-Gaussian weight → motion mask."""
    w_smooth_bases: float = 0.1
    """Acceleration of the motion bases' 6D rotations (×1) and translations (×2)."""
    w_smooth_tracks: float = 2.0
    """Acceleration of the dynamic Gaussians' trajectories."""
    w_scale_var: float = 0.01
    """Variance of each Gaussian's three log-scales."""
    w_z_accel: float = 1.0
    """Squared motion of the dynamic Gaussians along the query camera's rays."""


def masked_l1(pred: Tensor, gt: Tensor, weights: Optional[Tensor] = None, quantile: float = 1.0) -> Tensor:
    """Robust L1 over rows [..., D]: rows whose mean |pred − gt| is above the ``quantile`` of all
    rows are dropped (for quantile < 1); the rest are averaged, weighted by ``weights`` [...]."""
    errors = (pred - gt).abs().mean(dim=-1)
    if errors.numel() == 0:
        return pred.sum() * 0.0
    keep = torch.ones_like(errors, dtype=torch.bool)
    if quantile < 1:
        keep = errors <= safe_quantile(errors.detach(), quantile)
    if weights is None:
        return errors[keep].mean() if keep.any() else errors.sum() * 0.0
    return (errors * weights)[keep].sum() / (weights[keep].sum() + 1e-8)


def rgb_loss(pred: Tensor, gt: Tensor, ssim: Callable[[Tensor, Tensor], Tensor]) -> Tensor:
    """0.8·|pred − gt|₁ + 0.2·(1 − SSIM) for images [H, W, 3]."""
    return 0.8 * (pred - gt).abs().mean() + 0.2 * (1 - ssim(pred.permute(2, 0, 1)[None], gt.permute(2, 0, 1)[None]))


def disparity(depth: Tensor) -> Tensor:
    return 1.0 / (depth + DISPARITY_EPS)


def disparity_loss(pred_depth: Tensor, prior_depth: Tensor, valid: Tensor) -> Tensor:
    """Robust L1 (98% quantile) between 1/z of rendered and prior depth [H, W] where ``valid``."""
    return masked_l1(
        disparity(pred_depth).reshape(-1, 1),
        disparity(prior_depth).reshape(-1, 1),
        valid.reshape(-1).float(),
        quantile=0.98,
    )


def depth_gradient_loss(pred_depth: Tensor, prior_depth: Tensor, valid: Tensor) -> Tensor:
    """Robust L1 (95% quantile) between horizontal and vertical disparity differences [H, W]
    of the rendered and prior depth, where both pixels of a difference are valid."""
    pred, prior = disparity(pred_depth), disparity(prior_depth)
    total = pred.sum() * 0.0
    for dim in (0, 1):
        n = pred.shape[dim] - 1
        both = valid.narrow(dim, 1, n) & valid.narrow(dim, 0, n)
        d_pred = (pred.narrow(dim, 1, n) - pred.narrow(dim, 0, n))[both]  # ∂D = D[i + 1] − D[i]
        d_prior = (prior.narrow(dim, 1, n) - prior.narrow(dim, 0, n))[both]
        total = total + masked_l1(d_pred[:, None], d_prior[:, None], quantile=0.95)
    return total


def mask_loss(accumulation: Tensor, dynamic_weight: Tensor, motion_mask: Tensor) -> Tensor:
    """mean (α − 1)² + robust L1 (98% quantile) between the rendered dynamic weight (1 for
    dynamic Gaussians, 0 for static ones) and the motion mask; all [H, W]."""
    return F.mse_loss(accumulation, torch.ones_like(accumulation)) + masked_l1(
        dynamic_weight.reshape(-1, 1), motion_mask.reshape(-1, 1), quantile=0.98
    )


def track_weights(confidence: Tensor, frame_gap: Tensor, num_frames: int) -> Tensor:
    """w = confidence · exp(−2 |t_query − t_target| / F)."""
    return confidence * torch.exp(-2.0 * frame_gap.abs() / num_frames)


def track_2d_loss(pred_xy: Tensor, target_xy: Tensor, weights: Tensor, image_size: int) -> Tensor:
    """Robust weighted L1 (98% quantile) between pixels [M, 2], divided by max(H, W)."""
    return masked_l1(pred_xy, target_xy, weights, quantile=0.98) / image_size


def track_depth_loss(pred_depth: Tensor, prior_depth: Tensor, weights: Tensor) -> Tensor:
    """Weighted L1 between the disparities of depths [M]."""
    return masked_l1(disparity(pred_depth)[:, None], disparity(prior_depth)[:, None], weights)


def acceleration(values: Tensor) -> Tensor:
    """mean ‖2 x_t − x_{t−1} − x_{t+1}‖ over [B, T, D] sequences."""
    return (2 * values[:, 1:-1] - values[:, :-2] - values[:, 2:]).norm(dim=-1).mean()


def bases_smoothness(rots: Tensor, transls: Tensor) -> Tensor:
    """Acceleration of the bases: 1 × 6D rotations [B, F, 6] + 2 × translations [B, F, 3]."""
    return acceleration(rots) + 2.0 * acceleration(transls)


def track_smoothness(neighbour_means: Tensor) -> Tensor:
    """½ mean ‖2 μ_t − μ_{t−1} − μ_{t+1}‖ for positions [G, 3, K, 3] at (t − 1, t, t + 1)."""
    prev, cur, nxt = neighbour_means.unbind(1)
    return 0.5 * (2 * cur - prev - nxt).norm(dim=-1).mean()


def scale_variance(log_scales: Tensor) -> Tensor:
    """mean over Gaussians of the variance of their three log-scales [N, 3]."""
    return log_scales.var(dim=-1).mean()


def z_accel_loss(neighbour_means: Tensor, camera_centres: Tensor) -> Tensor:
    """Motion along the viewing ray, as the reference defines it: with d the unit ray from the
    camera centre [K, 3] to μ_t, mean((μ_t − μ_{t−1})·d)² + mean((μ_{t+1} − μ_t)·d)²;
    positions [G, 3, K, 3] at (t − 1, t, t + 1)."""
    prev, cur, nxt = neighbour_means.unbind(1)
    ray = F.normalize(cur - camera_centres, dim=-1)
    return (((cur - prev) * ray).sum(-1) ** 2).mean() + (((nxt - cur) * ray).sum(-1) ** 2).mean()
