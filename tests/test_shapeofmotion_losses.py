"""Shape of Motion loss terms on inputs with known values."""

import math

import pytest
import torch
from pytorch_msssim import SSIM

from shapeofmotion_ns.losses import (
    LossWeights,
    bases_smoothness,
    depth_gradient_loss,
    disparity_loss,
    mask_loss,
    masked_l1,
    rgb_loss,
    scale_variance,
    track_2d_loss,
    track_depth_loss,
    track_smoothness,
    track_weights,
    z_accel_loss,
)


def test_weights_default_to_the_reference():
    w = LossWeights()
    assert (w.w_rgb, w.w_depth_reg, w.w_depth_const, w.w_depth_grad, w.w_track, w.w_mask) == (1, 0.5, 0.1, 1, 2, 1)
    assert (w.w_smooth_bases, w.w_smooth_tracks, w.w_scale_var, w.w_z_accel) == (0.1, 2, 0.01, 1)


def test_masked_l1_weights_rows_and_drops_the_top_quantile():
    pred = torch.tensor([[1.0, 1.0], [2.0, 2.0], [0.0, 0.0], [100.0, 100.0]])
    gt = torch.zeros(4, 2)
    weights = torch.tensor([1.0, 3.0, 1.0, 1.0])
    assert masked_l1(pred, gt, weights).item() == pytest.approx((1 + 6 + 0 + 100) / 6)
    # the 100-pixel outlier is above the 90% quantile
    assert masked_l1(pred, gt, weights, quantile=0.9).item() == pytest.approx(7 / 5)
    assert masked_l1(pred, gt, quantile=0.9).item() == pytest.approx(1.0)
    assert masked_l1(pred[:0], gt[:0], weights[:0]).item() == 0.0


def test_masked_l1_at_dycheck_size():
    """[tracks × frames] rows past torch.quantile's 2^24-element limit: 1% outliers dropped."""
    n = 2**24 + 4096
    errors = torch.rand(n, 1, generator=torch.Generator().manual_seed(0))
    errors[: n // 100] = 100.0
    assert masked_l1(errors, torch.zeros_like(errors), quantile=0.98).item() == pytest.approx(
        0.5 * 0.98 / 0.99, rel=1e-3
    )


def test_rgb_loss_is_l1_and_ssim_mix():
    ssim = SSIM(data_range=1.0, size_average=True, channel=3)
    img = torch.rand(32, 32, 3, generator=torch.Generator().manual_seed(0))
    assert rgb_loss(img, img, ssim).item() == pytest.approx(0.0, abs=1e-6)
    shifted = (img + 0.1).clamp(max=1.0)
    expected = 0.8 * (shifted - img).abs().mean() + 0.2 * (
        1 - ssim(shifted.permute(2, 0, 1)[None], img.permute(2, 0, 1)[None])
    )
    assert rgb_loss(shifted, img, ssim).item() == pytest.approx(expected.item())


def test_disparity_loss_compares_inverse_depth_on_valid_pixels():
    pred, prior = torch.full((4, 5), 1.0), torch.full((4, 5), 2.0)
    valid = torch.ones(4, 5, dtype=torch.bool)
    assert disparity_loss(pred, prior, valid).item() == pytest.approx(0.5, rel=1e-4)
    prior_with_hole = prior.clone()
    prior_with_hole[0, 0] = 0.0  # unknown depth: masked out
    valid[0, 0] = False
    assert disparity_loss(pred, prior_with_hole, valid).item() == pytest.approx(0.5, rel=1e-4)


def test_depth_gradient_loss_ignores_offsets_and_sees_slopes():
    rows = torch.arange(6.0)[:, None].expand(6, 8)
    prior_disp = 1.0 + 0.1 * rows
    pred_disp = prior_disp + 0.3  # same gradients
    valid = torch.ones(6, 8, dtype=torch.bool)
    to_depth = lambda d: 1.0 / d - 1e-5  # noqa: E731
    assert depth_gradient_loss(to_depth(pred_disp), to_depth(prior_disp), valid).item() == pytest.approx(0.0, abs=1e-4)
    steeper = 1.0 + 0.2 * rows  # vertical differences 0.2 instead of 0.1; horizontal ones agree
    assert depth_gradient_loss(to_depth(steeper), to_depth(prior_disp), valid).item() == pytest.approx(0.1, rel=1e-3)


def test_mask_loss_is_zero_for_opaque_renders_matching_the_mask():
    motion = torch.zeros(10, 10)
    motion[2:5, 3:7] = 1.0
    assert mask_loss(torch.ones(10, 10), motion.clone(), motion).item() == 0.0
    assert mask_loss(torch.full((10, 10), 0.5), motion.clone(), motion).item() == pytest.approx(0.25)


def test_track_losses():
    target = torch.tensor([[10.0, 20.0], [30.0, 40.0]])
    pred = target + torch.tensor([2.0, 0.0])
    w = torch.ones(2)
    assert track_2d_loss(pred, target, w, image_size=100).item() == pytest.approx(1.0 / 100)  # mean |.| = 1 px
    assert track_depth_loss(torch.tensor([1.0, 1.0]), torch.tensor([2.0, 0.5]), w).item() == pytest.approx(0.75, 1e-4)
    gap = torch.tensor([0.0, 5.0])
    assert torch.allclose(track_weights(torch.tensor([0.5, 1.0]), gap, 10), torch.tensor([0.5, math.exp(-1.0)]))


def test_smoothness_terms_vanish_for_uniform_motion():
    t = torch.arange(7.0)
    linear = torch.stack([t, 2 * t, -t], dim=-1)[None].expand(3, 7, 3)
    rots = torch.cat([linear, linear], dim=-1)
    assert bases_smoothness(rots, linear).item() == 0.0
    quadratic = torch.stack([t**2, 0 * t, 0 * t], dim=-1)[None]
    # 2x_t − x_{t−1} − x_{t+1} = −2 for x = t²: 1 × ‖(−2, −2)‖ + 2 × 2
    quadratic_rots = torch.cat([quadratic, quadratic], -1)
    assert bases_smoothness(quadratic_rots, quadratic).item() == pytest.approx(2 * math.sqrt(2) + 4)
    neighbours = torch.stack([linear[:, 0:4], linear[:, 1:5], linear[:, 2:6]], dim=1)  # [G, 3, K, 3]
    assert track_smoothness(neighbours).item() == 0.0


def test_z_accel_penalizes_motion_along_the_ray_only():
    centre = torch.zeros(1, 3)
    cur = torch.tensor([[[0.0, 0.0, 2.0]]])  # [G=1, K=1, 3], on the optical axis
    sideways = torch.stack([cur - torch.tensor([0.1, 0, 0]), cur, cur + torch.tensor([0.1, 0, 0])], dim=1)
    assert z_accel_loss(sideways, centre).item() == pytest.approx(0.0, abs=1e-12)
    along = torch.stack([cur - torch.tensor([0, 0, 0.1]), cur, cur + torch.tensor([0, 0, 0.3])], dim=1)
    assert z_accel_loss(along, centre).item() == pytest.approx(0.01 + 0.09)


def test_scale_variance():
    assert scale_variance(torch.zeros(5, 3)).item() == 0.0
    assert scale_variance(torch.tensor([[0.0, 1.0, 2.0]])).item() == pytest.approx(1.0)
