"""SharpTimeGS velocity-aware initialization (issue 6, "Velocity-aware initialization").

From synchronized, calibrated multi-view video frames, before training:

1. **Dynamic masks** per frame and camera: user-provided masks from ``<data_dir>/masks/`` when
   present (``masks/<camera>/<frame>.png``, white = dynamic, ``<frame>`` = the stem of that
   frame's image file or the frame index; see :mod:`sharptime_ns.init_masks`), otherwise
   optical flow (OpenCV DIS or Farnebäck) between consecutive frames of the same camera,
   thresholded on its magnitude, cleaned morphologically, and kept only in regions whose
   brightness actually changes (flow noise on textureless areas is dropped).
2. **Per-frame point clouds**: for each time step, SIFT features of all cameras are matched and
   triangulated with the *known* poses by pycolmap (:mod:`sharptime_ns.init_triangulation`).
3. **Static / dynamic split**: a point is dynamic when its reprojection lands in the dynamic mask
   in more than ``dynamic_vote_fraction`` of the cameras that observe it (its track).
4. **Velocity**: dynamic points of adjacent frames are associated by a kNN search (the
   ``knn_neighbors`` nearest dynamic points of the neighbouring frame within
   ``knn_max_distance``, disambiguated by the tracks' SIFT descriptors, mutual best matches
   only; ``velocity_matching="nearest"`` uses the plain nearest neighbour), displacement ÷ frame
   interval (central difference where both neighbours match), then a robust median over the
   nearest matched points of the same frame (fills unmatched points, removes outliers). Static
   points get v = 0.
   Temporal parameters: dynamic T = its frame's time, σt = ``dynamic_lifespan_frames`` frame
   intervals, r = ``dynamic_radius_frames`` frame intervals; static T = middle of the sequence,
   σt = ``static_lifespan_factor`` × sequence length, r = half the sequence (``radius_init``). The model moves a Gaussian
   by v / f(σt, r) · (t − T), so the stored v is the measured velocity × f(σt, r)
   (:func:`sharptime_ns.temporal.motion_factor`).
5. **Dedup, background and cap**: static points of all frames are merged by a voxel downsample,
   a far background shell of static points is added (:mod:`sharptime_ns.init_background`), and
   the total is capped at ``max_points``.

The geometric result (everything up to the time unit) is cached in
``<data_dir>/.splat4d_cache/sharptime_init_<hash>.npz``, keyed by a hash of the geometry-related
config fields and of the inputs (image/mask files with size and mtime, intrinsics, poses, times);
the time unit and the temporal initial values are applied after loading, so switching the time
unit does not recompute anything.

Time units: ``MultiViewFrames.times`` are normalized sequence times in [0, 1]; ``time_scale`` is
the number of model time units per normalized time (1 for normalized time, the duration in
seconds, or ``num_frames - 1`` for frames). T, σt, r and v are returned in that unit.

Usage::

    frames = MultiViewFrames(image_paths, Ks, w2c, times, camera_names, data_dir)
    points = velocity_aware_init(frames, VelocityInitConfig(), time_scale=num_frames - 1)
    if points is None:  # too few triangulated points (a VelocityInitWarning was issued)
        ...  # random initialization
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import multiprocessing
import os
import shutil
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterator, List, Literal, Optional, Sequence, Tuple

import cv2
import numpy as np
import torch
from nerfstudio.utils.rich_utils import CONSOLE
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from scipy.spatial import cKDTree

from sharptime_ns.init_background import background_shell
from sharptime_ns.init_masks import FlowMasker, find_user_masks, read_rgb, sample_mask, to_flow_gray
from sharptime_ns.init_triangulation import FramePoints, project, timed, triangulate_frame, use_gpu
from sharptime_ns.temporal import motion_factor

CACHE_VERSION = 3


class VelocityInitWarning(UserWarning):
    """Issued when the velocity-aware initialization falls back (too few points) or degrades."""


@dataclass
class VelocityInitConfig:
    """Velocity-aware initialization of SharpTimeGS (dynamic masks, per-frame triangulation, velocities)."""

    # ----- dynamic masks -----
    masks_dir: str = "masks"
    """Folder (relative to the data dir) of user masks ``<camera>/<frame>.png``, white = dynamic."""
    use_user_masks: bool = True
    """Use the user masks when the folder exists (missing ones fall back to optical flow)."""
    flow_method: Literal["dis", "farneback"] = "dis"
    """OpenCV optical flow between consecutive frames of a camera: DIS or Farnebäck."""
    dis_preset: Literal["ultrafast", "fast", "medium"] = "medium"
    """DIS optical-flow preset (speed / quality)."""
    flow_max_side: int = 640
    """Longer image side the flow is computed at (images are downscaled; <= 0: full resolution)."""
    flow_threshold: float = 0.5
    """Flow magnitude (pixels per frame at the flow resolution, see flow_max_side) above which a pixel moves."""
    photometric_threshold: float = 4.0
    """Brightness change (gray levels 0-255, after a 5-pixel box blur) that counts as a pixel changing."""
    min_changed_fraction: float = 0.05
    """Drop moving regions in which fewer pixels change brightness (flow noise on textureless areas); 0: off."""
    flow_combine: Literal["min", "max"] = "min"
    """Combine the flows towards the previous and next frame: min (moves in both; tight) or max (either)."""
    morph_open: int = 3
    """Morphological opening kernel (pixels of the stored image) removing isolated flow noise; < 2: off."""
    morph_close: int = 7
    """Morphological closing kernel (pixels) filling holes in moving regions (textureless interiors); < 2: off."""
    min_mask_component: float = 2e-4
    """Drop connected mask components smaller than this fraction of the image area."""
    mask_dilate: int = 3
    """Final dilation of the flow mask (pixels), to cover object boundaries."""

    # ----- triangulation (pycolmap) -----
    frame_stride: int = 0
    """Triangulate every n-th frame only (the last frame is always included); masks still use
    adjacent frames; dynamic points get the velocity measured between triangulated frames and a
    lifespan of ``dynamic_lifespan_frames`` triangulated-frame intervals. 0: the smallest stride
    that triangulates at most ``max_triangulated_frames`` frames."""
    max_triangulated_frames: int = 100
    """About this many frames are triangulated when ``frame_stride`` is 0 (300-frame Neural3DV:
    stride 3, 101 frames). Chosen by measurement: 19 cameras at 1352×1014 cost 28.7 CPU s per
    triangulated frame (benchmarks/scale_n3dv.py), so 101 frames take about 24 min on two idle
    cores, under the 30 min budget. A step of 3 frames at 30 fps moves far less than the 12-frame
    synthetic benchmark scene moves per frame, where split and velocity accuracy were measured."""
    num_threads: int = 1
    """Threads for pycolmap (SIFT, matching, triangulation) in each frame worker."""
    num_workers: int = 0
    """Frames masked and triangulated in parallel by this many forked processes; 0: one per CPU
    core, at most 4 (1 when SIFT runs on the GPU); 1: in this process. The result is identical
    to one process; on 2 cores, 19 cameras at 1352×1014 peaked at 2.1 GiB over all processes."""
    seed: int = 0
    """Random seed (RANSAC, triangulation, point cap)."""
    sift_max_image_size: int = 1600
    """SIFT runs on images downscaled to this longer side (keypoints are rescaled back); -1: full size."""
    sift_max_features: int = 4096
    """Maximum SIFT features per image."""
    sift_upsample_below: int = 1000
    """SIFT's first octave is -1 (COLMAP's default: the image upsampled 2× first, which finds the
    smallest features) for images whose longer side (after sift_max_image_size) is below this,
    and 0 from this size on. Measured on 19 synthetic 1352×1014 views (match_neighbors 4): octave 0
    extracts 3-4× faster (the whole frame 2.7× faster with the matching change) with 12 % fewer
    points and the same reprojection error (0.42 px) and surface accuracy (99.5 % within 3 % of
    the true depth); on 160×120 images octave 0 leaves too few points (40 instead of 1376)."""
    sift_peak_threshold: float = 0.02 / 3
    """SIFT peak (contrast) threshold; lower finds more features on low-contrast images."""
    guided_matching: bool = False
    """COLMAP guided matching (more matches with the estimated two-view geometry; slower)."""
    match_neighbors: int = 4
    """Match each camera only with this many nearest rig cameras (known poses; the pairs are
    symmetrized); <= 0: all camera pairs. Measured on 19 synthetic 1352×1014 views: 4 neighbours
    (43 pairs instead of 171) match 2.7× faster and triangulate as many points (16,281 vs 16,274)
    with the same reprojection error (0.41 vs 0.42 px); on the 6-camera test scene the split and
    velocity accuracy are unchanged."""
    sift_gpu: Literal["auto", "off"] = "auto"
    """auto: SIFT extraction and matching on the GPU when pycolmap is a CUDA build (``pycolmap-cuda12``)."""
    verification_max_error: float = 4.0
    """RANSAC error threshold (pixels) of the two-view geometric verification."""
    min_triangulation_angle: float = 1.5
    """Minimum triangulation angle (degrees)."""
    ignore_two_view_tracks: bool = False
    """Skip correspondences seen in only two images (COLMAP's default for SfM; off for sparse rigs)."""
    min_track_length: int = 2
    """Minimum number of cameras observing a kept point."""
    max_reprojection_error: float = 2.0
    """Maximum mean reprojection error (pixels) of a kept point."""

    # ----- static / dynamic split -----
    dynamic_vote_fraction: float = 0.5
    """A point is dynamic when it lands in the dynamic mask in more than this fraction of its observing cameras."""

    # ----- velocity -----
    velocity_matching: Literal["descriptor", "nearest"] = "descriptor"
    """Pick the match among the spatial kNN of the adjacent frame by SIFT descriptor, or take the plain nearest one."""
    knn_neighbors: int = 8
    """Spatial candidates (k of the kNN) in the adjacent frame."""
    knn_max_distance: Optional[float] = None
    """Maximum displacement between adjacent frames (world units); None: knn_max_distance_rel × scene depth."""
    knn_max_distance_rel: float = 0.15
    """knn_max_distance relative to the median camera-to-point depth, when knn_max_distance is None."""
    max_descriptor_distance: float = 0.7
    """Maximum L2 distance between unit SIFT descriptors for a match."""
    descriptor_ratio: float = 0.9
    """Lowe ratio test among the spatial candidates (1: off)."""
    velocity_smoothing: int = 5
    """Neighbourhood (nearest matched points of the same frame) whose median velocity fills unmatched points."""
    velocity_outlier_ratio: float = 0.5
    """A matched point keeps its own velocity unless it is off the neighbourhood median by more than this × |median|."""
    smoothing_radius_rel: float = 0.05
    """Radius of that median, relative to the median scene depth."""
    guided_radius_rel: float = 0.02
    """Second pass: match still unmatched points around their predicted positions within this × scene depth; 0: off."""

    # ----- dedup / count -----
    voxel_size: Optional[float] = None
    """Voxel size (world units) merging static points across frames; None: voxel_size_rel × scene depth."""
    voxel_size_rel: float = 0.004
    """Voxel size relative to the median camera-to-point depth, when voxel_size is None."""
    background_pixel_step: float = 3.0
    """Static points on the upper half of a far sphere (``init_background``) so that distant
    background such as sky has Gaussians to fit: one per this many pixels along each image axis."""
    background_points: int = 20_000
    """At most about this many background points over all cameras' full images, before the lower
    half is dropped (a coarser pixel grid where needed); 0: no background points."""
    background_distance: float = 100.0
    """Radius of that sphere in multiples of the largest camera distance from the scene centre."""
    max_points: int = 300_000
    """Cap on the number of returned points (random subsample keeping the static/dynamic proportion)."""
    min_points: int = 100
    """Fewer triangulated points than this: warn and return None (the caller falls back to random init)."""

    # ----- initial temporal parameters (applied after the cache; not part of its key) -----
    dynamic_lifespan_frames: float = 3.0
    """σt of dynamic points, in frame intervals (of the triangulated frames)."""
    static_lifespan_factor: float = 3.0
    """σt of static points, in sequence lengths."""
    radius_init: Literal["lifespan", "tiny"] = "lifespan"
    """lifespan: the initial lifespan is the flat top r of l(t): static points get r = half the
    sequence (T is its middle, so l(t) = 1 on every frame), dynamic points r =
    ``dynamic_radius_frames`` frame intervals (three frames for 1); σt is the fall-off outside.
    tiny (before): r = ``init_radius`` for every point, the lifespan carried by σt alone. Measured
    on the benchmark scene (benchmarks/RESULTS.md): with tiny, r stays below 0.05 frames for 99 %
    of the Gaussians through a 3000-step run (learned in log space from 1e-6), so the model ties
    the no-lifespan ablation."""
    dynamic_radius_frames: float = 1.0
    """r of dynamic points in frame intervals when radius_init = lifespan (1: |t − T| ≤ 1, three frames)."""
    init_radius: float = 1e-6
    """r of every point when radius_init = tiny (time unit)."""

    # ----- cache / UI -----
    use_cache: bool = True
    """Reuse / write ``<data>/.splat4d_cache/sharptime_init_<hash>.npz``."""
    cache_dir: str = ".splat4d_cache"
    """Cache folder, relative to the data dir."""
    show_progress: bool = True
    """Show a rich progress bar."""


# Fields that do not change the geometric (cached) result.
_NOT_IN_CACHE_KEY = {
    "dynamic_lifespan_frames",
    "static_lifespan_factor",
    "init_radius",
    "min_points",
    "use_cache",
    "cache_dir",
    "show_progress",
    "num_threads",
    "num_workers",
    "sift_gpu",  # CPU and GPU SIFT differ only slightly: a cache from either serves both
}


@dataclass
class MultiViewFrames:
    """Synchronized calibrated multi-view video, as the initialization needs it.

    Images must be undistorted (pinhole). Pixel convention of ``Ks``: OpenCV/COLMAP/nerfstudio,
    pixel (i, j) centred at (j + 0.5, i + 0.5), i.e. cx = W/2 for a centred principal point.
    Frames are ordered by time; adjacent entries are adjacent frames.
    """

    image_paths: List[List[Path]]  # [num_frames][num_cameras] image files (RGB, any format cv2 reads)
    Ks: np.ndarray  # [num_cameras, 3, 3] intrinsics in pixels, for the images as stored
    w2c: np.ndarray  # [num_cameras, 4, 4] world->camera, OpenCV axes (x right, y down, z forward)
    times: np.ndarray  # [num_frames] normalized times in [0, 1]
    camera_names: List[str]
    data_dir: Path  # where masks/ may live and where the cache goes


@dataclass
class InitPoints:
    """Initial Gaussians: positions at their canonical time and temporal parameters in the model's time unit."""

    means: np.ndarray  # [P, 3] float32 world positions at their canonical time
    colors: np.ndarray  # [P, 3] uint8
    velocities: np.ndarray  # [P, 3] float32 stored v (already multiplied by f), in world units per time unit
    times: np.ndarray  # [P] canonical time T (time unit)
    tscales: np.ndarray  # [P] σt (time unit)
    radii: np.ndarray  # [P] r (time unit)
    is_dynamic: np.ndarray  # [P] bool

    def __len__(self) -> int:
        return int(self.means.shape[0])


@dataclass
class _Geometry:
    """Time-unit-free result (what is cached). Times and velocities use normalized time."""

    means: np.ndarray  # [P, 3] float32
    colors: np.ndarray  # [P, 3] uint8
    velocities: np.ndarray  # [P, 3] float32 measured velocity, world units per normalized time
    times: np.ndarray  # [P] float32 normalized time of the frame (dynamic); sequence middle (static)
    is_dynamic: np.ndarray  # [P] bool
    num_triangulated: int  # points triangulated over all frames, before dedup / cap
    frame_interval: float  # median normalized interval between triangulated frames
    t_min: float
    t_max: float
    stats: Dict[str, float] = field(default_factory=dict)

    _ARRAYS = ("means", "colors", "velocities", "times", "is_dynamic")

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = dict(
            version=CACHE_VERSION,
            num_triangulated=self.num_triangulated,
            frame_interval=self.frame_interval,
            t_min=self.t_min,
            t_max=self.t_max,
            stats=self.stats,
        )
        fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, meta=np.array(json.dumps(meta)), **{k: getattr(self, k) for k in self._ARRAYS})
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    @classmethod
    def load(cls, path: Path) -> "_Geometry":
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            if meta.get("version") != CACHE_VERSION:
                raise ValueError(f"cache version {meta.get('version')} != {CACHE_VERSION}")
            arrays = {k: np.array(data[k]) for k in cls._ARRAYS}
        return cls(
            **arrays,
            num_triangulated=int(meta["num_triangulated"]),
            frame_interval=float(meta["frame_interval"]),
            t_min=float(meta["t_min"]),
            t_max=float(meta["t_max"]),
            stats=dict(meta.get("stats", {})),
        )


