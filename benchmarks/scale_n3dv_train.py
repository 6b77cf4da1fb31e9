"""Training stages of ``benchmarks/scale_n3dv.py``: SharpTimeGS steps at Neural3DV size.

- ``step``: training steps at full resolution on the generated scene (cam00 held out), as
  ``ns-train sharptime`` takes them, each split into data wait (the time ``next_train`` blocks:
  decoding ahead on worker threads vs on the training thread), render, loss, backward,
  optimizer and strategy, with the decoded-image cache off (at 5,700 images a 64-image cache
  almost never hits); Gaussians from splatfacto's random initialization (``--train-gaussians``);
  peak memory of the process.
- ``schedule``: ``ns-train sharptime`` on the command line at Neural3DV's image count (20
  cameras × 300 frames, cam00 held out: 5,700 training images) with small frames and random
  initialization (``--schedule-gaussians``; splatfacto's 50,000 random Gaussians in its 10-unit
  box overlap so much that a 136×102 step takes seconds on the CPU), on a shortened schedule (``--schedule-steps``, stage 2 from a third of it),
  saving a checkpoint every ``--schedule-save-every`` steps; reads the Gaussian count from every
  checkpoint (stage 1 must densify, stage 2 must hold the count), how many Gaussians stage 2
  relocated (the model's ``relocated`` training metric) and the run's peak memory.
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List

import numpy as np
import torch
from nerfstudio.engine.optimizers import Optimizers
from rich.console import Console

from dataparsers.multiview import MultiViewAutoDataParserConfig
from dataparsers.neural3dv import Neural3DVDataParserConfig
from sharptime_ns.config import sharptime

CONSOLE = Console()
STEP_PARTS = ("data_wait", "render", "loss", "backward", "optimizer", "strategy")


@dataclass
class TrainOptions:
    """Settings of the ``step`` and ``schedule`` stages."""

    train_gaussians: int = 100_000
    """step: Gaussians (random initialization)."""
    train_steps: int = 10
    """step: timed steps per setting."""
    prefetch_workers: int = 2
    """step: decoding threads (compared with 0)."""
    schedule_cameras: int = 20
    """schedule: cameras of the rig (cam00 is held out)."""
    schedule_frames: int = 300
    """schedule: frames per camera."""
    schedule_width: int = 136
    """schedule: frame width (small: the count matters)."""
    schedule_height: int = 102
    """schedule: frame height."""
    schedule_steps: int = 2400
    """schedule: --max-num-iterations."""
    schedule_gaussians: int = 5000
    """schedule: random initial Gaussians."""
    schedule_save_every: int = 200
    """schedule: steps between checkpoints."""
    seed: int = 0
    """Seed of the training runs."""


def build_pipeline(scene: Path, gaussians: int, prefetch_workers: int, seed: int):
    """The SharpTimeGS pipeline and optimizers of ``ns-train sharptime --data scene`` with random
    initialization at full resolution."""
    torch.manual_seed(seed)
    config = copy.deepcopy(sharptime.config)
    config.pipeline.datamanager.dataparser = MultiViewAutoDataParserConfig(
        data=scene, neural3dv=Neural3DVDataParserConfig(downscale=1.0)
    )
    config.pipeline.datamanager.init_method = "random"
    config.pipeline.datamanager.prefetch_workers = prefetch_workers
    config.pipeline.datamanager.image_cache_size = 0  # at 5,700 images a 64-image cache almost never hits
    config.pipeline.model.num_random = gaussians
    pipeline = config.pipeline.setup(device="cpu", test_mode="val", world_size=1, local_rank=0)
    optimizers = Optimizers(config.optimizers, pipeline.get_param_groups())
    return pipeline, optimizers


def timed_steps(pipeline, optimizers: Optimizers, steps: int) -> Dict[str, List[float]]:
    """Seconds of each part of ``steps`` training steps (the first step, which builds caches, is
    not counted)."""
    model, datamanager = pipeline.model, pipeline.datamanager
    model.train()
    times: Dict[str, List[float]] = {part: [] for part in STEP_PARTS}
    for step in range(steps + 1):
        marks = [time.perf_counter()]
        model.step_cb(optimizers, step)
        optimizers.zero_grad_all()
        camera, batch = datamanager.next_train(step)
        marks.append(time.perf_counter())
        outputs = model.get_outputs(camera)
        marks.append(time.perf_counter())
        loss = sum(model.get_loss_dict(outputs, batch, model.get_metrics_dict(outputs, batch)).values())
        marks.append(time.perf_counter())
        loss.backward()
        marks.append(time.perf_counter())
        optimizers.optimizer_step_all()
        optimizers.scheduler_step_all(step)
        marks.append(time.perf_counter())
        model.step_post_backward(step)
        marks.append(time.perf_counter())
        if step > 0:
            for part, a, b in zip(STEP_PARTS, marks[:-1], marks[1:]):
                times[part].append(b - a)
    return times


def stage_step(args: TrainOptions, width: int, height: int, results: Dict, scene: Path, memory_probe) -> None:
    rows = {}
    for workers in (args.prefetch_workers, 0):
        with memory_probe() as memory:
            pipeline, optimizers = build_pipeline(scene, args.train_gaussians, workers, args.seed)
            images = len(pipeline.datamanager.train_dataset)
            times = timed_steps(pipeline, optimizers, args.train_steps)
        medians = {part: float(np.median(v)) for part, v in times.items()}
        step = sum(medians.values())
        rows[f"prefetch_workers={workers}"] = dict(
            images=images,
            gaussians=args.train_gaussians,
            steps=args.train_steps,
            median_seconds=medians,
            step_seconds=step,
            data_wait_fraction=medians["data_wait"] / step,
            peak_pss_gb=memory.peak / 2**30,
        )
        parts = ", ".join(f"{p} {1000 * s:.0f}" for p, s in medians.items())
        CONSOLE.print(
            f"step at {width}×{height}, {images} training images, {args.train_gaussians} Gaussians, "
            f"{workers} prefetch workers: {1000 * step:.0f} ms (median ms: {parts}); data wait "
            f"{100 * medians['data_wait'] / step:.1f} % of the step; peak memory {memory.peak / 2**30:.2f} GiB"
        )
        pipeline.datamanager.train_prefetcher.close()
        del pipeline, optimizers
    results["step"] = rows


def checkpoint_counts(models: Path) -> Dict[int, int]:
    """Gaussian count in every checkpoint of a run, by step."""
    counts = {}
    for path in sorted(models.glob("step-*.ckpt")):
        state = torch.load(path, map_location="cpu", weights_only=False)  # our own run's checkpoints
        counts[int(state["step"])] = int(state["pipeline"]["_model.gauss_params.means"].shape[0])
    return counts


def last_logged(run: Path, tag: str) -> float:
    """The last value of a scalar that ``ns-train`` logged to TensorBoard in ``run`` (NaN if none)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run))
    events.Reload()
    if tag not in events.Tags()["scalars"]:
        return float("nan")
    return float(events.Scalars(tag)[-1].value)


