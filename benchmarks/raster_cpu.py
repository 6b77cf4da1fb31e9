"""CPU rasterization benchmark: pure-torch reference vs compiled kernel, same scenes, same run.

    .venv/bin/python benchmarks/raster_cpu.py [--repeats 3] [--sizes small,medium,large,hd100k,hd300k]

Prints forward and forward+backward milliseconds (median of --repeats) and the speed-up of the
compiled kernel (the reference is skipped for the 1352×1014 sizes: minutes per call), and the
kernel forward's throughput: the pixel–Gaussian pairs within the tile intersections whose alpha
reaches 1/255 (counted in PyTorch from the same projection: what compositing has to evaluate,
before pixels saturate, so an upper bound when many Gaussians cover a pixel) per second, and
the fraction of the machine's float32 FMA peak that is at ~25 flops per pair (the peak measured
in the same run by an AVX2 FMA loop on as many threads). The column "≤ pairs" is the looser
bound intersections × tile pixels. When a CUDA GPU is present it also prints gsplat's CUDA timings and the
max |image difference| between gsplat on the GPU and our kernel on the CPU for the same scene.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Tuple

import torch
import tyro
from rich.console import Console
from rich.table import Table

from splat4d import raster_cpu, rasterize
from splat4d.random_scene import Scene, random_scene

SIZES: Dict[str, Tuple[int, int, int]] = {
    "small": (5_000, 128, 96),
    "medium": (20_000, 256, 192),
    "large": (100_000, 512, 384),
    "hd100k": (100_000, 1352, 1014),
    "hd300k": (300_000, 1352, 1014),
}
NO_REFERENCE = {"hd100k", "hd300k"}
FLOPS_PER_PAIR = 25  # sigma, exp, alpha, compositing: the yardstick


def render_fn(scene: Scene, backend: str, device: str = "cpu") -> Callable[[bool], None]:
    params = [t.to(device).requires_grad_(True) for t in scene.params()]
    viewmats, Ks = scene.viewmats.to(device), scene.Ks.to(device)

    def run(backward: bool) -> None:
        means, quats, scales, opacities, colors = params
        image, alpha, info = rasterize(
            means,
            quats,
            scales,
            opacities,
            colors,
            viewmats,
            Ks,
            scene.width,
            scene.height,
            backend=backend,
            absgrad=backward,
        )
        if backward:
            (image.sum() + alpha.sum()).backward()
        if device == "cuda":
            torch.cuda.synchronize()

    return run


def time_ms(fn: Callable[[bool], None], backward: bool, repeats: int) -> float:
    fn(backward)  # warm-up (and JIT compilation on first use)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(backward)
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def cuda_parity(scene: Scene) -> float:
    images = []
    for backend, device in (("gsplat", "cuda"), ("cpu", "cpu")):
        t = [x.to(device) for x in scene.params()]
        image, _, _ = rasterize(
            *t, scene.viewmats.to(device), scene.Ks.to(device), scene.width, scene.height, backend=backend, packed=False
        )
        images.append(image.cpu())
    return float((images[0] - images[1]).abs().max())


def pair_count(scene: Scene, tile_size: int = 16, chunk: int = 4096) -> Tuple[int, int, int]:
    """Tile intersections of the scene, the pixel–Gaussian pairs they bound (intersections ×
    tile pixels), and the pairs within them where alpha >= 1/255 (what compositing must
    evaluate, before pixels saturate)."""
    _, _, info = rasterize(*scene.params(), scene.viewmats, scene.Ks, scene.width, scene.height, tile_size=tile_size)
    offsets, ids = info["isect_offsets"][0].flatten().long(), info["flatten_ids"].long()
    n_isects = int(ids.numel())
    ends = torch.cat([offsets[1:], torch.tensor([n_isects])])
    tile = torch.repeat_interleave(torch.arange(offsets.numel()), ends - offsets)
    tiles_x = info["tile_width"]
    corner = torch.stack([tile % tiles_x, tile // tiles_x], dim=-1).float() * tile_size  # [M, 2]
    pix = torch.arange(tile_size, dtype=torch.float32) + 0.5
    py, px = torch.meshgrid(pix, pix, indexing="ij")
    means2d, conics = info["means2d"][0].detach(), info["conics"][0].detach()
    opacities = scene.opacities
    contributing = 0
    for start in range(0, n_isects, chunk):
        g = ids[start : start + chunk]
        c = corner[start : start + chunk]
        dx = means2d[g, 0, None, None] - (c[:, 0, None, None] + px)
        dy = means2d[g, 1, None, None] - (c[:, 1, None, None] + py)
        a, b, cc = (conics[g, i, None, None] for i in range(3))
        sigma = 0.5 * (a * dx * dx + cc * dy * dy) + b * dx * dy
        alpha = opacities[g, None, None] * torch.exp(-sigma)
        contributing += int(((sigma >= 0) & (alpha >= 1 / 255)).sum())
    return n_isects, n_isects * tile_size * tile_size, contributing


@dataclass
class RasterBenchmark:
    """The benchmark's settings (see the module docstring)."""

    repeats: int = 3
    """Timed calls per measurement (the median is printed)."""
    sizes: str = ",".join(SIZES)
    """Comma-separated subset of the scene sizes: small, medium, large, hd100k, hd300k."""


