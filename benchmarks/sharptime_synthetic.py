"""SharpTimeGS on the Neural3DV-like benchmark scene: the full model against each ablation, same budget.

    .venv/bin/python benchmarks/sharptime_synthetic.py                                # every variant, 3 seeds
    .venv/bin/python benchmarks/sharptime_synthetic.py --variants full no-lifespan --seeds 0 1 2
    .venv/bin/python benchmarks/sharptime_synthetic.py --jobs 2 --json results.json   # two runs at a time

Every variant trains with the demo preset (``ns-train sharptime-demo``: same scene, schedule and
densification threshold) on the demo scene (the transient family of
:mod:`dataparsers.synthetic.transient_scene`: 21 cameras on a forward-facing grid, camera 00 in
its centre held out, 30 frames of 160×120, Neural3DV format), once per seed, then renders the
held-out camera at every frame. Per run:

- PSNR / SSIM / SSIM2 (SSIM with data_range 2, the papers' column) and LPIPS when its weights are
  on the machine, against the held-out video (as ``ns-eval``);
- PSNR on dynamic pixels (a moving or transient object in the ground truth), the mean PSNR of
  the frames within ±2 of a transient event (the flame jumps, goes out or comes back; the box
  pops in or out), and the PSNR of those frames on the transient objects' region only (every
  pixel the flame or the box covers in the event's window);
- static flicker: temporal std of the pixels static in the ground truth through the whole
  sequence (0–255; the ground-truth video's own value printed beside it);
- Gaussians alive per frame (temporal opacity ≥ the render threshold), averaged over frames, and
  the held-out render rate (frames / s on this machine);
- training time (wall clock, the velocity-aware init included when not cached yet).

Rows are mean ± std over the seeds. Variants (``--variants``): full, no-lifespan (r ≡ 0,
FreeTimeGS's temporal model with our velocity-aware init), freetimegs (r ≡ 0 and FreeTimeGS's init:
no static/dynamic split, every point at its frame's time), 4dgs (f ≡ 1, Gaussian temporal
opacity), absgs (no custom densification: AbsGS throughout), random-init, and the fidelity
settings: unit-normalized, lr-run (decays stretched to the run), no-opacity-reg, no-lifespan-reg,
and shorter initial supports of the dynamic points (dyn-*).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Callable, Dict, List, Optional, Tuple

import cv2
import numpy as np
import torch
import tyro
from rich.console import Console

from dataparsers.synthetic.ground_truth import load_ground_truth
from sharptime_ns.config import sharptime_demo_config
from sharptime_ns.datamanager import DEMO_DATA, ensure_demo_scene
from splat4d import video_metrics
from splat4d.training import train_in_process

CONSOLE = Console()
Override = Callable[[object], None]  # edits a TrainerConfig in place


def model_option(name: str, value) -> Override:
    return lambda cfg: setattr(cfg.pipeline.model, name, value)


def init_option(name: str, value) -> Override:
    return lambda cfg: setattr(cfg.pipeline.datamanager.init, name, value)


def init_mask_option(name: str, value) -> Override:
    return lambda cfg: setattr(cfg.pipeline.datamanager.init.masks, name, value)


VARIANTS: Dict[str, List[Override]] = {
    "full": [],
    "no-lifespan": [model_option("learn_radius", False)],
    # the paper's flow-only dynamic masks (no plate-change test)
    "flow-masks": [init_mask_option("change_threshold", 0.0)],
    "no-lifespan-flow-masks": [model_option("learn_radius", False), init_mask_option("change_threshold", 0.0)],
    # FreeTimeGS: no lifespan and its init (no static points; the background shell stays static)
    "freetimegs": [model_option("learn_radius", False), init_mask_option("static_split", False)],
    "full-no-split": [init_mask_option("static_split", False)],  # the lifespan on FreeTimeGS's init
    "4dgs": [model_option("temporal_model", "4dgs")],
    "absgs": [model_option("densification", "absgs")],
    "random-init": [lambda cfg: setattr(cfg.pipeline.datamanager, "init_method", "random")],
    "unit-normalized": [model_option("time_unit", "normalized")],
    "lr-run": [model_option("lr_schedule", "run")],
    "no-opacity-reg": [model_option("opacity_reg_weight", 0.0)],
    "no-lifespan-reg": [model_option("lifespan_reg_weight", 0.0)],
    # fast motion: the initial support of dynamic points (flat top r, fall-off σt); r ½ is the default
    "dyn-radius-paper": [init_option("dynamic_radius_frames", 1.0)],
    "dyn-radius-quarter": [init_option("dynamic_radius_frames", 0.25)],
    "dyn-radius-zero": [init_option("dynamic_radius_frames", 0.0)],
    "dyn-lifespan-3": [init_option("dynamic_lifespan_frames", 3.0)],
}
METRICS = (
    "psnr",
    "ssim",
    "ssim2",
    "lpips",
    "dynamic_psnr",
    "transient_psnr",
    "transient_region_psnr",
    "flicker",
    "alive",
    "fps",
    "train_s",
)


@dataclass
class Result:
    variant: str
    seed: int
    metrics: Dict[str, float]
    gt_flicker: float
    gaussians: int


def train(variant: str, seed: int, scene: Path, out: Path, steps: Optional[int]) -> Tuple[object, float]:
    """Trains one variant with the demo preset; returns the trainer and the wall-clock seconds."""
    cfg = sharptime_demo_config()
    cfg.machine.seed = seed
    cfg.pipeline.datamanager.data = scene
    cfg.pipeline.datamanager.dataparser.data = scene
    if steps is not None:
        cfg.max_num_iterations = steps
    cfg.output_dir, cfg.experiment_name, cfg.vis = out, f"{variant}-seed{seed}", "tensorboard"
    cfg.steps_per_eval_image = cfg.steps_per_eval_all_images = 10**9
    cfg.steps_per_save = cfg.max_num_iterations  # one checkpoint at the end
    for override in VARIANTS[variant]:
        override(cfg)
    start = time.perf_counter()
    trainer = train_in_process(cfg)
    return trainer, time.perf_counter() - start


@torch.no_grad()
def evaluate(variant: str, seed: int, trainer, scene: Path, seconds: float) -> Result:
    """Metrics over every frame of the first held-out camera (see the module docstring)."""
    pipeline = trainer.pipeline
    pipeline.eval()
    model, dataset = pipeline.model, pipeline.datamanager.eval_dataset
    names, frames = dataset.metadata["camera_names"], dataset.metadata["frame_indices"]
    camera = sorted(set(names))[0]
    ids = sorted((frames[i], i) for i in range(len(dataset)) if names[i] == camera)
    per_frame: List[Dict[str, float]] = []
    renders, targets, alive = [], [], []
    render_seconds = 0.0
    model.get_outputs_for_camera(dataset.cameras[ids[0][1] : ids[0][1] + 1].to(model.device))  # warm-up, untimed
    for _, i in ids:
        cam = dataset.cameras[i : i + 1].to(model.device)
        start = time.perf_counter()
        outputs = model.get_outputs_for_camera(cam)
        render_seconds += time.perf_counter() - start
        batch = pipeline.datamanager.cached_eval[i]
        per_frame.append(model.get_image_metrics_and_images(outputs, batch)[0])
        renders.append(outputs["rgb"].cpu().numpy())
        image = batch["image"][..., :3].cpu()
        targets.append((image.float() / 255.0 if image.dtype == torch.uint8 else image.float()).numpy())
        alive.append(int(model.alive(float(cam.times.flatten()[0]) * model.time_scale).sum()))
    pred, gt = np.stack(renders), np.stack(targets)
    truth = load_ground_truth(scene)
    object_ids = truth.camera_frames(camera)["object_id"][[f for f, _ in ids]]
    if object_ids.shape[1:] != pred.shape[1:3]:  # the parser downscaled the images: nearest-neighbour ids
        object_ids = np.stack([cv2.resize(o, pred.shape[2:0:-1], interpolation=cv2.INTER_NEAREST) for o in object_ids])
    events = truth.transient_events
    window = video_metrics.event_window(events, len(ids))
    static = video_metrics.always_static(object_ids)
    metrics = {key: float(np.mean([m[key] for m in per_frame])) for key in per_frame[0]}
    metrics.update(
        dynamic_psnr=video_metrics.masked_psnr(pred, gt, object_ids >= 0),
        transient_psnr=video_metrics.window_psnr(pred, gt, window),
        transient_region_psnr=video_metrics.event_region_psnr(
            pred, gt, object_ids, truth.scene().transient_object_ids(), events
        ),
        flicker=video_metrics.static_flicker(pred, static),
        alive=float(np.mean(alive)),
        fps=len(ids) / render_seconds,
        train_s=seconds,
    )
    return Result(variant, seed, metrics, video_metrics.static_flicker(gt, static), len(model.gauss_params["means"]))


def mean_std(results: List[Result], key: str) -> str:
    values = [r.metrics[key] for r in results if key in r.metrics]
    if not values:
        return "–"
    digits = {"ssim": 4, "ssim2": 4, "lpips": 4, "flicker": 3, "alive": 0, "train_s": 0, "fps": 1}.get(key, 2)
    return f"{np.mean(values):.{digits}f} ± {np.std(values):.{digits}f}"


def print_tables(results: List[Result]) -> None:
    """One markdown row per variant (mean ± std over its seeds)."""
    variants = list(dict.fromkeys(r.variant for r in results))
    columns = ["variant", "seeds", *METRICS, "Gaussians"]
    rows = []
    for variant in variants:
        runs = [r for r in results if r.variant == variant]
        gaussians = f"{np.mean([r.gaussians for r in runs]):,.0f}"
        row = [variant, ",".join(str(r.seed) for r in runs), *(mean_std(runs, k) for k in METRICS), gaussians]
        rows.append("| " + " | ".join(row) + " |")
    title = f"SharpTimeGS, transient benchmark scene, held-out camera ({torch.get_num_threads()} threads)"
    markdown = [title, "", "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns), *rows]
    markdown.append(f"\nground-truth static flicker (the held-out video itself): {results[0].gt_flicker:.3f}")
    print("\n".join(markdown), flush=True)


@dataclass
class Benchmark:
    """SharpTimeGS variants on the Neural3DV-like benchmark scene (see the module docstring)."""

    scene: Path = DEMO_DATA
    """Scene folder (the demo scene, generated on first use when it is the default)."""
    variants: List[str] = field(default_factory=lambda: ["full", "no-lifespan", "4dgs", "absgs", "random-init"])
    """Variants to train: any of VARIANTS (see the module docstring)."""
    seeds: List[int] = field(default_factory=lambda: [0, 1, 2])
    """Training seeds of every variant."""
    steps: Optional[int] = None
    """Training steps (None: the demo preset's)."""
    jobs: int = 1
    """Runs at a time, each in its own process with OMP_NUM_THREADS = 2 / jobs (at least 1)."""
    output_dir: Path = Path("outputs/bench-sharptime")
    json: Optional[Path] = None
    """Also write the per-run results here (the rows are recomputed from it with --from-json)."""
    from_json: List[Path] = field(default_factory=list)
    """Print the tables of earlier runs' JSON files instead of training."""
    reevaluate: Optional[Path] = None
    """Recompute the metrics of the runs listed in this JSON from their checkpoints under
    --output-dir (no training; their training times are kept) and print the tables."""
    run_one: Optional[str] = None
    """Internal: train and evaluate VARIANT:SEED in this process and print its result as JSON."""


def run_one(bench: Benchmark, spec: str) -> Result:
    variant, seed = spec.rsplit(":", 1)
    trainer, seconds = train(variant, int(seed), bench.scene, bench.output_dir, bench.steps)
    return evaluate(variant, int(seed), trainer, bench.scene, seconds)


def reevaluate(bench: Benchmark, path: Path) -> List[Result]:
    from nerfstudio.utils.eval_utils import eval_setup

    results = []
    for old in (Result(**r) for r in json.loads(path.read_text())):
        config = sorted(bench.output_dir.glob(f"{old.variant}-seed{old.seed}/*/*/config.yml"))[-1]
        _, pipeline, _, _ = eval_setup(config, test_mode="test")
        results.append(
            evaluate(old.variant, old.seed, SimpleNamespace(pipeline=pipeline), bench.scene, old.metrics["train_s"])
        )
        CONSOLE.log(f"{old.variant} seed {old.seed}: re-evaluated from {config}")
    return results


def run_in_subprocess(bench: Benchmark, spec: str, threads: int) -> Result:
    """One run in its own process (separate torch thread pools, no state shared between runs)."""
    args = [
        sys.executable,
        __file__,
        "--scene",
        str(bench.scene),
        "--output-dir",
        str(bench.output_dir),
        "--run-one",
        spec,
    ] + ([] if bench.steps is None else ["--steps", str(bench.steps)])
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "OMP_WAIT_POLICY": "PASSIVE"}
    done = subprocess.run(args, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"run {spec} failed:\n{done.stderr[-3000:]}")
    line = [ln for ln in done.stdout.splitlines() if ln.startswith("RESULT ")][-1]
    return Result(**json.loads(line[len("RESULT ") :]))


