"""SharpTimeGS temporal functions, each equation written once.

Every Gaussian has a canonical time T, a temporal scale σt > 0 and a temporal radius r ≥ 0;
t, T, σt and r share one time unit (see ``SharpTimeModelConfig.time_unit``).
"""

from __future__ import annotations

import math
from typing import Tuple

import torch
from torch import Tensor

TINY_RADIUS = 1e-6
"""r ≈ 0, the lifespan carried by σt alone: the initial radius of the random initialization and of
the velocity-aware one's ``radius_init="tiny"`` (r is learned in log space, so not 0)."""


def temporal_radius(log_radius: Tensor, learned: bool) -> Tensor:
    # r = exp(log r) when learned; r ≡ 0 otherwise (the 'no lifespan' ablation)
    return torch.exp(log_radius) if learned else torch.zeros_like(log_radius)


def motion_factor(tscale: Tensor, radius: Tensor) -> Tensor:
    # f(σt, r) = 1 + max(1, (σt + r)²)
    return 1.0 + torch.clamp((tscale + radius) ** 2, min=1.0)


def position_at(means: Tensor, velocities: Tensor, times: Tensor, tscale: Tensor, radius: Tensor, t: float) -> Tensor:
    # X_t = X + v / f(σt, r) · (t − T)
    return means + velocities / motion_factor(tscale, radius) * (t - times)


def lifespan(times: Tensor, tscale: Tensor, radius: Tensor, t: float) -> Tensor:
    # l(t) = 1 if |t − T| ≤ r, else exp(−((|t − T| − r) / σt)²)
    outside = torch.clamp(torch.abs(t - times) - radius, min=0.0)
    return torch.exp(-((outside / tscale) ** 2))


def gaussian_lifespan(times: Tensor, tscale: Tensor, t: float) -> Tensor:
    # 4DGS-style temporal opacity (ablation): exp(−½ ((t − T) / σt)²)
    return torch.exp(-0.5 * ((t - times) / tscale) ** 2)


def alive_at(times: Tensor, tscale: Tensor, radius: Tensor, t: float, threshold: float) -> Tensor:
    """Gaussians whose l(t) ≥ threshold, i.e. |t − T| ≤ r + σt·sqrt(−ln threshold)."""
    return torch.abs(t - times) <= radius + tscale * math.sqrt(-math.log(threshold))


def motion_score(velocities: Tensor, tscale: Tensor, radius: Tensor) -> Tensor:
    # 1 − exp(−(‖v‖ + 1) / f(σt, r)): the motion term of the densification score
    return 1.0 - torch.exp(-(velocities.norm(dim=-1, keepdim=True) + 1.0) / motion_factor(tscale, radius))


def densification_score(
    error: Tensor,
    opacity: Tensor,
    velocities: Tensor,
    tscale: Tensor,
    radius: Tensor,
    weights: Tuple[float, float, float],
) -> Tensor:
    # s = λe·E/max(E) + λo·O + λl·(1 − exp(−(‖v‖ + 1)/f(σt, r))), weights = (λe, λo, λl); error, opacity [N]
    w_e, w_o, w_l = weights
    motion = motion_score(velocities, tscale, radius).squeeze(-1)
    return w_e * error / error.max().clamp(min=1e-12) + w_o * opacity + w_l * motion


def lifespan_loss(tscale: Tensor, radius: Tensor, threshold: float) -> Tensor:
    # L_t = mean(1 / (sqrt(−2 ln o_th · σt²) + r)): favours long lifespans
    return (1.0 / (torch.sqrt(-2.0 * math.log(threshold) * tscale**2) + radius)).mean()