def main() -> None:
    args = tyro.cli(RasterBenchmark, description=__doc__)

    console = Console(width=220)  # (the table is wide; rich would truncate it to 80 columns in a pipe)
    has_cuda = torch.cuda.is_available()
    threads = torch.get_num_threads()
    peak = raster_cpu.load_extension().fma_peak_gflops(threads, 20_000_000)
    table = Table(
        title=f"CPU rasterization, {threads} threads, RGB, 1 camera (ms, median of {args.repeats}); "
        f"measured FMA peak {peak:.0f} GFLOP/s"
    )
    for col in (
        "Gaussians",
        "image",
        "intersections",
        "≤ pairs (M)",
        "α ≥ 1/255 pairs (M)",
        "ref fwd",
        "kernel fwd",
        "fwd ×",
        "ref fwd+bwd",
        "kernel fwd+bwd",
        "fwd+bwd ×",
        "fwd G pairs/s",
        "% FMA peak",
    ):
        table.add_column(col, justify="right")
    if has_cuda:
        for col in ("gsplat fwd", "gsplat fwd+bwd", "max |Δ| vs gsplat"):
            table.add_column(col, justify="right")
    for name in args.sizes.split(","):
        n, w, h = SIZES[name]
        scene = random_scene(n, w, h, seed=0)
        n_isects, pairs, contributing = pair_count(scene)
        row: List[str] = [f"{n:,}", f"{w}×{h}", f"{n_isects:,}", f"{pairs / 1e6:.1f}", f"{contributing / 1e6:.1f}"]
        kernel = render_fn(scene, "cpu")
        console.print(f"[dim]timing {name} ({n} Gaussians, {w}×{h})…")
        ker_f, ker_b = time_ms(kernel, False, args.repeats), time_ms(kernel, True, args.repeats)
        if name in NO_REFERENCE:
            ref_cells = ["—", f"{ker_f:.1f}", "—", "—", f"{ker_b:.1f}", "—"]
        else:
            ref = render_fn(scene, "reference")
            ref_f, ref_b = time_ms(ref, False, args.repeats), time_ms(ref, True, args.repeats)
            ref_cells = [
                f"{ref_f:.1f}",
                f"{ker_f:.1f}",
                f"{ref_f / ker_f:.1f}",
                f"{ref_b:.1f}",
                f"{ker_b:.1f}",
                f"{ref_b / ker_b:.1f}",
            ]
        pairs_per_s = contributing / (ker_f * 1e-3)
        peak_cell = f"{100 * pairs_per_s * FLOPS_PER_PAIR / (peak * 1e9):.1f}" if peak > 0 else "—"
        row += ref_cells + [f"{pairs_per_s / 1e9:.2f}", peak_cell]
        if has_cuda:
            gpu = render_fn(scene, "gsplat", "cuda")
            row += [
                f"{time_ms(gpu, False, args.repeats):.2f}",
                f"{time_ms(gpu, True, args.repeats):.2f}",
                f"{cuda_parity(scene):.2e}",
            ]
        table.add_row(*row)
    console.print(table)


if __name__ == "__main__":
    main()
