"""Image metrics for evaluation: PSNR, SSIM (data_range 1), SSIM2 (data_range 2, the column
the FreeTimeGS / SharpTimeGS tables print) and LPIPS when its weights are on this machine.

LPIPS (AlexNet) needs torchvision's ImageNet AlexNet weights in the local torch hub cache;
nothing is downloaded: without them LPIPS is reported unavailable once and left out.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Optional

import torch
from pytorch_msssim import ssim
from rich.console import Console
from torch import Tensor

CONSOLE = Console()


def psnr(pred: Tensor, gt: Tensor) -> Tensor:
    """PSNR in dB of images in [0, 1]; any shape."""
    return -10.0 * torch.log10(((pred - gt) ** 2).mean().clamp(min=1e-10))


def alexnet_weights_path() -> Path:
    """Where torchvision keeps the AlexNet weights that LPIPS needs."""
    from torchvision.models import AlexNet_Weights

    return Path(torch.hub.get_dir()) / "checkpoints" / Path(AlexNet_Weights.IMAGENET1K_V1.url).name


def alexnet_lpips(spatial: bool = False, random_backbone: bool = False) -> Optional[torch.nn.Module]:
    """torchmetrics' LPIPS network (AlexNet and the linear heads that ship with torchmetrics), frozen,
    called as ``net(a, b, normalize=True)`` on [B, 3, H, W] images in [0, 1] ([B, 1, H, W] scores
    when ``spatial``); None when the ImageNet AlexNet weights are not in the local torch hub cache
    (nothing is downloaded). ``random_backbone``: a randomly initialised AlexNet instead (tests)."""
    if not random_backbone and not alexnet_weights_path().exists():
        return None
    from torchmetrics.functional.image.lpips import _LPIPS

    return _LPIPS(pretrained=True, net="alex", spatial=spatial, pnet_rand=random_backbone).eval().requires_grad_(False)


class LazyLPIPS:
    """LPIPS for evaluation, built on first use if the weights are cached locally."""

    def __init__(self) -> None:
        self._net: Optional[torch.nn.Module] = None
        self._checked = False

    @property
    def available(self) -> bool:
        if not self._checked:
            self._checked = True
            self._net = alexnet_lpips()
            if self._net is None:
                CONSOLE.print(
                    f"[yellow]LPIPS unavailable: AlexNet weights not found at {alexnet_weights_path()}; "
                    "reporting PSNR/SSIM only (place the file there to enable LPIPS)."
                )
        return self._net is not None

    @torch.no_grad()
    def __call__(self, pred: Tensor, gt: Tensor) -> Tensor:
        assert self._net is not None
        self._net = self._net.to(pred.device)
        return self._net(pred, gt, normalize=True).mean()


def image_metrics(pred: Tensor, gt: Tensor, lpips: Optional[LazyLPIPS] = None) -> Dict[str, float]:
    """Metrics of one image pair given as [1, 3, H, W] in [0, 1]."""
    out = {
        "psnr": float(psnr(pred, gt)),
        "ssim": float(ssim(pred, gt, data_range=1.0, size_average=True)),
        "ssim2": float(ssim(pred, gt, data_range=2.0, size_average=True)),
    }
    if lpips is not None and lpips.available:
        out["lpips"] = float(lpips(pred, gt))
    return out


class LPIPSLoss:
    """LPIPS (AlexNet) as a differentiable loss between [H, W, 3] images in [0, 1]; frozen network.

    ``network`` is None when torchvision's ImageNet AlexNet weights are not on this machine (never
    downloaded); ``random_backbone`` builds a randomly initialised AlexNet instead (tests). The
    linear heads ship with torchmetrics. Images whose short side is under MIN_SIDE pixels are
    upsampled (bilinear) to it first: AlexNet's strided layers leave nothing of smaller ones. A
    plain object, not a torch module: checkpoints of a model holding it do not carry its weights."""

    MIN_SIDE = 64

    def __init__(self, random_backbone: bool = False) -> None:
        self.network = alexnet_lpips(random_backbone=random_backbone)

    def __call__(self, pred: Tensor, gt: Tensor) -> Tensor:
        assert self.network is not None, "LPIPSLoss without weights"
        self.network.to(pred.device)
        scale = max(1.0, self.MIN_SIDE / min(pred.shape[:2]))

        def as_batch(img: Tensor) -> Tensor:
            img = img.permute(2, 0, 1)[None]
            return img if scale == 1.0 else torch.nn.functional.interpolate(img, scale_factor=scale, mode="bilinear")

        return self.network(as_batch(pred), as_batch(gt), normalize=True).mean()
