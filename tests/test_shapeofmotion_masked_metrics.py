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
    assert masked_psnr(pred, gt, 1 - left).item() == pytest.approx(
        masked_psnr(noisy[:, 25:], gt[:, 25:], torch.ones(40, 25)).item()
    )


def loop_blur(values, mask, taps):
    """The reference's separable masked window by its definition, with loops: along each row
    first (the taps' weighted sum of the masked pixels, scaled by K / masked count), then along
    each column over the rows whose row pass saw a masked pixel."""
    K = len(taps)
    H, W = mask.shape
    rows = torch.zeros(values.shape[0], H, W - K + 1)
    seen = torch.zeros(H, W - K + 1)
    for i in range(H):
        for j in range(W - K + 1):
            m = mask[i, j : j + K]
            if m.sum() > 0:
                rows[:, i, j] = (values[:, i, j : j + K] * m * taps).sum(-1) * K / m.sum()
                seen[i, j] = 1
    out = torch.zeros(values.shape[0], H - K + 1, W - K + 1)
    for i in range(H - K + 1):
        for j in range(W - K + 1):
            m = seen[i : i + K, j]
            if m.sum() > 0:
                out[:, i, j] = (rows[:, i : i + K, j] * m * taps).sum(-1) * K / m.sum()
    return out


def test_the_window_passes_horizontally_then_vertically_as_the_reference():
    from shapeofmotion_ns.masked_metrics import SIGMA, WINDOW, masked_blur

    g = torch.Generator().manual_seed(1)
    values = torch.rand(2, 16, 18, generator=g)
    speckled = (torch.rand(16, 18, generator=g) > 0.6).float()
    speckled[:, 2] = 0.0
    taps = torch.exp(-0.5 * ((torch.arange(WINDOW) - WINDOW // 2) / SIGMA) ** 2)
    taps = taps / taps.sum()
    assert torch.allclose(masked_blur(values, speckled, taps), loop_blur(values, speckled, taps), atol=1e-5)
    transposed = loop_blur(values.transpose(1, 2), speckled.T, taps).transpose(1, 2)  # vertical first
    assert not torch.allclose(masked_blur(values, speckled, taps), transposed, atol=1e-3)


def random_lpips():
    """torchmetrics' spatial AlexNet LPIPS with random AlexNet weights (nothing downloaded)."""
    from torchmetrics.functional.image.lpips import _LPIPS

    torch.manual_seed(0)
    return _LPIPS(net="alex", spatial=True, pnet_rand=True).eval()


def test_masked_lpips_ignores_masked_out_pixels_and_grows_with_the_error():
    from shapeofmotion_ns.masked_metrics import MaskedLPIPS

    metric = MaskedLPIPS(random_lpips())
    assert metric.available
    gt, noisy = images()
    gt, noisy = gt.repeat(2, 2, 1), noisy.repeat(2, 2, 1)  # 80×100: AlexNet needs some size
    left = torch.zeros(80, 100)
    left[:, :50] = 1
    pred = gt.clone()
    pred[:, 50:] = noisy[:, 50:]
    assert metric(pred, gt, left).item() == pytest.approx(0.0, abs=1e-7)  # the differences are all masked out
    assert metric(gt, gt, torch.ones(80, 100)).item() == pytest.approx(0.0, abs=1e-7)
    half = metric(pred, gt, torch.ones(80, 100)).item()
    full = metric(noisy, gt, torch.ones(80, 100)).item()
    assert 0 < half < full


def test_masked_lpips_is_unavailable_without_local_weights(monkeypatch, tmp_path):
    import splat4d.metrics
    from shapeofmotion_ns.masked_metrics import MaskedLPIPS

    monkeypatch.setattr(splat4d.metrics, "alexnet_weights_path", lambda: tmp_path / "missing.pth")
    assert not MaskedLPIPS().available
