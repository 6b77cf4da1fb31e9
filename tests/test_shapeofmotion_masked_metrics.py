"""Masked mPSNR / mSSIM (DyCheck, as Shape of Motion computes them)."""

import math

import pytest
import torch
from pytorch_msssim import ssim

from shapeofmotion_ns.masked_metrics import masked_psnr, masked_ssim


def images():
    g = torch.Generator().manual_seed(0)
    gt = torch.rand(40, 50, 3, generator=g)
    noisy = (gt + 0.1 * torch.randn(40, 50, 3, generator=g)).clamp(0, 1)
    return gt, noisy


def test_full_masks_give_the_plain_metrics():
    gt, pred = images()
    ones = torch.ones(40, 50)
    plain_ssim = ssim(pred.permute(2, 0, 1)[None], gt.permute(2, 0, 1)[None], data_range=1.0)
    assert masked_ssim(pred, gt, ones).item() == pytest.approx(plain_ssim.item(), abs=1e-5)
    mse = (pred - gt).square().mean()
    assert masked_psnr(pred, gt, ones).item() == pytest.approx(-10 * math.log10(mse.item()), rel=1e-5)


def test_masked_out_pixels_do_not_count():
    gt, noisy = images()
    pred = gt.clone()
    pred[:, 25:] = noisy[:, 25:]  # only the right half is wrong
    left = torch.zeros(40, 50)
    left[:, :25] = 1
    assert masked_ssim(pred, gt, left).item() == pytest.approx(1.0, abs=1e-6)
    assert masked_psnr(pred, gt, left).item() == math.inf
    assert masked_ssim(pred, gt, 1 - left).item() < 0.99
    assert masked_psnr(pred, gt, 1 - left).item() == pytest.approx(masked_psnr(noisy[:, 25:], gt[:, 25:],
                                                                               torch.ones(40, 25)).item())