# --------------------------------------------------------------------------------------------
# Public entry point
# --------------------------------------------------------------------------------------------


def velocity_aware_init(frames: MultiViewFrames, config: VelocityInitConfig, time_scale: float) -> Optional[InitPoints]:
    """Velocity-aware initial Gaussians (see the module docstring).

    Args:
        frames: the multi-view video (paths, calibration, normalized times, data dir).
        config: initialization settings.
        time_scale: model time units per normalized time (1: normalized, duration in seconds,
            or num_frames − 1 for frames). T, σt, r and v are returned in that unit.

    Returns:
        The initial points, or None (after a :class:`VelocityInitWarning`) when triangulation
        yields fewer than ``config.min_points`` points: the caller then uses random init.
    """
    _validate(frames, time_scale)
    geometry: Optional[_Geometry] = None
    cache_path = cache_file(frames, config) if config.use_cache else None
    if cache_path is not None and cache_path.is_file():
        try:
            geometry = _Geometry.load(cache_path)
            CONSOLE.log(f"[SharpTime init] using cached initialization {cache_path}")
        except Exception as err:  # corrupt / stale cache: recompute
            CONSOLE.log(f"[yellow][SharpTime init] ignoring unreadable cache {cache_path}: {err}")
            geometry = None
    if geometry is None:
        geometry = compute_geometry(frames, config)
        if cache_path is not None:
            try:
                geometry.save(cache_path)
                CONSOLE.log(f"[SharpTime init] cached to {cache_path}")
            except OSError as err:
                warnings.warn(
                    f"SharpTime init: could not write the cache {cache_path}: {err}", VelocityInitWarning, stacklevel=2
                )

    if geometry.num_triangulated < config.min_points:
        msg = (
            f"SharpTime velocity-aware init: triangulation yielded only {geometry.num_triangulated} points "
            f"(< min_points={config.min_points}); falling back to random initialization."
        )
        CONSOLE.print(f"[bold yellow]WARNING: {msg}")
        warnings.warn(msg, VelocityInitWarning, stacklevel=2)
        return None
    return to_init_points(geometry, config, time_scale)


