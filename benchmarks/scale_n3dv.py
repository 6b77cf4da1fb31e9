"""SharpTimeGS at Neural3DV size: scene generation and the velocity-aware initialization.

    make bench-scale
    .venv/bin/python benchmarks/scale_n3dv.py --stages generate              # only the scene
    .venv/bin/python benchmarks/scale_n3dv.py --frames 300 --json scale.json

Stages (``--stages``, run in the order given; each is a function in ``STAGES``):

- ``generate`` (``benchmarks/scale_n3dv_scene.py``): the synthetic scene (``dataparsers.synthetic``) in the Neural3DV layout
  (``camXX.mp4`` + ``poses_bounds.npy`` + ``ground_truth/``), ``--cameras`` (20: cam00 is held out
  by the dataparser) × ``--frames`` at ``--width`` × ``--height`` with one ray per pixel. It is
  written once under ``data/scale_n3dv/<size>/`` and reused; the cameras are rendered by
  ``--workers`` processes into ``<size>.parts/``, which survives an interruption (finished cameras
  are kept, a rerun renders only the missing ones) and is renamed to ``<size>`` when complete.
  The default is 12 frames, not Neural3DV's 300: the numpy ray caster takes about 2 s per
  1352×1014 frame on an idle core (about 15 s on the shared development machine at a load of
  11-13), so 20 × 300 frames would take about 1.7 h on two idle cores, and on the shared machine
  20 × 24 frames already took over 2 h; 20 × 12 fit in about 30 min there. The scene's motion
  plays over however many frames are rendered, so 12 frames move like the 300-frame clip
  sampled every 27th frame (``--frames 300`` renders the full size where time allows).

- ``init``: the velocity-aware initialization as ``ns-train sharptime`` runs it (the
  SharpTimeGS datamanager on the Neural3DV dataparser at full resolution, cam00 held out), not
  cached; prints the wall time of each stage and the peak memory (proportional set size summed
  over this process and its frame workers, sampled every 0.5 s), and its accuracy against the
  ground truth: reprojection error, distance of the points to the true surfaces, static/dynamic
  split accuracy and velocity error (:func:`evaluate_init`). The time is extrapolated to
  Neural3DV's 300 frames (as many triangulated frames as the config's stride gives there), both
  at the run's pace and from its CPU time spread over two idle cores (the development machine is
  shared: wall times depend on its load). ``--init-frames`` limits the init to the first frames.

- ``step`` and ``schedule``: training at Neural3DV size (``benchmarks/scale_n3dv_train.py``):
  a full-resolution step on the generated scene split into data wait / render / loss /
  backward / optimizer / strategy, and ``ns-train sharptime`` at 5,700 training images on a
  shortened schedule with the Gaussian count of every checkpoint.

Results are printed and, with ``--json``, written as JSON.
"""

from __future__ import annotations

import dataclasses
import json
import os
import resource
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Literal, Optional, Tuple

import numpy as np
import psutil
import scale_n3dv_train  # beside this script: the training stages
import torch
import tyro
from rich.console import Console
from scale_n3dv_scene import SceneSize, generate_scene  # and the scene generation

from dataparsers.multiview import MultiViewAutoDataParserConfig
from dataparsers.neural3dv import Neural3DVDataParserConfig
from dataparsers.synthetic.ground_truth import GroundTruth, load_ground_truth
from sharptime_ns.datamanager import SharpTimeDatamanagerConfig
from sharptime_ns.init.config import VelocityInitConfig
from sharptime_ns.init.driver import compute_geometry
from sharptime_ns.init.frames import frame_stride, triangulated_frames
from sharptime_ns.init.inputs import MultiViewFrames
from sharptime_ns.init.points import InitPoints, to_init_points
from sharptime_ns.temporal import motion_factor

CONSOLE = Console()
DATA_ROOT = Path("data/scale_n3dv")
NEURAL3DV_FRAMES = 300


def stage_generate(args: ScaleBenchmark, results: Dict) -> None:
    size = SceneSize(args.cameras, args.frames, args.width, args.height)
    start = time.perf_counter()
    existed = (args.data_root / size.name).is_dir()
    scene = generate_scene(size, args.data_root, args.workers)
    seconds = time.perf_counter() - start
    note = "" if size.frames == NEURAL3DV_FRAMES else f" ({size.frames} of Neural3DV's {NEURAL3DV_FRAMES} frames)"
    CONSOLE.print(f"scene {scene}{note}: " + ("cached" if existed else f"generated in {seconds / 60:.1f} min"))
    results["scene"] = dict(
        path=str(scene), **asdict(size), cached=existed, generate_seconds=None if existed else seconds
    )


