"""How the CPU backend shares the machine: a training-like loop alone vs next to busy processes.

    .venv/bin/python benchmarks/cpu_sharing.py [--steps 40] [--rounds 3] [--threads 1,2]
        [--busy 0,1,2] [--env OMP_WAIT_POLICY=PASSIVE ...]

Each measurement runs in a fresh child process (so environment variables such as
OMP_WAIT_POLICY take effect before torch and its OpenMP runtime start) that trains the demo's
problem size: 8,000 Gaussians rendered at 160×120 with ``splat4d.rasterize`` (projection, tile
binning, compiled compositing), an L1 loss, backward and an Adam step. Competing load is
``--busy`` processes running ``while True: pass``. Configurations are interleaved round by
round so that drifting background load hits them alike; the table gives the median step time
over all rounds and the slowdown against the same configuration with no busy process.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Dict, List, Tuple

import tyro


def child(steps: int, threads: int) -> None:
    import torch

    from splat4d import rasterize
    from splat4d.random_scene import random_scene

    torch.set_num_threads(threads)
    scene = random_scene(8_000, 160, 120, seed=0)
    params = [t.clone().requires_grad_(True) for t in scene.params()]
    target = torch.rand(1, scene.height, scene.width, 3, generator=torch.Generator().manual_seed(1))
    opt = torch.optim.Adam(params, lr=1e-3)
    times: List[float] = []
    for step in range(steps + 3):  # (3 warm-up steps)
        start = time.perf_counter()
        image, _, _ = rasterize(*params, scene.viewmats, scene.Ks, scene.width, scene.height, absgrad=True)
        loss = (image - target).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step >= 3:
            times.append(time.perf_counter() - start)
    print(json.dumps(times))


def measure(steps: int, threads: int, busy: int, env: Dict[str, str]) -> List[float]:
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(busy)]
    try:
        out = subprocess.run(
            [sys.executable, __file__, "--child", "--steps", str(steps), "--threads", str(threads)],
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            check=True,
        )
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
    return json.loads(out.stdout.strip().splitlines()[-1])


@dataclass
class SharingBenchmark:
    """The benchmark's settings (see the module docstring)."""

    steps: int = 40
    """Timed training steps per measurement."""
    rounds: int = 3
    """Rounds over all configurations."""
    threads: str = "1,2"
    """Comma-separated torch thread counts."""
    busy: str = "0,1,2"
    """Comma-separated numbers of competing busy processes."""
    env: Tuple[str, ...] = ()
    """NAME=VALUE variants (each its own rows)."""
    child: bool = False
    """Internal: run one measurement in this process (how the benchmark starts its children)."""


def main() -> None:
    args = tyro.cli(SharingBenchmark, description=__doc__)
    if args.child:
        child(args.steps, int(args.threads))
        return

    variants: List[Tuple[str, Dict[str, str]]] = [("default", {})]
    for spec in args.env:
        name, _, value = spec.partition("=")
        variants.append((spec, {name: value}))
    threads = [int(t) for t in args.threads.split(",")]
    busy = [int(b) for b in args.busy.split(",")]
    samples: Dict[Tuple[str, int, int], List[float]] = {}
    for r in range(args.rounds):
        for label, env in variants:
            for t in threads:
                for b in busy:
                    samples.setdefault((label, t, b), []).extend(measure(args.steps, t, b, env))
        print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)

    header = ["env", "threads"] + [f"{b} busy: ms/step (×)" for b in busy]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * 2 + "---:|" * len(busy))
    for label, _ in variants:
        for t in threads:
            base = statistics.median(samples[(label, t, busy[0])])
            cells = []
            for b in busy:
                ms = statistics.median(samples[(label, t, b)])
                cells.append(f"{ms * 1e3:.1f} ({ms / base:.1f}×)")
            print(f"| {label} | {t} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