def cache_file(frames: MultiViewFrames, config: VelocityInitConfig) -> Path:
    """``<data_dir>/<cache_dir>/sharptime_init_<hash>.npz`` for these inputs and config."""
    return Path(frames.data_dir) / config.cache_dir / f"sharptime_init_{cache_key(frames, config)}.npz"


def cache_key(frames: MultiViewFrames, config: VelocityInitConfig) -> str:
    """Hash of the geometry-related config fields and of the inputs (files with size and mtime,
    calibration, times, camera names, user masks)."""
    data_dir = Path(frames.data_dir)

    def file_entry(p: Path) -> List:
        p = Path(p)
        try:
            name = str(p.resolve().relative_to(data_dir.resolve()))
        except ValueError:
            name = str(p.resolve())
        try:
            st = p.stat()
            return [name, st.st_size, st.st_mtime_ns]
        except OSError:
            return [name, -1, -1]

    cfg = {k: v for k, v in dataclasses.asdict(config).items() if k not in _NOT_IN_CACHE_KEY}
    payload = {
        "version": CACHE_VERSION,
        "config": cfg,
        "images": [[file_entry(p) for p in row] for row in frames.image_paths],
        "Ks": np.round(np.asarray(frames.Ks, np.float64), 9).tolist(),
        "w2c": np.round(np.asarray(frames.w2c, np.float64), 9).tolist(),
        "times": np.round(np.asarray(frames.times, np.float64), 12).tolist(),
        "cameras": list(frames.camera_names),
    }
    if config.use_user_masks:
        masks = find_user_masks(data_dir, config.masks_dir, frames.camera_names)
        payload["masks"] = [file_entry(p) for p in masks.files] if masks else []
    blob = json.dumps(payload, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:20]