def stage_schedule(args: TrainOptions, data_root: Path, results: Dict, scene: Path, memory_probe) -> None:
    out = data_root / "runs"
    steps, save_every = args.schedule_steps, args.schedule_save_every
    command = [
        str(Path(sys.executable).parent / "ns-train"),
        "sharptime",
        "--data",
        str(scene),
        "--output-dir",
        str(out),
        "--experiment-name",
        scene.name,
        "--timestamp",
        "schedule",
        "--vis",
        "tensorboard",
        "--max-num-iterations",
        str(steps),
        "--steps-per-save",
        str(save_every),
        "--save-only-latest-checkpoint",
        "False",
        "--steps-per-eval-image",
        str(steps + 1),
        "--machine.seed",
        str(args.seed),
        "--pipeline.datamanager.init-method",
        "random",
        "--pipeline.model.num-random",
        str(args.schedule_gaussians),
        "neural3dv",
        "--downscale",
        "1",
    ]
    CONSOLE.print("running " + " ".join(command))
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "2"))
    start = time.perf_counter()
    with memory_probe() as memory:
        done = subprocess.run(command, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"ns-train failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    run = out / scene.name / "sharptime" / "schedule"
    counts = checkpoint_counts(run / "nerfstudio_models")
    relocated = last_logged(run, "Train Metrics Dict/relocated")
    stage2 = int(steps * sharptime.config.pipeline.model.stage1_fraction)  # the strategy's stage2_start
    stage1_counts = [c for s, c in counts.items() if s < stage2]
    stage2_counts = [c for s, c in counts.items() if s >= stage2]
    results["schedule"] = dict(
        command=" ".join(command),
        seconds=seconds,
        peak_pss_gb=memory.peak / 2**30,
        stage2_start=stage2,
        counts={str(s): c for s, c in counts.items()},
        relocated=relocated,
        stage1_densified=len(set(stage1_counts)) > 1,
        stage2_held=len(set(stage2_counts)) == 1,
    )
    listed = ", ".join(f"{s}: {c}" for s, c in counts.items())
    CONSOLE.print(
        f"ns-train sharptime at {args.schedule_cameras} cameras × {args.schedule_frames} frames "
        f"({args.schedule_width}×{args.schedule_height}), {steps} steps (stage 2 from {stage2}) in {seconds / 60:.1f} "
        f"min, peak memory {memory.peak / 2**30:.2f} GiB\n  Gaussians by checkpoint step: {listed}\n"
        f"  stage 1 densifies: {results['schedule']['stage1_densified']}; stage 2 holds the count: "
        f"{results['schedule']['stage2_held']} ({relocated:.0f} Gaussians relocated in stage 2)"
    )
