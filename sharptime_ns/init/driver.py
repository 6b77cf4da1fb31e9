"""The velocity-aware initialization from start to end: the cache, then per-frame masks and
triangulation, velocities and the merge (see the package docstring)."""

from __future__ import annotations

import dataclasses
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np
from nerfstudio.utils.rich_utils import CONSOLE

from dataparsers.images import read_rgb
from sharptime_ns.init.background import background_shell
from sharptime_ns.init.config import VelocityInitConfig
from sharptime_ns.init.frames import (
    FrameResult,
    FrameWorker,
    frame_stride,
    map_frames,
    num_frame_workers,
    triangulated_frames,
)
from sharptime_ns.init.inputs import MultiViewFrames, VelocityInitWarning, validate
from sharptime_ns.init.merge import cap_indices, voxel_downsample
from sharptime_ns.init.points import Geometry, InitPoints, to_init_points
from sharptime_ns.init.timing import timed
from sharptime_ns.init.triangulation import FramePoints
from sharptime_ns.init.user_masks import find_user_masks
from sharptime_ns.init.velocity import estimate_velocities
from splat4d.cache import cache_path, file_stats, load_or_compute
from splat4d.progress import progress_bar

CACHE_VERSION = 4  # bump when the geometry changes for the same inputs and settings


def velocity_aware_init(frames: MultiViewFrames, config: VelocityInitConfig) -> Optional[InitPoints]:
    """Velocity-aware initial Gaussians (see the package docstring), in normalized sequence time.

    Args:
        frames: the multi-view video (paths, calibration, normalized times, data dir).
        config: initialization settings.

    Returns:
        The initial points, or None (after a :class:`VelocityInitWarning`) when triangulation
        yields fewer than ``config.min_points`` points: the caller then uses random init.
    """
    validate(frames)
    path = cache_file(frames, config) if config.use_cache else None
    entry = load_or_compute(path, lambda: compute_geometry(frames, config).to_entry(), "SharpTime init")
    geometry = Geometry.from_entry(entry)
    if geometry.num_triangulated < config.min_points:
        msg = (
            f"SharpTime velocity-aware init: triangulation yielded only {geometry.num_triangulated} points "
            f"(< min_points={config.min_points}); falling back to random initialization."
        )
        CONSOLE.print(f"[bold yellow]WARNING: {msg}")
        warnings.warn(msg, VelocityInitWarning, stacklevel=2)
        return None
    return to_init_points(geometry, config)


def cache_file(frames: MultiViewFrames, config: VelocityInitConfig) -> Path:
    """``<data_dir>/.splat4d_cache/sharptime_init_<hash>.pt`` for these inputs and settings: the
    geometry-related settings, the image (and user mask) files with size and mtime, the
    calibration, times and camera names."""
    data_dir = Path(frames.data_dir)
    masks = config.masks
    user_masks = find_user_masks(data_dir, masks.masks_dir, frames.camera_names) if masks.use_user_masks else None
    key = {
        "settings": geometry_settings(config),
        "images": [file_stats(row, data_dir) for row in frames.image_paths],
        "masks": file_stats(user_masks.files, data_dir) if user_masks else [],
        "Ks": np.round(np.asarray(frames.Ks, np.float64), 9),
        "w2c": np.round(np.asarray(frames.w2c, np.float64), 9),
        "times": np.round(np.asarray(frames.times, np.float64), 12),
        "cameras": list(frames.camera_names),
    }
    return cache_path(data_dir, "sharptime_init", CACHE_VERSION, key)


def geometry_settings(config: VelocityInitConfig) -> Dict[str, Any]:
    """The settings that change the geometry: all but the temporal initial values, the point
    minimum, caching, progress and parallelism; SIFT on the CPU or GPU differs only slightly, so
    a cache from either serves both."""
    triangulation = dataclasses.asdict(config.triangulation)
    for name in ("num_threads", "sift_gpu"):
        del triangulation[name]
    return {
        "seed": config.seed,
        "masks": dataclasses.asdict(config.masks),
        "triangulation": triangulation,
        "velocity": dataclasses.asdict(config.velocity),
        "merge": dataclasses.asdict(config.merge),
    }