def to_init_points(geometry: _Geometry, config: VelocityInitConfig, time_scale: float) -> InitPoints:
    """Temporal parameters in the model's time unit; stored v = measured v × f(σt, r)."""
    dyn = geometry.is_dynamic.astype(bool)
    n = len(dyn)
    length = (geometry.t_max - geometry.t_min) * time_scale
    if length <= 0:  # a single frame: the "sequence" is the whole normalized range
        length = float(time_scale)
    interval = geometry.frame_interval * time_scale if geometry.frame_interval > 0 else length
    times = np.where(dyn, geometry.times * time_scale, 0.5 * (geometry.t_min + geometry.t_max) * time_scale)
    tscales = np.where(dyn, config.dynamic_lifespan_frames * interval, config.static_lifespan_factor * length)
    if config.radius_init == "lifespan":
        radii = np.where(dyn, config.dynamic_radius_frames * interval, 0.5 * length)
    else:
        radii = np.full(n, config.init_radius, dtype=np.float64)
    measured = geometry.velocities.astype(np.float64) / time_scale  # world units per time unit
    measured[~dyn] = 0.0
    f = motion_factor(torch.from_numpy(tscales.astype(np.float64)), torch.from_numpy(radii)).numpy()
    return InitPoints(
        means=geometry.means.astype(np.float32),
        colors=geometry.colors.astype(np.uint8),
        velocities=(measured * f[:, None]).astype(np.float32),
        times=times.astype(np.float32),
        tscales=tscales.astype(np.float32),
        radii=radii.astype(np.float32),
        is_dynamic=dyn,
    )


# --------------------------------------------------------------------------------------------
# Geometry: masks, triangulation, split, velocities, dedup
# --------------------------------------------------------------------------------------------


def _validate(frames: MultiViewFrames, time_scale: float) -> None:
    num_frames = len(frames.image_paths)
    if num_frames == 0:
        raise ValueError("MultiViewFrames has no frames")
    num_cams = len(frames.camera_names)
    if any(len(row) != num_cams for row in frames.image_paths):
        raise ValueError("every frame needs one image per camera (image_paths is [num_frames][num_cameras])")
    if np.shape(frames.Ks) != (num_cams, 3, 3) or np.shape(frames.w2c) != (num_cams, 4, 4):
        raise ValueError(f"Ks must be [{num_cams}, 3, 3] and w2c [{num_cams}, 4, 4]")
    if len(frames.times) != num_frames:
        raise ValueError("times must have one entry per frame")
    if not time_scale > 0:
        raise ValueError(f"time_scale must be positive, got {time_scale}")
    if num_frames > 1 and np.any(np.diff(np.asarray(frames.times, np.float64)) <= 0):
        raise ValueError("frame times must be strictly increasing")


def _progress(enabled: bool) -> Progress:
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=CONSOLE,
        disable=not enabled,
        transient=False,
    )