# ----- init -----


class PeakMemory:
    """Peak of the proportional set size (PSS: shared pages split between their processes) summed
    over this process and its descendants, sampled every ``interval`` seconds while inside."""

    def __init__(self, interval: float = 0.5) -> None:
        self.interval, self.peak = interval, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def sample() -> int:
        me = psutil.Process()
        total = 0
        for p in [me, *me.children(recursive=True)]:
            try:
                total += p.memory_full_info().pss
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                pass
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.sample())
            self._stop.wait(self.interval)

    def __enter__(self) -> "PeakMemory":
        self.peak = self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.sample())


def training_frames(scene: Path, max_frames: Optional[int]) -> Tuple[MultiViewFrames, np.ndarray, float]:
    """The frames the velocity-aware init sees in ``ns-train sharptime --data <scene>`` (the
    SharpTimeGS datamanager on the Neural3DV dataparser at full resolution, cam00 held out), and
    the dataparser's transform [3, 4] and scale from the scene's world to the training world."""
    dataparser = MultiViewAutoDataParserConfig(
        data=scene, neural3dv=Neural3DVDataParserConfig(downscale=1.0, frame_count=max_frames)
    )
    datamanager = SharpTimeDatamanagerConfig(dataparser=dataparser, init="random").setup(device="cpu", test_mode="val")
    outputs = datamanager.train_dataparser_outputs
    return datamanager.multiview_frames(), outputs.dataparser_transform.numpy(), float(outputs.dataparser_scale)


def to_scene_world(points: InitPoints, transform: np.ndarray, scale: float) -> InitPoints:
    """Points and velocities from the training world (x' = scale · (R x + t)) back to the scene's."""
    R, t = transform[:, :3].astype(np.float64), transform[:, 3].astype(np.float64)
    means = (points.means.astype(np.float64) / scale - t) @ R
    velocities = (points.velocities.astype(np.float64) / scale) @ R
    return dataclasses.replace(points, means=means.astype(np.float32), velocities=velocities.astype(np.float32))


def frame_of(times: np.ndarray, num_frames: int) -> np.ndarray:
    """Frame index of normalized times over ``num_frames`` frames."""
    return np.round(np.asarray(times, np.float64) * (num_frames - 1)).astype(np.int64)