@dataclass
class _Frames:
    """The per-frame results gathered over the triangulated frames."""

    static_xyz: List[np.ndarray] = field(default_factory=list)
    static_rgb: List[np.ndarray] = field(default_factory=list)
    dynamic: List[FramePoints] = field(default_factory=list)
    depths: List[np.ndarray] = field(default_factory=list)
    errors: List[np.ndarray] = field(default_factory=list)
    mask_fractions: List[float] = field(default_factory=list)
    user_masks: int = 0
    timings: Dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0

    def add(self, r: FrameResult) -> None:
        self.static_xyz.append(r.static_xyz)
        self.static_rgb.append(r.static_rgb)
        self.dynamic.append(r.dynamic)
        self.depths.append(r.depths)
        self.errors.append(r.errors)
        self.mask_fractions.extend(r.mask_fractions)
        self.user_masks += r.user_masks
        for stage, seconds in r.timings.items():
            self.timings[stage] = self.timings.get(stage, 0.0) + seconds


def _process_frames(frames: MultiViewFrames, config: VelocityInitConfig, tri_idx: List[int], workers: int) -> _Frames:
    """Masks, triangulation and split of each triangulated frame, with a progress bar."""
    gathered = _Frames()
    num_frames = len(frames.image_paths)
    with tempfile.TemporaryDirectory(prefix="splat4d_init_") as tmp, progress_bar(config.show_progress) as progress:
        worker = FrameWorker(frames, config, Path(tmp), tri_idx[0])
        if worker.user_masks is not None:
            CONSOLE.log(f"[SharpTime init] using user masks from {worker.user_masks.root} (flow masks where missing)")
        task = progress.add_task(f"SharpTime init: masks + triangulation ({workers} workers)", total=len(tri_idx))
        start = time.perf_counter()
        for k, r in zip(tri_idx, map_frames(worker, tri_idx, workers), strict=True):
            gathered.add(r)
            progress.update(
                task,
                advance=1,
                description=f"SharpTime init: frame {k + 1}/{num_frames}: "
                f"{len(r.errors)} points, {r.dynamic.num_points} dynamic",
            )
        gathered.seconds = time.perf_counter() - start
    return gathered


def _static_points(
    gathered: _Frames, frames: MultiViewFrames, middle: int, voxel: float, config: VelocityInitConfig
) -> tuple[np.ndarray, np.ndarray]:
    """Static points of all frames merged by the voxel grid, plus the background shell."""
    merge = config.merge
    xyz = np.concatenate(gathered.static_xyz) if gathered.static_xyz else np.zeros((0, 3))
    rgb = np.concatenate(gathered.static_rgb) if gathered.static_rgb else np.zeros((0, 3), np.uint8)
    xyz, rgb = voxel_downsample(xyz, rgb, voxel)
    scene = xyz if len(xyz) else np.concatenate([d.xyz for d in gathered.dynamic] or [np.zeros((0, 3))])
    if len(scene) and merge.background_points > 0:
        b_xyz, b_rgb = background_shell(
            [read_rgb(p) for p in frames.image_paths[middle]],
            np.asarray(frames.Ks, np.float64),
            np.asarray(frames.w2c, np.float64),
            np.median(scene, axis=0),
            merge.background_distance,
            merge.background_pixel_step,
            merge.background_points,
        )
        xyz, rgb = np.concatenate([xyz, b_xyz]), np.concatenate([rgb, b_rgb])
    return xyz, rgb


def _all_points(
    static_xyz: np.ndarray,
    static_rgb: np.ndarray,
    dynamic: List[FramePoints],
    velocities: List[np.ndarray],
    tri_times: np.ndarray,
    static_time: float,
) -> Dict[str, np.ndarray]:
    """The arrays of :class:`Geometry` for the static points, then the dynamic points of each
    triangulated frame (at its time, with their velocities)."""
    d_xyz = np.concatenate([d.xyz for d in dynamic]) if dynamic else np.zeros((0, 3))
    d_rgb = np.concatenate([d.colors for d in dynamic]) if dynamic else np.zeros((0, 3), np.uint8)
    d_t = (
        np.concatenate([np.full(d.num_points, t) for d, t in zip(dynamic, tri_times, strict=True)])
        if dynamic
        else np.zeros(0)
    )
    d_v = np.concatenate(velocities) if velocities else np.zeros((0, 3))
    return dict(
        means=np.concatenate([static_xyz, d_xyz]).astype(np.float32),
        colors=np.concatenate([static_rgb, d_rgb]).astype(np.uint8),
        velocities=np.concatenate([np.zeros_like(static_xyz), d_v]).astype(np.float32),
        times=np.concatenate([np.full(len(static_xyz), static_time), d_t]).astype(np.float32),
        is_dynamic=np.concatenate([np.zeros(len(static_xyz), bool), np.ones(len(d_xyz), bool)]),
    )


