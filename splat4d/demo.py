"""Rendering smoke run: fit random Gaussians to a procedural image with the CPU rasterizer
and write ``target | render`` as a PNG.

    python -m splat4d.demo --out renders/demo.png
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Tuple

import numpy as np
import torch
import tyro
from PIL import Image
from rich.console import Console
from rich.progress import Progress
from torch import Tensor

from splat4d.rasterization import Backend, rasterize

CONSOLE = Console()


def demo_target(width: int, height: int) -> Tensor:
    """Colour gradients, a fine wave pattern and two soft-edged discs, [H, W, 3] in [0, 1]."""
    y, x = torch.meshgrid(torch.linspace(0, 1, height), torch.linspace(0, 1, width), indexing="ij")
    img = torch.stack([0.5 + 0.3 * torch.sin(3 * x + 1), 0.5 + 0.3 * torch.cos(2 * y + 2 * x), 0.3 + 0.4 * y], -1)
    img = img + (0.15 * torch.sin(25 * x) * torch.sin(19 * y))[..., None]
    for cx, cy, r, col in ((0.3, 0.4, 0.18, (0.9, 0.2, 0.1)), (0.7, 0.65, 0.22, (0.1, 0.3, 0.9))):
        disc = torch.sigmoid((r - torch.sqrt((x - cx) ** 2 + (y - cy) ** 2)) * 60)[..., None]
        img = img * (1 - disc) + torch.tensor(col) * disc
    return img.clamp(0, 1)


class ImageFit:
    """N Gaussians on a fronto-parallel slab in front of a pinhole camera, fitted by Adam."""

    focal = 60.0
    depth = 3.0

    def __init__(self, target: Tensor, n_gaussians: int, seed: int = 0, backend: Backend = "auto"):
        self.target = target[None]
        self.height, self.width = target.shape[:2]
        self.backend = backend
        self.K = torch.tensor([[[self.focal, 0, self.width / 2], [0, self.focal, self.height / 2], [0, 0, 1.0]]])
        self.viewmat = torch.eye(4)[None]
        g = torch.Generator().manual_seed(seed)
        extent = torch.tensor([self.width, self.height]) * 1.1 * self.depth / self.focal
        xy = (torch.rand(n_gaussians, 2, generator=g) - 0.5) * extent
        self.params: Dict[str, Tensor] = {
            "means": torch.cat([xy, self.depth + 0.1 * torch.randn(n_gaussians, 1, generator=g)], -1),
            "quats": torch.randn(n_gaussians, 4, generator=g),
            "log_scales": torch.full((n_gaussians, 3), math.log(1.5 * self.depth / self.focal)),
            "opacity_logits": torch.zeros(n_gaussians),
            "colors": torch.rand(n_gaussians, 3, generator=g),
        }
        lrs = {"means": 1e-3 * self.depth, "quats": 1e-2, "log_scales": 5e-2, "opacity_logits": 5e-2, "colors": 2.5e-2}
        for p in self.params.values():
            p.requires_grad_(True)
        self.optimizer = torch.optim.Adam([{"params": [self.params[k]], "lr": lr} for k, lr in lrs.items()])

    def render(self) -> Tensor:
        p = self.params
        image, _, _ = rasterize(
            p["means"],
            p["quats"],
            torch.exp(p["log_scales"]),
            torch.sigmoid(p["opacity_logits"]),
            p["colors"],
            self.viewmat,
            self.K,
            self.width,
            self.height,
            backend=self.backend,
        )
        return image

    def step(self) -> float:
        loss = (self.render() - self.target).abs().mean()
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        return float(loss)

    @torch.no_grad()
    def psnr(self) -> Tuple[Tensor, float]:
        image = self.render().clamp(0, 1)
        return image[0], float(-10 * torch.log10(((image - self.target) ** 2).mean()))


@dataclass
class DemoConfig:
    out: Path = Path("renders/demo.png")
    """Where to write the PNG (target on the left, fitted render on the right)."""
    steps: int = 300
    """Adam steps."""
    n_gaussians: int = 2000
    """Number of Gaussians."""
    width: int = 160
    height: int = 120
    backend: Backend = "auto"
    """Rasterization backend: auto (gsplat on CUDA, compiled kernel on CPU), cpu, reference."""


def main(config: DemoConfig) -> float:
    fit = ImageFit(demo_target(config.width, config.height), config.n_gaussians, backend=config.backend)
    with Progress(console=CONSOLE, transient=True) as progress:
        task = progress.add_task("fitting Gaussians", total=config.steps)
        for _ in range(config.steps):
            loss = fit.step()
            progress.update(task, advance=1, description=f"fitting Gaussians (L1 {loss:.4f})")
    image, psnr = fit.psnr()
    config.out.parent.mkdir(parents=True, exist_ok=True)
    side_by_side = torch.cat([fit.target[0], image], dim=1)
    Image.fromarray((side_by_side.numpy() * 255 + 0.5).astype(np.uint8)).save(config.out)
    CONSOLE.print(f"PSNR {psnr:.2f} dB after {config.steps} steps; wrote {config.out}")
    return psnr


def entrypoint() -> None:
    main(tyro.cli(DemoConfig))


if __name__ == "__main__":
    entrypoint()