def main(bench: Benchmark) -> List[Result]:
    unknown = sorted(set(bench.variants) - set(VARIANTS))
    if unknown:
        raise SystemExit(f"unknown variants {unknown}; choose from {list(VARIANTS)}")
    if bench.from_json:
        results = [Result(**r) for path in bench.from_json for r in json.loads(path.read_text())]
        print_tables(results)
        return results
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", torch.get_num_threads())))
    ensure_demo_scene(bench.scene)
    if bench.reevaluate is not None:
        results = reevaluate(bench, bench.reevaluate)
        if bench.json is not None:
            bench.json.write_text(json.dumps([asdict(r) for r in results], indent=1))
        print_tables(results)
        return results
    if bench.run_one is not None:
        result = run_one(bench, bench.run_one)
        print("RESULT " + json.dumps(asdict(result)), flush=True)
        return [result]
    specs = [f"{v}:{s}" for v in bench.variants for s in bench.seeds]
    threads = max(1, 2 // bench.jobs)
    results: List[Result] = []
    with ThreadPoolExecutor(bench.jobs) as pool:
        for result in pool.map(lambda spec: run_in_subprocess(bench, spec, threads), specs):
            CONSOLE.log(
                f"{result.variant} seed {result.seed}: " + ", ".join(f"{k} {v:.3f}" for k, v in result.metrics.items())
            )
            results.append(result)
            if bench.json is not None:
                bench.json.write_text(json.dumps([asdict(r) for r in results], indent=1))
    print_tables(results)
    return results


if __name__ == "__main__":
    main(tyro.cli(Benchmark, description=__doc__.split("\n")[0]))