def compute_geometry(frames: MultiViewFrames, config: VelocityInitConfig) -> Geometry:
    """Masks → per-frame triangulation → split → velocities → dedup/cap (normalized time)."""
    start = time.perf_counter()
    num_frames = len(frames.image_paths)
    times = np.asarray(frames.times, np.float64)
    tri_idx = triangulated_frames(num_frames, frame_stride(num_frames, config.triangulation))
    workers = num_frame_workers(config, len(tri_idx))
    gathered = _process_frames(frames, config, tri_idx, workers)
    timings, dynamic = gathered.timings, gathered.dynamic
    num_triangulated = sum(len(e) for e in gathered.errors)

    all_depths = np.concatenate(gathered.depths) if gathered.depths else np.zeros(0)
    scene_depth = float(np.median(all_depths)) if len(all_depths) else 1.0
    vel, merge = config.velocity, config.merge
    max_disp = vel.knn_max_distance if vel.knn_max_distance is not None else vel.knn_max_distance_rel * scene_depth
    voxel = merge.voxel_size if merge.voxel_size is not None else merge.voxel_size_rel * scene_depth

    tri_times = times[tri_idx]
    with timed(timings, "velocities"):
        velocities, matched_fraction = estimate_velocities(
            dynamic,
            tri_times,
            max_disp,
            vel.smoothing_radius_rel * scene_depth,
            vel.guided_radius_rel * scene_depth,
            vel,
        )
    with timed(timings, "background"):  # static dedup and the background shell
        s_xyz, s_rgb = _static_points(gathered, frames, tri_idx[len(tri_idx) // 2], voxel, config)
    t_min, t_max = float(times.min()), float(times.max())
    points = _all_points(s_xyz, s_rgb, dynamic, velocities, tri_times, 0.5 * (t_min + t_max))
    keep = cap_indices(points["is_dynamic"], merge.max_points, config.seed)
    if keep is not None:
        points = {name: values[keep] for name, values in points.items()}
    is_dynamic = points["is_dynamic"]

    errors = np.concatenate(gathered.errors) if gathered.errors else np.zeros(0)
    stats = dict(
        seconds=time.perf_counter() - start,
        num_triangulated=float(num_triangulated),
        num_static=float((~is_dynamic).sum()),
        num_dynamic=float(is_dynamic.sum()),
        mean_reprojection_error=float(errors.mean()) if len(errors) else float("nan"),
        mean_mask_fraction=float(np.mean(gathered.mask_fractions)) if gathered.mask_fractions else 0.0,
        user_masks=float(gathered.user_masks),
        velocity_matched_fraction=matched_fraction,
        scene_depth=scene_depth,
        knn_max_distance=max_disp,
        voxel_size=voxel,
        frame_workers=float(workers),
        frames_wall_seconds=gathered.seconds,
        **{f"seconds_{stage}": seconds for stage, seconds in timings.items()},
    )
    reproj_text = f" (mean reprojection error {stats['mean_reprojection_error']:.2f} px)" if len(errors) else ""
    CONSOLE.log(
        f"[SharpTime init] {num_triangulated} triangulated points over {len(tri_idx)} frames{reproj_text} → "
        f"{int(stats['num_static'])} static + {int(stats['num_dynamic'])} dynamic points "
        f"({100 * matched_fraction:.0f}% of dynamic points matched across frames) in {stats['seconds']:.1f} s"
    )
    intervals = np.diff(tri_times)
    return Geometry(
        **points,
        num_triangulated=int(num_triangulated),
        frame_interval=float(np.median(intervals)) if len(intervals) else 0.0,
        t_min=t_min,
        t_max=t_max,
        stats=stats,
    )