def frame_stride(num_frames: int, config: VelocityInitConfig) -> int:
    """``config.frame_stride``, or when 0 ⌈num_frames / max_triangulated_frames⌉ (the last frame,
    always triangulated, may add one)."""
    if config.frame_stride > 0:
        return config.frame_stride
    return max(1, -(-num_frames // max(1, config.max_triangulated_frames)))


def triangulated_frames(num_frames: int, stride: int) -> List[int]:
    idx = list(range(0, num_frames, max(1, stride)))
    if idx[-1] != num_frames - 1:
        idx.append(num_frames - 1)
    return idx


class _ImageCache:
    """RGB + flow-resolution grayscale images, keeping only a few frames in memory."""

    def __init__(self, frames: MultiViewFrames, flow_max_side: int) -> None:
        self.frames = frames
        self.flow_max_side = flow_max_side
        self.rgb: Dict[Tuple[int, int], np.ndarray] = {}
        self.gray: Dict[Tuple[int, int], np.ndarray] = {}

    def get_rgb(self, frame: int, cam: int) -> np.ndarray:
        key = (frame, cam)
        if key not in self.rgb:
            self.rgb[key] = read_rgb(self.frames.image_paths[frame][cam])
        return self.rgb[key]

    def get_gray(self, frame: int, cam: int) -> np.ndarray:
        key = (frame, cam)
        if key not in self.gray:
            self.gray[key] = to_flow_gray(self.get_rgb(frame, cam), self.flow_max_side)
        return self.gray[key]

    def keep_only(self, frames: Sequence[int]) -> None:
        keep = set(frames)
        for d in (self.rgb, self.gray):
            for key in [k for k in d if k[0] not in keep]:
                del d[key]


@dataclass
class _FrameResult:
    """What the init keeps of one triangulated frame."""

    static_xyz: np.ndarray  # [S, 3]
    static_rgb: np.ndarray  # [S, 3] uint8
    dynamic: FramePoints
    depths: np.ndarray  # [P] mean depth of each point in its observing cameras
    errors: np.ndarray  # [P] reprojection errors
    mask_fractions: List[float]  # per camera
    user_masks: int  # cameras whose mask came from the user
    timings: Dict[str, float]  # seconds per stage


class _FrameWorker:
    """Masks, triangulation and static/dynamic split of one frame (in this process or a forked worker)."""

    def __init__(self, frames: MultiViewFrames, config: VelocityInitConfig, workdir: Path, first: int) -> None:
        self.frames, self.config, self.workdir, self.first = frames, config, workdir, first
        self.Ks = np.asarray(frames.Ks, np.float64)
        self.w2c = np.asarray(frames.w2c, np.float64)
        self.user_masks = (
            find_user_masks(Path(frames.data_dir), config.masks_dir, frames.camera_names)
            if config.use_user_masks
            else None
        )
        self.masker = FlowMasker(config)
        self.cache = _ImageCache(frames, config.flow_max_side)

    def __call__(self, k: int) -> _FrameResult:
        frames, config, num_frames = self.frames, self.config, len(self.frames.image_paths)
        num_cams = len(frames.camera_names)
        timings: Dict[str, float] = {}
        with timed(timings, "images"):
            self.cache.keep_only([k - 1, k, k + 1])
            images = [self.cache.get_rgb(k, c) for c in range(num_cams)]
            for j in (k - 1, k + 1):
                if 0 <= j < num_frames:
                    for c in range(num_cams):
                        self.cache.get_gray(j, c)
        if k == self.first:
            _check_intrinsics(self.Ks, images, frames.camera_names)
        masks, fractions, user_count = [], [], 0
        with timed(timings, "masks"):
            for c in range(num_cams):
                mask = self.user_masks.load(c, k, frames.image_paths[k][c]) if self.user_masks is not None else None
                if mask is not None:
                    user_count += 1
                else:
                    mask = _flow_mask(self.cache, self.masker, k, c, num_frames, images[c].shape[1])
                masks.append(mask)
                fractions.append(float(mask.mean()))
        workdir = self.workdir / f"frame_{k:06d}"
        points = triangulate_frame(images, self.Ks, self.w2c, workdir, config, timings)
        shutil.rmtree(workdir, ignore_errors=True)  # image copies and database: bounded scratch space
        with timed(timings, "split"):
            is_dyn, depth = _split(points, masks, images, self.Ks, self.w2c, config)
        return _FrameResult(
            static_xyz=points.xyz[~is_dyn],
            static_rgb=points.colors[~is_dyn],
            dynamic=points.subset(is_dyn),
            depths=depth,
            errors=points.errors,
            mask_fractions=fractions,
            user_masks=user_count,
            timings=timings,
        )


_WORKER: Optional[_FrameWorker] = None  # the frame worker of a forked process


def _install_worker(worker: _FrameWorker) -> None:
    global _WORKER
    _WORKER = worker


def _run_installed(k: int) -> _FrameResult:
    assert _WORKER is not None, "frame worker not installed"
    return _WORKER(k)


def num_frame_workers(config: VelocityInitConfig, num_jobs: int) -> int:
    """Worker processes for ``num_jobs`` frames (see ``VelocityInitConfig.num_workers``)."""
    if config.num_workers > 0:
        workers = config.num_workers
    elif use_gpu(config):
        workers = 1  # CUDA and fork do not mix; GPU SIFT is fast anyway
    else:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        workers = min(cores, 4)
    return max(1, min(workers, num_jobs))


def _map_frames(worker: _FrameWorker, frame_indices: List[int], num_workers: int) -> Iterator[_FrameResult]:
    """``worker(k)`` for each frame, in order; by ``num_workers`` forked processes when > 1 (fork:
    the workers share the parent's memory and its frame list, and no pickling of the worker)."""
    if num_workers <= 1:
        yield from map(worker, frame_indices)
        return
    # No OpenCV worker threads may exist at the fork: a child cannot use, or even resize, a thread
    # pool whose threads stayed behind in the parent (it hangs). The workers run OpenCV serially.
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        with multiprocessing.get_context("fork").Pool(num_workers, _install_worker, (worker,)) as pool:
            yield from pool.imap(_run_installed, frame_indices)
    finally:
        cv2.setNumThreads(threads)


def compute_geometry(frames: MultiViewFrames, config: VelocityInitConfig) -> _Geometry:
    """Masks → per-frame triangulation → split → velocities → dedup/cap (normalized time)."""
    start = time.perf_counter()
    num_frames = len(frames.image_paths)
    Ks = np.asarray(frames.Ks, np.float64)
    w2c = np.asarray(frames.w2c, np.float64)
    times = np.asarray(frames.times, np.float64)
    tri_idx = triangulated_frames(num_frames, frame_stride(num_frames, config))
    workers = num_frame_workers(config, len(tri_idx))

    static_xyz: List[np.ndarray] = []
    static_rgb: List[np.ndarray] = []
    dynamic: List[FramePoints] = []
    depths: List[np.ndarray] = []
    mask_fractions: List[float] = []
    user_mask_count = 0
    reproj: List[np.ndarray] = []
    timings: Dict[str, float] = {}

    with tempfile.TemporaryDirectory(prefix="splat4d_init_") as tmp, _progress(config.show_progress) as progress:
        worker = _FrameWorker(frames, config, Path(tmp), tri_idx[0])
        if worker.user_masks is not None:
            CONSOLE.log(f"[SharpTime init] using user masks from {worker.user_masks.root} (flow masks where missing)")
        task = progress.add_task(f"SharpTime init: masks + triangulation ({workers} workers)", total=len(tri_idx))
        frames_start = time.perf_counter()
        for k, r in zip(tri_idx, _map_frames(worker, tri_idx, workers), strict=True):
            static_xyz.append(r.static_xyz)
            static_rgb.append(r.static_rgb)
            dynamic.append(r.dynamic)
            depths.append(r.depths)
            reproj.append(r.errors)
            mask_fractions.extend(r.mask_fractions)
            user_mask_count += r.user_masks
            for stage, seconds in r.timings.items():
                timings[stage] = timings.get(stage, 0.0) + seconds
            progress.update(
                task,
                advance=1,
                description=f"SharpTime init: frame {k + 1}/{num_frames}: "
                f"{len(r.errors)} points, {r.dynamic.num_points} dynamic",
            )
        frames_seconds = time.perf_counter() - frames_start
    num_triangulated = sum(len(e) for e in reproj)

    all_depths = np.concatenate(depths) if depths else np.zeros(0)
    scene_depth = float(np.median(all_depths)) if len(all_depths) else 1.0
    max_disp = (
        config.knn_max_distance if config.knn_max_distance is not None else config.knn_max_distance_rel * scene_depth
    )
    voxel = config.voxel_size if config.voxel_size is not None else config.voxel_size_rel * scene_depth
    smooth_radius = config.smoothing_radius_rel * scene_depth

    tri_times = times[tri_idx]
    guided_radius = config.guided_radius_rel * scene_depth
    with timed(timings, "velocities"):
        velocities, matched_fraction = estimate_velocities(
            dynamic, tri_times, max_disp, smooth_radius, guided_radius, config
        )

    with timed(timings, "background"):  # static dedup and the background shell
        s_xyz = np.concatenate(static_xyz) if static_xyz else np.zeros((0, 3))
        s_rgb = np.concatenate(static_rgb) if static_rgb else np.zeros((0, 3), np.uint8)
        s_xyz, s_rgb = voxel_downsample(s_xyz, s_rgb, voxel)
        if len(s_xyz) and config.background_points > 0:
            middle = tri_idx[len(tri_idx) // 2]
            b_xyz, b_rgb = background_shell([read_rgb(p) for p in frames.image_paths[middle]], Ks, w2c,
                                            np.median(s_xyz, axis=0), config.background_distance,
                                            config.background_pixel_step, config.background_points)  # fmt: skip
            s_xyz, s_rgb = np.concatenate([s_xyz, b_xyz]), np.concatenate([s_rgb, b_rgb])
    d_xyz = np.concatenate([d.xyz for d in dynamic]) if dynamic else np.zeros((0, 3))
    d_rgb = np.concatenate([d.colors for d in dynamic]) if dynamic else np.zeros((0, 3), np.uint8)
    d_t = (
        np.concatenate([np.full(d.num_points, t) for d, t in zip(dynamic, tri_times, strict=True)])
        if dynamic
        else np.zeros(0)
    )
    d_v = np.concatenate(velocities) if velocities else np.zeros((0, 3))

    t_min, t_max = float(times.min()), float(times.max())
    means = np.concatenate([s_xyz, d_xyz]).astype(np.float32)
    colors = np.concatenate([s_rgb, d_rgb]).astype(np.uint8)
    vels = np.concatenate([np.zeros_like(s_xyz), d_v]).astype(np.float32)
    ptimes = np.concatenate([np.full(len(s_xyz), 0.5 * (t_min + t_max)), d_t]).astype(np.float32)
    is_dynamic = np.concatenate([np.zeros(len(s_xyz), bool), np.ones(len(d_xyz), bool)])

    keep = cap_indices(is_dynamic, config.max_points, config.seed)
    if keep is not None:
        means, colors, vels, ptimes, is_dynamic = means[keep], colors[keep], vels[keep], ptimes[keep], is_dynamic[keep]

    errors = np.concatenate(reproj) if reproj else np.zeros(0)
    stats = dict(
        seconds=time.perf_counter() - start,
        num_triangulated=float(num_triangulated),
        num_static=float((~is_dynamic).sum()),
        num_dynamic=float(is_dynamic.sum()),
        mean_reprojection_error=float(errors.mean()) if len(errors) else float("nan"),
        mean_mask_fraction=float(np.mean(mask_fractions)) if mask_fractions else 0.0,
        user_masks=float(user_mask_count),
        velocity_matched_fraction=matched_fraction,
        scene_depth=scene_depth,
        knn_max_distance=max_disp,
        voxel_size=voxel,
        frame_workers=float(workers),
        frames_wall_seconds=frames_seconds,
        **{f"seconds_{stage}": seconds for stage, seconds in timings.items()},
    )
    reproj_text = f" (mean reprojection error {stats['mean_reprojection_error']:.2f} px)" if len(errors) else ""
    CONSOLE.log(
        f"[SharpTime init] {num_triangulated} triangulated points over {len(tri_idx)} frames{reproj_text} → "
        f"{int(stats['num_static'])} static + {int(stats['num_dynamic'])} dynamic points "
        f"({100 * matched_fraction:.0f}% of dynamic points matched across frames) in {stats['seconds']:.1f} s"
    )
    intervals = np.diff(tri_times)
    return _Geometry(
        means=means,
        colors=colors,
        velocities=vels,
        times=ptimes,
        is_dynamic=is_dynamic,
        num_triangulated=int(num_triangulated),
        frame_interval=float(np.median(intervals)) if len(intervals) else 0.0,
        t_min=t_min,
        t_max=t_max,
        stats=stats,
    )


def _check_intrinsics(Ks: np.ndarray, images: List[np.ndarray], names: Sequence[str]) -> None:
    for K, img, name in zip(Ks, images, names, strict=True):
        h, w = img.shape[:2]
        if not (0 < K[0, 2] < w and 0 < K[1, 2] < h):
            raise ValueError(
                f"camera {name}: principal point ({K[0, 2]:.1f}, {K[1, 2]:.1f}) is outside its {w}x{h} image; "
                "Ks must be the intrinsics of the images as stored (check downscale factors)"
            )
        if abs(K[0, 1]) > 1e-6 * K[0, 0]:
            warnings.warn(
                f"camera {name}: intrinsics skew is ignored (PINHOLE model)", VelocityInitWarning, stacklevel=2
            )


def _flow_mask(cache: _ImageCache, masker: FlowMasker, k: int, cam: int, num_frames: int, width: int) -> np.ndarray:
    neighbours = [j for j in (k - 1, k + 1) if 0 <= j < num_frames]
    if not neighbours:  # a single frame: nothing moves
        return np.zeros(cache.get_gray(k, cam).shape, bool)
    evidence = [masker.evidence(cache.get_gray(k, cam), cache.get_gray(j, cam), width) for j in neighbours]
    return masker.mask(evidence, width)


def _split(
    points: FramePoints,
    masks: List[np.ndarray],
    images: List[np.ndarray],
    Ks: np.ndarray,
    w2c: np.ndarray,
    config: VelocityInitConfig,
) -> Tuple[np.ndarray, np.ndarray]:
    """Dynamic flags [P] (majority vote over the observing cameras of the point's reprojection
    into their masks) and the mean depth [P] of each point in its observing cameras."""
    P = points.num_points
    if P == 0:
        return np.zeros(0, bool), np.zeros(0)
    point_of_obs = np.repeat(np.arange(P), np.diff(points.track_offsets))
    votes = np.zeros(len(point_of_obs), bool)
    depth = np.zeros(len(point_of_obs))
    for c in np.unique(points.obs_cam):
        sel = points.obs_cam == c
        uv, z = project(points.xyz[point_of_obs[sel]], Ks[c], w2c[c])
        h, w = images[c].shape[:2]
        votes[sel] = sample_mask(masks[c], uv, w, h)
        depth[sel] = z
    counts = np.bincount(point_of_obs, minlength=P)
    dyn_votes = np.bincount(point_of_obs, weights=votes.astype(np.float64), minlength=P)
    mean_depth = np.bincount(point_of_obs, weights=depth, minlength=P) / np.maximum(counts, 1)
    return dyn_votes > config.dynamic_vote_fraction * counts, mean_depth


def _match_pair(
    a: FramePoints, b: FramePoints, max_disp: float, config: VelocityInitConfig
) -> Tuple[np.ndarray, np.ndarray]:
    """Index pairs (i in a, j in b) of the same physical point in two adjacent frames."""
    if a.num_points == 0 or b.num_points == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    if config.velocity_matching == "nearest":
        dist, j = cKDTree(b.xyz).query(a.xyz, k=1, distance_upper_bound=max_disp)
        ok = np.isfinite(dist)
        return np.flatnonzero(ok), j[ok]
    if config.velocity_matching != "descriptor":
        raise ValueError(f"unknown velocity_matching {config.velocity_matching!r}")
    best_ab = _best_descriptor_candidate(a.xyz, a.descriptors, b.xyz, b.descriptors, max_disp, config)
    best_ba = _best_descriptor_candidate(b.xyz, b.descriptors, a.xyz, a.descriptors, max_disp, config)
    i = np.flatnonzero(best_ab >= 0)
    j = best_ab[i]
    mutual = best_ba[j] == i
    return i[mutual], j[mutual]


def _guided_pair(
    a: FramePoints,
    b: FramePoints,
    va: np.ndarray,
    vb: np.ndarray,
    dt: float,
    pair: Tuple[np.ndarray, np.ndarray],
    radius: float,
    config: VelocityInitConfig,
) -> Tuple[np.ndarray, np.ndarray]:
    """``pair`` plus mutual descriptor matches between the still unmatched points of a and b,
    searched around the positions predicted by the first-pass velocities va, vb (kNN within
    ``radius`` of a + va·dt in b, and of b − vb·dt in a)."""
    i, j = pair
    free_a = np.setdiff1d(np.arange(a.num_points), i)
    free_b = np.setdiff1d(np.arange(b.num_points), j)
    if len(free_a) == 0 or len(free_b) == 0:
        return pair
    ab = _best_descriptor_candidate(
        a.xyz[free_a] + va[free_a] * dt, a.descriptors[free_a], b.xyz[free_b], b.descriptors[free_b], radius, config
    )
    ba = _best_descriptor_candidate(
        b.xyz[free_b] - vb[free_b] * dt, b.descriptors[free_b], a.xyz[free_a], a.descriptors[free_a], radius, config
    )
    fi = np.flatnonzero(ab >= 0)
    fj = ab[fi]
    mutual = ba[fj] == fi
    return np.concatenate([i, free_a[fi[mutual]]]), np.concatenate([j, free_b[fj[mutual]]])


def _best_descriptor_candidate(
    q_xyz: np.ndarray,
    q_desc: np.ndarray,
    t_xyz: np.ndarray,
    t_desc: np.ndarray,
    radius: float,
    config: VelocityInitConfig,
) -> np.ndarray:
    """For each query point, the index of the descriptor-closest of its spatial kNN among the
    target points within ``radius`` (-1: none passes the distance and ratio tests)."""
    k = max(1, min(config.knn_neighbors, len(t_xyz)))
    dist, idx = cKDTree(t_xyz).query(q_xyz, k=k, distance_upper_bound=radius)
    dist, idx = dist.reshape(len(q_xyz), k), idx.reshape(len(q_xyz), k)
    valid = np.isfinite(dist)
    safe = np.where(valid, idx, 0)
    ddesc = np.empty(dist.shape)
    for s in range(0, len(ddesc), 4096):  # bounded memory: [chunk, k, 128]
        cos = np.einsum("nd,nkd->nk", q_desc[s : s + 4096], t_desc[safe[s : s + 4096]])
        ddesc[s : s + 4096] = np.sqrt(np.maximum(2.0 - 2.0 * cos, 0.0))  # unit descriptors
    ddesc[~valid] = np.inf
    order = np.argsort(ddesc, axis=1)
    best = np.take_along_axis(ddesc, order[:, :1], axis=1)[:, 0]
    second = np.take_along_axis(ddesc, order[:, 1:2], axis=1)[:, 0] if k > 1 else np.full(len(best), np.inf)
    ok = (best < config.max_descriptor_distance) & (best < config.descriptor_ratio * second)
    return np.where(ok, np.take_along_axis(safe, order[:, :1], axis=1)[:, 0], -1)


def estimate_velocities(
    dynamic: List[FramePoints],
    times: np.ndarray,
    max_disp: float,
    smooth_radius: float,
    guided_radius: float,
    config: VelocityInitConfig,
) -> Tuple[List[np.ndarray], float]:
    """Per frame, velocities [P_k, 3] (world units per normalized time) of its dynamic points,
    and the fraction of dynamic points matched to a neighbouring frame."""
    n = len(dynamic)
    pairs = [_match_pair(dynamic[k], dynamic[k + 1], max_disp, config) for k in range(n - 1)]
    velocities, matched = _velocities_from_pairs(dynamic, times, pairs, max_disp, smooth_radius, config)
    if config.velocity_matching == "descriptor" and guided_radius > 0 and n > 1:
        pairs = [
            _guided_pair(
                dynamic[k], dynamic[k + 1], velocities[k], velocities[k + 1], times[k + 1] - times[k], pairs[k],
                guided_radius, config,
            )
            for k in range(n - 1)
        ]  # fmt: skip
        velocities, matched = _velocities_from_pairs(dynamic, times, pairs, max_disp, smooth_radius, config)
    total = sum(d.num_points for d in dynamic)
    return velocities, (sum(int(m.sum()) for m in matched) / total if total else 0.0)


def _velocities_from_pairs(
    dynamic: List[FramePoints],
    times: np.ndarray,
    pairs: List[Tuple[np.ndarray, np.ndarray]],
    max_disp: float,
    smooth_radius: float,
    config: VelocityInitConfig,
) -> Tuple[List[np.ndarray], List[np.ndarray]]:
    """Mean displacement rate over a point's matches (central difference when matched both ways),
    then :func:`_smooth_velocities`; also returns the per-frame matched flags."""
    n = len(dynamic)
    rate_sum = [np.zeros((d.num_points, 3)) for d in dynamic]
    rate_cnt = [np.zeros(d.num_points) for d in dynamic]
    for k, (i, j) in enumerate(pairs):
        rate = (dynamic[k + 1].xyz[j] - dynamic[k].xyz[i]) / (times[k + 1] - times[k])
        np.add.at(rate_sum[k], i, rate)
        np.add.at(rate_cnt[k], i, 1.0)
        np.add.at(rate_sum[k + 1], j, rate)
        np.add.at(rate_cnt[k + 1], j, 1.0)
    velocities: List[np.ndarray] = []
    matched_flags: List[np.ndarray] = []
    for k in range(n):
        d = dynamic[k]
        vel = np.zeros((d.num_points, 3))
        matched = rate_cnt[k] > 0
        vel[matched] = rate_sum[k][matched] / rate_cnt[k][matched, None]
        if d.num_points and matched.any():
            vel = _smooth_velocities(
                d.xyz, vel, matched, smooth_radius, max_disp, config.velocity_smoothing, config.velocity_outlier_ratio
            )
        elif d.num_points:  # nothing matched: plain nearest-neighbour displacement (noisy, better than 0)
            vel = _nearest_rates(dynamic, times, k, max_disp)
        velocities.append(vel)
        matched_flags.append(matched)
    return velocities, matched_flags


def _nearest_rates(dynamic: List[FramePoints], times: np.ndarray, k: int, max_disp: float) -> np.ndarray:
    """Mean of the displacement rates to the nearest dynamic point of each adjacent frame."""
    d = dynamic[k]
    total = np.zeros((d.num_points, 3))
    count = np.zeros(d.num_points)
    for j in (k - 1, k + 1):
        if 0 <= j < len(dynamic) and dynamic[j].num_points:
            dist, idx = cKDTree(dynamic[j].xyz).query(d.xyz, k=1, distance_upper_bound=max_disp)
            ok = np.isfinite(dist)
            total[ok] += (dynamic[j].xyz[idx[ok]] - d.xyz[ok]) / (times[j] - times[k])
            count[ok] += 1
    return total / np.maximum(count, 1)[:, None]


def _smooth_velocities(
    xyz: np.ndarray,
    vel: np.ndarray,
    matched: np.ndarray,
    radius: float,
    max_disp: float,
    k: int,
    outlier_ratio: float,
) -> np.ndarray:
    """Fill and clean the velocities of one frame's dynamic points.

    The component-wise median of the velocities of the k nearest matched points within
    ``radius`` (a matched point counts itself) replaces the velocity of unmatched points and of
    matched outliers (deviating from it by more than ``outlier_ratio`` × its norm). Unmatched
    points with no matched point within ``radius`` take the nearest matched point's velocity
    within ``max_disp``; farther ones keep 0."""
    n = len(xyz)
    m = min(max(1, k), int(matched.sum()))
    tree = cKDTree(xyz[matched])
    mv = vel[matched]
    dist, idx = tree.query(xyz, k=m, distance_upper_bound=radius)
    dist, idx = dist.reshape(n, m), idx.reshape(n, m)
    valid = np.isfinite(dist)
    has = valid.any(axis=1)
    out = vel.copy()
    if has.any():
        cand = np.where(valid[has, :, None], mv[np.where(valid[has], idx[has], 0)], np.nan)
        median = np.nanmedian(cand, axis=1)
        # matched points keep their own rate unless it is an outlier w.r.t. their neighbourhood
        own = matched[has] & (
            np.linalg.norm(vel[has] - median, axis=1) <= outlier_ratio * np.linalg.norm(median, axis=1)
        )
        out[has] = np.where(own[:, None], vel[has], median)
    rest = np.flatnonzero(~has)
    if len(rest):
        dist, idx = tree.query(xyz[rest], k=1, distance_upper_bound=max(max_disp, radius))
        ok = np.isfinite(dist)
        out[rest[ok]] = mv[idx[ok]]
    return out


def voxel_downsample(xyz: np.ndarray, rgb: np.ndarray, voxel: float) -> Tuple[np.ndarray, np.ndarray]:
    """Mean position and colour per occupied voxel (order: first occurrence)."""
    if len(xyz) == 0 or voxel <= 0:
        return xyz, rgb
    keys = np.floor(xyz / voxel).astype(np.int64)
    _, first, inverse = np.unique(keys, axis=0, return_index=True, return_inverse=True)
    inverse = inverse.reshape(-1)
    counts = np.bincount(inverse).astype(np.float64)
    pos = np.stack([np.bincount(inverse, weights=xyz[:, i]) for i in range(3)], axis=1) / counts[:, None]
    col = (
        np.stack([np.bincount(inverse, weights=rgb[:, i].astype(np.float64)) for i in range(3)], axis=1)
        / counts[:, None]
    )
    order = np.argsort(first)
    return pos[order], np.clip(np.round(col[order]), 0, 255).astype(np.uint8)


def cap_indices(is_dynamic: np.ndarray, max_points: int, seed: int) -> Optional[np.ndarray]:
    """Sorted indices of a random subset of at most max_points keeping the static/dynamic
    proportion, or None when no cap is needed."""
    n = len(is_dynamic)
    if max_points <= 0 or n <= max_points:
        return None
    rng = np.random.default_rng(seed)
    dyn = np.flatnonzero(is_dynamic)
    sta = np.flatnonzero(~is_dynamic)
    n_dyn = int(round(max_points * len(dyn) / n))
    n_sta = max_points - n_dyn
    keep = np.concatenate([rng.choice(sta, n_sta, replace=False), rng.choice(dyn, n_dyn, replace=False)])
    return np.sort(keep)