def evaluate_init(gt: GroundTruth, frames: MultiViewFrames, points: InitPoints, num_frames: int) -> Dict[str, float]:
    """Accuracy of initial points (``points`` in normalized time) against the ground truth.

    Each point is looked up in the training camera where its depth best matches the true depth
    at its projection, at its own frame (dynamic points) or at the best of five frames spread
    over the sequence (static points): that relative depth residual and the true object there
    (static background or a moving object). Split accuracy counts points on true surfaces
    (residual < 3 %) whose object moves at least a pixel per frame or is static; velocity errors
    compare dynamic points on moving objects with the true motion (central difference over
    the neighbouring frames, per frame). Points beyond the scene's background sphere (the init's
    far background shell) are left out."""
    scene = gt.scene()
    inside = np.linalg.norm(points.means, axis=1) < scene.background_radius  # not the far background shell
    points = dataclasses.replace(
        points, **{f.name: getattr(points, f.name)[inside] for f in dataclasses.fields(points)}
    )
    xyz = points.means.astype(np.float64)
    dyn = points.is_dynamic
    own = frame_of(points.times, num_frames)
    static_frames = np.unique(np.linspace(0, num_frames - 1, 5).round().astype(int))
    residual = np.full(len(xyz), np.inf)
    label = np.full(len(xyz), -2)
    best_frame = own.copy()
    best_px = np.zeros(len(xyz))  # pixels per world unit at the point, in its best camera
    for name in frames.camera_names:
        cam = gt.cameras[name]
        with np.load(gt.folder / f"{name}.npz") as data:
            depth, object_id = data["depth"], data["object_id"]
        uv, z = cam.project(xyz)
        ix, iy = np.floor(uv[:, 0]).astype(int), np.floor(uv[:, 1]).astype(int)
        inside = (ix >= 0) & (ix < cam.width) & (iy >= 0) & (iy < cam.height) & (z > 0)
        for f in range(num_frames):
            sel = np.flatnonzero(inside & ((dyn & (own == f)) | (~dyn & np.isin(f, static_frames))))
            if len(sel) == 0:
                continue
            res = np.abs(z[sel] - depth[f, iy[sel], ix[sel]]) / z[sel]
            better = res < residual[sel]
            b = sel[better]
            residual[b], label[b], best_frame[b] = res[better], object_id[f, iy[b], ix[b]], f
            best_px[b] = cam.K[0, 0] / z[b]
    on_surface = residual < 0.03
    moving = np.flatnonzero(on_surface & (label >= 0))
    true_velocity = np.zeros_like(xyz)
    for f, oid in {(int(best_frame[i]), int(label[i])) for i in moving}:
        sel = moving[(best_frame[moving] == f) & (label[moving] == oid)]
        a, b = max(f - 1, 0), min(f + 1, num_frames - 1)
        track = scene.track_points(xyz[sel], np.full(len(sel), oid), f, np.array([a, b], float))
        true_velocity[sel] = (track[1] - track[0]) / max(b - a, 1)
    speed_px = np.linalg.norm(true_velocity, axis=1) * best_px
    clear = on_surface & ((label == -1) | ((label >= 0) & (speed_px >= 1.0)))
    correct = np.where(dyn, label >= 0, label == -1)
    f = motion_factor(
        torch.from_numpy(points.tscales.astype(np.float64)), torch.from_numpy(points.radii.astype(np.float64))
    )
    measured = points.velocities / f.numpy()[:, None] / (num_frames - 1)  # per frame
    vel = np.flatnonzero(dyn & on_surface & (label >= 0) & (speed_px >= 1.0))
    err = np.linalg.norm(measured[vel] - true_velocity[vel], axis=1)
    speed = np.linalg.norm(true_velocity[vel], axis=1)
    cos = np.sum(measured[vel] * true_velocity[vel], axis=1) / np.maximum(
        np.linalg.norm(measured[vel], axis=1) * speed, 1e-12
    )
    return dict(
        points=len(xyz),
        background_shell_points=int((~inside).sum()),
        dynamic_points=int(dyn.sum()),
        median_surface_residual=float(np.median(residual[np.isfinite(residual)])),
        on_surface_fraction=float(on_surface.mean()),
        split_accuracy=float(correct[clear].mean()),
        dynamic_precision=float(correct[clear & dyn].mean()),
        static_precision=float(correct[clear & ~dyn].mean()),
        velocity_points=len(vel),
        velocity_median_relative_error=float(np.median(err / speed)) if len(vel) else float("nan"),
        velocity_direction_ok=float(np.mean(cos > 0.8)) if len(vel) else float("nan"),
    )


INIT_STAGES = ("images", "masks", "features", "matching", "triangulation", "split", "velocities", "background")


