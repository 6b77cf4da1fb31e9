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
    """The AlexNet LPIPS network (:func:`alexnet_lpips`), built on first use when its weights are
    on this machine; without them ``available`` is False and says so once, naming ``purpose``.
    A ``net`` given here (e.g. randomly initialised, in tests) is used as it is. Called, it is the
    evaluation metric: the mean LPIPS of [B, 3, H, W] images in [0, 1], without gradients. A plain
    object, not a torch module: checkpoints of a model holding it do not carry its weights."""

    def __init__(self, spatial: bool = False, purpose: str = "LPIPS", net: Optional[torch.nn.Module] = None) -> None:
        self.spatial, self.purpose = spatial, purpose
        self._net, self._checked = net, net is not None

    @property
    def available(self) -> bool:
        if not self._checked:
            self._checked = True
            self._net = alexnet_lpips(spatial=self.spatial)
            if self._net is None:
                CONSOLE.print(
                    f"[yellow]{self.purpose} left out: AlexNet weights not found at {alexnet_weights_path()} "
                    "(nothing is downloaded; place the file there to enable it)"
                )
        return self._net is not None

    def network(self, device: torch.device) -> torch.nn.Module:
        """The network on ``device`` (check ``available`` first)."""
        assert self.available, f"{self.purpose} without AlexNet weights: check .available first"
        self._net = self._net.to(device)
        return self._net

    @torch.no_grad()
    def __call__(self, pred: Tensor, gt: Tensor) -> Tensor:
        return self.network(pred.device)(pred, gt, normalize=True).mean()


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
    """LPIPS (AlexNet) as a differentiable loss between [H, W, 3] images in [0, 1]; frozen network
    (:class:`LazyLPIPS`, ``available`` False without the weights). ``random_backbone`` builds a
    randomly initialised AlexNet instead (tests). Images whose short side is under MIN_SIDE pixels
    are upsampled (bilinear) to it first: AlexNet's strided layers leave nothing of smaller ones."""

    MIN_SIDE = 64

    def __init__(self, random_backbone: bool = False) -> None:
        net = alexnet_lpips(random_backbone=True) if random_backbone else None
        self.lpips = LazyLPIPS(purpose="LPIPS loss term", net=net)

    @property
    def available(self) -> bool:
        return self.lpips.available

    def __call__(self, pred: Tensor, gt: Tensor) -> Tensor:
        network = self.lpips.network(pred.device)
        scale = max(1.0, self.MIN_SIDE / min(pred.shape[:2]))

        def as_batch(img: Tensor) -> Tensor:
            img = img.permute(2, 0, 1)[None]
            return img if scale == 1.0 else torch.nn.functional.interpolate(img, scale_factor=scale, mode="bilinear")

        return network(as_batch(pred), as_batch(gt), normalize=True).mean()
