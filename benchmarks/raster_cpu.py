"""CPU rasterization benchmark: pure-torch reference vs compiled kernel, same scenes, same run.

    .venv/bin/python benchmarks/raster_cpu.py [--repeats 3] [--sizes small,medium,large]

Prints forward and forward+backward milliseconds (median of --repeats) and the speed-up of the
compiled kernel. When a CUDA GPU is present it also prints gsplat's CUDA timings and the
max |image difference| between gsplat on the GPU and our kernel on the CPU for the same scene.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable, Dict, List, Tuple

import torch
from rich.console import Console
from rich.table import Table

from splat4d import rasterize
from splat4d.random_scene import Scene, random_scene

SIZES: Dict[str, Tuple[int, int, int]] = {
    "small": (5_000, 128, 96),
    "medium": (20_000, 256, 192),
    "large": (100_000, 512, 384),
}


def render_fn(scene: Scene, backend: str, device: str = "cpu") -> Callable[[bool], None]:
    params = [t.to(device).requires_grad_(True) for t in scene.params()]
    viewmats, Ks = scene.viewmats.to(device), scene.Ks.to(device)

    def run(backward: bool) -> None:
        means, quats, scales, opacities, colors = params
        image, alpha, info = rasterize(
            means, quats, scales, opacities, colors, viewmats, Ks, scene.width, scene.height,
            backend=backend, absgrad=backward,
        )  # fmt: skip
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
        image, _, _ = rasterize(*t, scene.viewmats.to(device), scene.Ks.to(device), scene.width, scene.height,
                                backend=backend, packed=False)  # fmt: skip
        images.append(image.cpu())
    return float((images[0] - images[1]).abs().max())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sizes", default=",".join(SIZES), help="comma-separated subset of " + ",".join(SIZES))
    args = parser.parse_args()

    console = Console()
    has_cuda = torch.cuda.is_available()
    table = Table(title=f"CPU rasterization, {torch.get_num_threads()} threads, RGB, 1 camera (ms, median of {args.repeats})")
    for col in ("Gaussians", "image", "ref fwd", "kernel fwd", "fwd ×", "ref fwd+bwd", "kernel fwd+bwd", "fwd+bwd ×"):
        table.add_column(col, justify="right")
    if has_cuda:
        for col in ("gsplat fwd", "gsplat fwd+bwd", "max |Δ| vs gsplat"):
            table.add_column(col, justify="right")
    for name in args.sizes.split(","):
        n, w, h = SIZES[name]
        scene = random_scene(n, w, h, seed=0)
        row: List[str] = [f"{n:,}", f"{w}×{h}"]
        ref, kernel = render_fn(scene, "reference"), render_fn(scene, "cpu")
        console.print(f"[dim]timing {name} ({n} Gaussians, {w}×{h})…")
        ref_f, ker_f = time_ms(ref, False, args.repeats), time_ms(kernel, False, args.repeats)
        ref_b, ker_b = time_ms(ref, True, args.repeats), time_ms(kernel, True, args.repeats)
        row += [f"{ref_f:.1f}", f"{ker_f:.1f}", f"{ref_f / ker_f:.1f}", f"{ref_b:.1f}", f"{ker_b:.1f}", f"{ref_b / ker_b:.1f}"]
        if has_cuda:
            gpu = render_fn(scene, "gsplat", "cuda")
            row += [f"{time_ms(gpu, False, args.repeats):.2f}", f"{time_ms(gpu, True, args.repeats):.2f}",
                    f"{cuda_parity(scene):.2e}"]  # fmt: skip
        table.add_row(*row)
    console.print(table)


if __name__ == "__main__":
    main()
