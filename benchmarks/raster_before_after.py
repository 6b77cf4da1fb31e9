"""CPU rasterization before/after: an older commit's ``splat4d.rasterize`` against this tree's,
same scenes, same machine, same run.

    .venv/bin/python benchmarks/raster_before_after.py --before 3d9b148 [--sizes medium,hd100k]

The ``splat4d`` package of ``--before`` is exported (``git archive``) to a temporary folder;
each measurement is a fresh worker process (``PYTHONPATH`` = that tree or this one, its own
``TORCH_EXTENSIONS_DIR`` so the two compiled kernels do not evict each other) that renders the
size's ``random_scene`` forward + backward (``absgrad=True``, loss ``image.sum() + alpha.sum()``,
as the training step does) ``--steps`` times after two warm-up steps. Workers alternate in ABBA
order over ``--rounds`` rounds, so slow drifts of the machine's load hit both sides alike; the
table gives the median and minimum per step over all rounds, wall and process CPU time, and
the speed-up of the median and of the minimum. Run it on an otherwise idle machine.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Literal

import tyro
from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parents[1]
SIZES: Dict[str, tuple] = {
    "demo": (8_000, 160, 120),
    "medium": (20_000, 256, 192),
    "hd100k": (100_000, 1352, 1014),
}


@dataclass
class Options:
    before: str = "3d9b148"
    """Commit (or any git revision) whose splat4d package is the "before"."""
    sizes: str = "medium,hd100k"
    """Comma-separated names from: demo (8k, 160×120), medium (20k, 256×192), hd100k (100k, 1352×1014)."""
    rounds: int = 4
    """ABBA rounds; each round runs one worker per side and size."""
    steps: int = 10
    """Timed forward + backward steps per worker (after two warm-up steps)."""
    threads: int = 2
    """Torch and kernel threads per worker."""
    wait_policy: Literal["PASSIVE", "ACTIVE", "unset"] = "PASSIVE"
    """OMP_WAIT_POLICY of the workers (see RESULTS.md, "Sharing the machine")."""
    worker: str = ""
    """(internal) run one measurement for this size and print it as JSON."""


def measure(size: str, steps: int) -> Dict:
    import time

    import torch

    import splat4d
    from splat4d.random_scene import random_scene

    n, width, height = SIZES[size]
    scene = random_scene(n, width, height)
    params = [t.clone().requires_grad_(True) for t in scene.params()]
    wall: List[float] = []
    cpu: List[float] = []
    for i in range(steps + 2):
        t0, c0 = time.perf_counter(), time.process_time()
        image, alpha, _ = splat4d.rasterize(*params, scene.viewmats, scene.Ks, width, height, absgrad=True)
        (image.sum() + alpha.sum()).backward()
        if i >= 2:
            wall.append(1e3 * (time.perf_counter() - t0))
            cpu.append(1e3 * (time.process_time() - c0))
        for p in params:
            p.grad = None
    return {"wall": wall, "cpu": cpu, "package": str(Path(splat4d.__file__).parent), "threads": torch.get_num_threads()}


def export_package(revision: str, into: Path) -> Path:
    archive = into / "before.tar"
    with archive.open("wb") as out:
        subprocess.run(["git", "-C", str(REPO), "archive", revision, "splat4d"], stdout=out, check=True)
    tree = into / "before"
    tree.mkdir()
    with tarfile.open(archive) as tar:
        tar.extractall(tree)
    return tree


def run_worker(tree: Path, size: str, opts: Options, ext_dir: Path) -> Dict:
    env = dict(os.environ, PYTHONPATH=str(tree), TORCH_EXTENSIONS_DIR=str(ext_dir))
    env["OMP_NUM_THREADS"] = str(opts.threads)
    env.pop("OMP_WAIT_POLICY", None)
    if opts.wait_policy != "unset":
        env["OMP_WAIT_POLICY"] = opts.wait_policy
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", size, "--steps", str(opts.steps)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"worker for {size} in {tree} failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    if Path(result["package"]).resolve() != (tree / "splat4d").resolve():
        raise SystemExit(f"worker imported {result['package']}, not the tree {tree}: check PYTHONPATH")
    return result


def main() -> None:
    opts = tyro.cli(Options)
    if opts.worker:
        print(json.dumps(measure(opts.worker, opts.steps)))
        return
    sizes = [s.strip() for s in opts.sizes.split(",") if s.strip()]
    unknown = [s for s in sizes if s not in SIZES]
    if unknown:
        raise SystemExit(f"unknown sizes {unknown}; choose from {sorted(SIZES)}")
    console = Console()
    with tempfile.TemporaryDirectory(prefix="raster_before_after_") as tmp:
        tmp_path = Path(tmp)
        trees = {"before": export_package(opts.before, tmp_path), "after": REPO}
        ext_dirs = {side: tmp_path / f"ext_{side}" for side in trees}
        samples = {(side, size): {"wall": [], "cpu": []} for side in trees for size in sizes}
        for r in range(opts.rounds):
            order = ["before", "after"] if r % 2 == 0 else ["after", "before"]
            for size in sizes:
                for side in order:
                    result = run_worker(trees[side], size, opts, ext_dirs[side])
                    for key in ("wall", "cpu"):
                        samples[(side, size)][key] += result[key]
            console.print(f"round {r + 1}/{opts.rounds} done")
    table = Table(
        title=f"forward + backward ms per step: {opts.before} vs this tree "
        f"({opts.threads} threads, OMP_WAIT_POLICY {opts.wait_policy}, {opts.rounds} ABBA rounds × {opts.steps} steps)"
    )
    for col in (
        "size",
        "before wall med / min",
        "after wall med / min",
        "speed-up med / min",
        "before CPU",
        "after CPU",
    ):
        table.add_column(col, justify="right")
    for size in sizes:
        n, w, h = SIZES[size]
        b, a = samples[("before", size)], samples[("after", size)]
        bm, am = statistics.median(b["wall"]), statistics.median(a["wall"])
        table.add_row(
            f"{n // 1000}k / {w}×{h}",
            f"{bm:.1f} / {min(b['wall']):.1f}",
            f"{am:.1f} / {min(a['wall']):.1f}",
            f"{bm / am:.2f}× / {min(b['wall']) / min(a['wall']):.2f}×",
            f"{statistics.median(b['cpu']):.1f}",
            f"{statistics.median(a['cpu']):.1f}",
        )
    console.print(table)


if __name__ == "__main__":
    main()