def stage_init(args: ScaleBenchmark, results: Dict) -> None:
    size = SceneSize(args.cameras, args.frames, args.width, args.height)
    scene = args.data_root / size.name
    if not scene.is_dir():
        raise FileNotFoundError(f"{scene} does not exist: run the generate stage first")
    frames, transform, scale = training_frames(scene, args.init_frames)
    num_frames, num_cams = len(frames.image_paths), len(frames.camera_names)
    config = args.init
    CONSOLE.print(f"velocity-aware init on {num_cams} cameras × {num_frames} frames of {scene}")
    start, cpu_start = time.perf_counter(), cpu_seconds()
    with PeakMemory() as memory:
        geometry = compute_geometry(frames, config)
    wall, cpu = time.perf_counter() - start, cpu_seconds() - cpu_start
    points = to_init_points(geometry, config)
    accuracy = evaluate_init(load_ground_truth(scene), frames, to_scene_world(points, transform, scale), num_frames)
    stats = geometry.stats
    seconds = {stage: stats.get(f"seconds_{stage}", 0.0) for stage in INIT_STAGES}
    triangulated = len(triangulated_frames(num_frames, frame_stride(num_frames, config.triangulation)))
    full_size = len(triangulated_frames(NEURAL3DV_FRAMES, frame_stride(NEURAL3DV_FRAMES, config.triangulation)))
    cores = min(2, os.cpu_count() or 1)
    row = dict(
        cameras=num_cams,
        frames=num_frames,
        triangulated_frames=triangulated,
        workers=int(stats["frame_workers"]),
        wall_seconds=wall,
        cpu_seconds=cpu,
        frames_wall_seconds=stats["frames_wall_seconds"],
        stage_seconds=seconds,
        peak_pss_gb=memory.peak / 2**30,
        triangulated_frames_at_300=full_size,
        extrapolated_300_frames_wall_minutes=wall * full_size / triangulated / 60,
        extrapolated_300_frames_idle_2_cores_minutes=cpu * full_size / triangulated / cores / 60,
        mean_reprojection_error=stats["mean_reprojection_error"],
        velocity_matched_fraction=stats["velocity_matched_fraction"],
        config=dataclasses.asdict(config),
        **accuracy,
    )
    results["init"] = row
    per_frame = ", ".join(f"{k} {v:.0f}" for k, v in seconds.items())
    CONSOLE.print(
        f"init: {wall:.0f} s wall, {cpu:.0f} s CPU ({wall / triangulated:.1f} s wall per triangulated frame), "
        f"peak memory {row['peak_pss_gb']:.2f} GiB, {row['workers']} frame workers; {NEURAL3DV_FRAMES} frames "
        f"({full_size} triangulated): ~{row['extrapolated_300_frames_wall_minutes']:.0f} min at this run's pace, "
        f"~{row['extrapolated_300_frames_idle_2_cores_minutes']:.0f} min of its CPU time on {cores} idle cores\n"
        f"  stage seconds (frame stages summed over the workers): {per_frame}\n"
        f"  accuracy: reprojection {row['mean_reprojection_error']:.2f} px, surface residual median "
        f"{accuracy['median_surface_residual']:.4f} ({100 * accuracy['on_surface_fraction']:.0f}% < 3%), split "
        f"{accuracy['split_accuracy']:.3f} (dynamic precision {accuracy['dynamic_precision']:.3f}, static "
        f"{accuracy['static_precision']:.3f}), velocity median relative error "
        f"{accuracy['velocity_median_relative_error']:.3f} ({100 * accuracy['velocity_direction_ok']:.0f}% within "
        f"cos > 0.8; {100 * row['velocity_matched_fraction']:.0f}% of dynamic points matched across frames)"
    )


def cpu_seconds() -> float:
    """User + system CPU seconds of this process and its reaped children (the frame workers)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def stage_train_step(args: ScaleBenchmark, results: Dict) -> None:
    scene = args.data_root / SceneSize(args.cameras, args.frames, args.width, args.height).name
    if not scene.is_dir():
        raise FileNotFoundError(f"{scene} does not exist: run the generate stage first")
    scale_n3dv_train.stage_step(args.train, args.width, args.height, results, scene, PeakMemory)


def stage_train_schedule(args: ScaleBenchmark, results: Dict) -> None:
    t = args.train
    size = SceneSize(t.schedule_cameras, t.schedule_frames, t.schedule_width, t.schedule_height)
    scene = generate_scene(size, args.data_root, args.workers)
    scale_n3dv_train.stage_schedule(t, args.data_root, results, scene, PeakMemory)


Stage = Literal["generate", "init", "step", "schedule"]


@dataclass
class ScaleBenchmark:
    """SharpTimeGS at Neural3DV size (the module docstring)."""

    stages: Tuple[Stage, ...] = ("generate", "init", "step", "schedule")
    """Stages to run, in order."""
    cameras: int = 20
    """Cameras of the rig (cam00 is held out)."""
    frames: int = 12
    """Frames per camera (Neural3DV: 300)."""
    width: int = 1352
    """Frame width."""
    height: int = 1014
    """Frame height."""
    workers: int = min(2, os.cpu_count() or 1)
    """Processes rendering cameras."""
    data_root: Path = DATA_ROOT
    """Where generated scenes are kept."""
    init_frames: Optional[int] = None
    """Init on the first N frames only (default: all)."""
    init: VelocityInitConfig = field(default_factory=lambda: VelocityInitConfig(use_cache=False))
    """The velocity-aware initialization's settings, e.g. ``--init.triangulation.frame-stride 2``."""
    json: Optional[Path] = None
    """Also write the results here."""
    train: tyro.conf.OmitArgPrefixes[scale_n3dv_train.TrainOptions] = field(
        default_factory=scale_n3dv_train.TrainOptions
    )
    """Settings of the training stages."""


STAGES: Dict[str, Callable[[ScaleBenchmark, Dict], None]] = {
    "generate": stage_generate,
    "init": stage_init,
    "step": stage_train_step,
    "schedule": stage_train_schedule,
}


def main(argv: List[str] | None = None) -> None:
    args = tyro.cli(ScaleBenchmark, args=argv, description=__doc__)
    results: Dict = {}
    for stage in args.stages:
        STAGES[stage](args, results)
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=1))
        CONSOLE.print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
