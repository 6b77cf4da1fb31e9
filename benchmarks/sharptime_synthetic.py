"""SharpTimeGS on the synthetic multi-view scene: the full model against each ablation, same budget.

    .venv/bin/python benchmarks/sharptime_synthetic.py                     # every variant, demo schedule
    .venv/bin/python benchmarks/sharptime_synthetic.py --steps 2000 --variants full no-lifespan
    .venv/bin/python benchmarks/sharptime_synthetic.py --json results.json

Every variant trains through nerfstudio's trainer (in this process) on the same scene (the demo
scene of ``ns-train sharptime``: 9 cameras, 30 frames, 160×120, camera 00 held out) with the same
number of steps and the demo's settings (``make demo``: ``--densify-grad-thresh``), then renders
the held-out camera at every frame. Printed per variant:

- PSNR / SSIM / SSIM2 (SSIM with data_range 2, the papers' column) on the held-out camera;
- the Gaussian count at the end and the training time (wall clock, initialization included; the
  velocity-aware init is cached in the scene folder after its first run);
- static-region flicker: mean |I_t − I_{t−1}| (0–255 scale) of the held-out renders over the pixels
  that are static in the ground truth at both t and t − 1 (no moving object), the same measured on
  the ground-truth images beside it as the reference.

Variants (``--variants``): full, no-lifespan (r ≡ 0), absgs (AbsGS densification throughout),
random-init (no velocity-aware initialization), no-background (velocity-aware init without its
background shell), 4dgs (f ≡ 1, Gaussian temporal opacity), and the time units: unit-normalized,
unit-seconds (the full model uses frames).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from dataparsers.synthetic.ground_truth import load_ground_truth
from dataparsers.synthetic.writers import SynthesisConfig, write_scene
from sharptime_ns.config import sharptime
from splat4d.training import train_in_process

CONSOLE = Console()
DEMO_GRAD_THRESH = 0.002  # make demo's --pipeline.model.densify-grad-thresh
Override = Callable[[object], None]  # edits a TrainerConfig in place


def model_option(name: str, value) -> Override:
    return lambda cfg: setattr(cfg.pipeline.model, name, value)


VARIANTS: Dict[str, List[Override]] = {
    "full": [],
    "no-lifespan": [model_option("learn_radius", False)],
    "absgs": [model_option("densification", "absgs")],
    "random-init": [lambda cfg: setattr(cfg.pipeline.datamanager, "init", "random")],
    "no-background": [lambda cfg: setattr(cfg.pipeline.datamanager.velocity_init, "background_points", 0)],
    "4dgs": [model_option("temporal_model", "4dgs")],
    "unit-normalized": [model_option("time_unit", "normalized")],
    "unit-seconds": [model_option("time_unit", "seconds")],
}


@dataclass
class Result:
    variant: str
    psnr: float
    ssim: float
    ssim2: float
    gaussians: int
    train_seconds: float
    flicker: float
    gt_flicker: float


def train(variant: str, scene: Path, out: Path, steps: int, grad_thresh: float, seed: int) -> tuple[object, float]:
    """Trains one variant; returns the trainer and the wall-clock seconds (init included)."""
    cfg = copy.deepcopy(sharptime.config)
    cfg.pipeline.model.densify_grad_thresh = grad_thresh
    cfg.machine.seed = seed
    cfg.pipeline.datamanager.data = scene
    cfg.pipeline.datamanager.dataparser.data = scene
    cfg.max_num_iterations = steps
    cfg.output_dir, cfg.experiment_name, cfg.vis = out, variant, "tensorboard"
    cfg.steps_per_eval_image = cfg.steps_per_eval_all_images = 10**9
    cfg.steps_per_save = steps  # one checkpoint at the end
    for override in VARIANTS[variant]:
        override(cfg)
    start = time.perf_counter()
    trainer = train_in_process(cfg)
    return trainer, time.perf_counter() - start


@torch.no_grad()
def evaluate(variant: str, trainer, scene: Path, seconds: float) -> Result:
    """Metrics over every frame of the held-out camera(s), flicker over the first held-out camera."""
    pipeline = trainer.pipeline
    pipeline.eval()
    model, dataset = pipeline.model, pipeline.datamanager.eval_dataset
    meta = pipeline.datamanager.eval_dataset.metadata
    names, frames = meta["camera_names"], meta["frame_indices"]
    metrics: List[Dict[str, float]] = []
    renders: Dict[int, np.ndarray] = {}
    first_camera = sorted(set(names))[0]
    for i in range(len(dataset)):
        outputs = model.get_outputs_for_camera(dataset.cameras[i : i + 1].to(model.device))
        batch = pipeline.datamanager.cached_eval[i]
        metrics.append(model.get_image_metrics_and_images(outputs, batch)[0])
        if names[i] == first_camera:
            renders[frames[i]] = outputs["rgb"].cpu().numpy() * 255.0
    truth = load_ground_truth(scene).camera_frames(first_camera)
    order = sorted(renders)
    pred = np.stack([renders[f] for f in order])
    gt = truth["rgb"][order].astype(np.float64)
    static = ~truth["dynamic_mask"][order]
    both = static[1:] & static[:-1]
    flicker = float(np.abs(pred[1:] - pred[:-1]).mean(-1)[both].mean())
    gt_flicker = float(np.abs(gt[1:] - gt[:-1]).mean(-1)[both].mean())
    mean = {k: float(np.mean([m[k] for m in metrics])) for k in ("psnr", "ssim", "ssim2")}
    return Result(variant, mean["psnr"], mean["ssim"], mean["ssim2"], len(model.gauss_params["means"]), seconds,
                  flicker, gt_flicker)  # fmt: skip


def ensure_scene(path: Path) -> Path:
    if not path.exists():
        CONSOLE.log(f"writing the synthetic scene to {path}")
        write_scene("easyvolcap", path, SynthesisConfig())
    return path


def print_table(results: List[Result], steps: int) -> None:
    table = Table(title=f"SharpTimeGS, synthetic scene, held-out camera, {steps} steps, "
                        f"{torch.get_num_threads()} threads")  # fmt: skip
    for column in ("variant", "PSNR", "SSIM", "SSIM2", "Gaussians", "train s", "flicker", "GT flicker"):
        table.add_column(column, justify="left" if column == "variant" else "right")
    for r in results:
        table.add_row(r.variant, f"{r.psnr:.2f}", f"{r.ssim:.4f}", f"{r.ssim2:.4f}", f"{r.gaussians:,}",
                      f"{r.train_seconds:.0f}", f"{r.flicker:.3f}", f"{r.gt_flicker:.3f}")  # fmt: skip
    CONSOLE.print(table)
    header = "| variant | PSNR | SSIM | SSIM2 | Gaussians | train s | flicker | GT flicker |"
    rows = [f"| {r.variant} | {r.psnr:.2f} | {r.ssim:.4f} | {r.ssim2:.4f} | {r.gaussians:,} | "
            f"{r.train_seconds:.0f} | {r.flicker:.3f} | {r.gt_flicker:.3f} |" for r in results]  # fmt: skip
    CONSOLE.print("\n".join([header, "|" + "---|" * 8, *rows]), markup=False, highlight=False)


def main(argv: Optional[List[str]] = None) -> List[Result]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scene", type=Path, default=Path("data/splat4d-demo"),
                        help="scene folder (written with the demo's settings when missing)")  # fmt: skip
    parser.add_argument("--steps", type=int, default=sharptime.config.pipeline.model.demo_steps)
    parser.add_argument("--densify-grad-thresh", type=float, default=DEMO_GRAD_THRESH,
                        help="AbsGS densification threshold of every variant (make demo's)")  # fmt: skip
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--seed", type=int, default=sharptime.config.machine.seed, help="seed of every variant's training")
    parser.add_argument("--output-dir", type=Path, default=Path("outputs/bench-sharptime"))
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args(argv)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", torch.get_num_threads())))
    scene = ensure_scene(args.scene)
    results = []
    for variant in args.variants:
        CONSOLE.rule(variant)
        trainer, seconds = train(variant, scene, args.output_dir, args.steps, args.densify_grad_thresh, args.seed)
        results.append(evaluate(variant, trainer, scene, seconds))
        CONSOLE.log(results[-1])
    print_table(results, args.steps)
    if args.json is not None:
        args.json.write_text(json.dumps([r.__dict__ for r in results], indent=1))
    return results


if __name__ == "__main__":
    main()
