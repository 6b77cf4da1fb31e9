"""Settings of the velocity-aware initialization, one sub-config per stage.

On the command line: ``--pipeline.datamanager.init.<stage>.<field>`` (for example
``--pipeline.datamanager.init.merge.background-points 0``), and the driver's own fields
``--pipeline.datamanager.init.<field>``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Optional

from sharptime_ns.temporal import TINY_RADIUS
from splat4d.optical_flow import FarnebackSettings


@dataclass
class MaskConfig:
    """Dynamic masks per frame and camera (user masks, else optical flow) and the static/dynamic vote."""

    masks_dir: str = "masks"
    """Folder (relative to the data dir) of user masks ``<camera>/<frame>.png``, white = dynamic."""
    use_user_masks: bool = True
    """Use the user masks when the folder exists (missing ones fall back to optical flow)."""
    flow_method: Literal["dis", "farneback"] = "dis"
    """OpenCV optical flow between consecutive frames of a camera: DIS or Farnebäck."""
    dis_preset: Literal["ultrafast", "fast", "medium"] = "medium"
    """DIS optical-flow preset (speed / quality)."""
    farneback: FarnebackSettings = field(default_factory=lambda: FarnebackSettings(iterations=3, poly_sigma=1.2))
    """Farnebäck settings when ``flow_method`` is farneback."""
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
    dynamic_vote_fraction: float = 0.5
    """A point is dynamic when it lands in the dynamic mask in more than this fraction of its observing cameras."""
    change_threshold: float = 12.0
    """A pixel is also dynamic where its colour differs from its camera's plate (the temporal median
    of ``change_plate_frames`` frames) by more than this (0-255, max over RGB, after a 3-pixel box
    blur at the flow resolution): flow misses what changes without moving. 0: flow masks only (the
    paper's). Measured on 3 cameras × 30 frames of the benchmark scene against the true object
    masks, flow alone covers 98 % of the slow ball's pixels, 77 % of the fast cube's, 9 % of the
    flame's and 3 % of the popping box's; the plate test at 12 covers 88 / 99.9 / 72 / 99 % and marks
    1.5 % of the static pixels (flow: 2.1 %). Lighting changes are marked too (they change)."""
    change_plate_frames: int = 15
    """Frames sampled evenly across each camera's video for its plate."""
    static_split: bool = True
    """Split the points into static and dynamic ones (the velocity-aware init). False is FreeTimeGS's
    init, for its ablation: no point is static, every triangulated point keeps its frame's time,
    the dynamic points' σt and r and a velocity from the adjacent frames (≈ 0 where nothing moves),
    so static surfaces are made of short-lived Gaussians, one set per triangulated frame."""


@dataclass
class TriangulationConfig:
    """Per-frame point clouds: SIFT, matching and triangulation with the known poses (pycolmap)."""

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


@dataclass
class VelocityConfig:
    """Velocities of the dynamic points from their matches in adjacent triangulated frames."""

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


@dataclass
class MergeConfig:
    """Static points merged over frames, the far background shell and the cap on the point count."""

    voxel_size: Optional[float] = None
    """Voxel size (world units) merging static points across frames; None: voxel_size_rel × scene depth."""
    voxel_size_rel: float = 0.004
    """Voxel size relative to the median camera-to-point depth, when voxel_size is None."""
    background_pixel_step: float = 3.0
    """Static points on the upper half of a far sphere (``background.py``) so that distant
    background such as sky has Gaussians to fit: one per this many pixels along each image axis."""
    background_points: int = 20_000
    """At most about this many background points over all cameras' full images, before the lower
    half is dropped (a coarser pixel grid where needed); 0: no background points."""
    background_distance: float = 100.0
    """Radius of that sphere in multiples of the largest camera distance from the scene centre."""
    max_points: int = 300_000
    """Cap on the number of returned points (random subsample keeping the static/dynamic proportion)."""


@dataclass
class VelocityInitConfig:
    """Velocity-aware initialization of SharpTimeGS (dynamic masks, per-frame triangulation, velocities)."""

    masks: MaskConfig = field(default_factory=MaskConfig)
    """Dynamic masks and the static/dynamic split."""
    triangulation: TriangulationConfig = field(default_factory=TriangulationConfig)
    """Per-frame triangulation."""
    velocity: VelocityConfig = field(default_factory=VelocityConfig)
    """Velocity estimation."""
    merge: MergeConfig = field(default_factory=MergeConfig)
    """Static merge, background shell and point cap."""
    seed: int = 0
    """Random seed (RANSAC, triangulation, point cap)."""
    num_workers: int = 0
    """Frames masked and triangulated in parallel by this many forked processes; 0: one per CPU
    core, at most 4 (1 when SIFT runs on the GPU); 1: in this process. The result is identical
    to one process; on 2 cores, 19 cameras at 1352×1014 peaked at 2.1 GiB over all processes."""
    min_points: int = 100
    """Fewer triangulated points than this: warn and return None (the caller falls back to random init)."""
    dynamic_lifespan_frames: float = 1.0
    """σt of dynamic points, in frame intervals (of the triangulated frames); applied after the cache.
    With radius_init = lifespan the flat top r already spans the paper's three frames, so σt is
    only the fall-off outside it. Measured on the benchmark scene (benchmarks/RESULTS.md, 3 seeds):
    1 frame beats the previous 3 by 2.3 dB on whole frames (38.78 vs 36.46), 2.6 dB on dynamic
    pixels, and flickers less (0.078 vs 0.204); 3 frames (σt = r's span again) lost the fast cube."""
    static_lifespan_factor: float = 3.0
    """σt of static points, in sequence lengths; applied after the cache."""
    radius_init: Literal["lifespan", "tiny"] = "lifespan"
    """lifespan: the initial lifespan is the flat top r of l(t): static points get r = half the
    sequence (T is its middle, so l(t) = 1 on every frame), dynamic points r =
    ``dynamic_radius_frames`` frame intervals (three frames for 1); σt is the fall-off outside.
    tiny (before): r = ``init_radius`` for every point, the lifespan carried by σt alone. Measured
    on the benchmark scene (benchmarks/RESULTS.md): with tiny, r stays below 0.05 frames for 99 %
    of the Gaussians through a 3000-step run (learned in log space from 1e-6), so the model ties
    the no-lifespan ablation. Applied after the cache."""
    dynamic_radius_frames: float = 0.5
    """r of dynamic points in frame intervals when radius_init = lifespan. 1 is the paper's
    three-frame lifespan (|t − T| ≤ 1); 0.5 (a departure) keeps l(t) ≥ 0.78 at the neighbouring
    frames. Measured on the benchmark scene (benchmarks/RESULTS.md, 3 seeds), 0.5 beats 1 on every
    column: whole frames 39.41 vs 38.78 dB, dynamic pixels 27.49 vs 26.77, the transients' region
    21.69 vs 20.92, static flicker 0.073 vs 0.078, Gaussians alive per frame 4486 vs 4997 (a flat top
    moves on a straight line, so at its ends a fast, curving object has left it); 0.25 and 0 flicker
    less (0.067, 0.068) but lose 0.2 dB, the transients' gain and the alive count."""
    init_radius: float = TINY_RADIUS
    """r of every point when radius_init = tiny (normalized time); applied after the cache."""
    use_cache: bool = True
    """Reuse / write ``<data>/.splat4d_cache/sharptime_init_<hash>.pt``."""
    show_progress: bool = True
    """Show a rich progress bar."""
