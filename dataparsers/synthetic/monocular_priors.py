"""Priors of a synthetic monocular scene, computed from the renderer's ground truth and degraded
like real ones (lidar, aligned Depth Anything, Track-Anything masks, TAPIR tracks), plus the
exact quantities they are degraded from: 3D tracks, covisibility, keypoints.

A point is visible in a camera when it projects inside the image, in front of the camera, its
object is shown at that frame, and the rendered depth at its pixel agrees with its own depth.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Sequence, Tuple

import cv2
import numpy as np

from dataparsers.synthetic.scene import Box, PinholeCamera, RenderResult, SyntheticScene

DEPTH_TOLERANCE = (0.02, 0.02)  # visible if |z − rendered z| < 0.02 · z + 0.02


@dataclass
class PriorDegradation:
    """How far the written priors are from the ground truth."""

    disparity_scale_error: float = 0.05
    """Each frame's disparity is scaled by a factor drawn from 1 ± this."""
    disparity_shift_error: float = 0.03
    """Each frame's disparity is shifted by up to ± this × its median disparity."""
    disparity_noise: float = 0.01
    """Per-pixel disparity noise (standard deviation relative to the frame's median disparity)."""
    lidar_noise: float = 0.01
    """Relative per-pixel noise of the lidar depth."""
    lidar_subsample: int = 4
    """The lidar measures every this-many pixels (nearest-neighbour upsampled, like the iPhone's)."""
    lidar_range: float = 6.0
    """Lidar returns nothing (0) beyond this depth."""
    track_stride: int = 4
    """Query points lie on a grid with this spacing in 1x pixels, inside the motion mask."""
    track_jitter: float = 0.3
    """Standard deviation of the tracks' position error in pixels."""
    track_dropout: float = 0.05
    """Probability that a track is lost in a target frame (large error, low confidence)."""
    mask_error: int = 1
    """Motion masks are eroded or dilated by up to this many pixels."""
    keypoint_frames: int = 5
    """Training frames annotated with keypoints."""


@dataclass
class GroundTruthTracks:
    """Exact 3D tracks of the 2D tracks' query points (all query frames concatenated, P in total)."""

    query_index: np.ndarray  # [P] int: training frame of the query
    query_uv: np.ndarray  # [P, 2] 1x pixel of the query (centres at +0.5)
    object_id: np.ndarray  # [P] int: moving object, −1 static
    positions: np.ndarray  # [P, F, 3] world position at every time step
    visible: np.ndarray  # [P, F] bool: visible in the training camera at that time


def pinhole_project(cam: PinholeCamera, points: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Pixels [P, 2] and z-depths [P] of world ``points`` [P, 3] in an undistorted camera."""
    assert cam.distortion is None, "the monocular scenes use undistorted cameras"
    cam_points = cam.to_camera(points)
    z = cam_points[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        uv = cam_points[:, :2] / z[:, None] * np.diag(cam.K)[:2] + cam.K[:2, 2]
    return uv, z


def project_visible(
    cam: PinholeCamera, depth: np.ndarray, points: np.ndarray, shown: np.ndarray
) -> Tuple[np.ndarray, np.ndarray]:
    """Pixels [P, 2] of world ``points`` [P, 3] and whether each is visible (module docstring);
    ``depth`` is the camera's rendered depth, ``shown`` [P] whether each point's object is shown."""
    uv, z = pinhole_project(cam, points)
    inside = (z > 1e-6) & (uv[:, 0] >= 0) & (uv[:, 0] < cam.width) & (uv[:, 1] >= 0) & (uv[:, 1] < cam.height)
    j = np.clip(np.nan_to_num(np.floor(uv[:, 0])), 0, cam.width - 1).astype(int)
    i = np.clip(np.nan_to_num(np.floor(uv[:, 1])), 0, cam.height - 1).astype(int)
    agrees = np.abs(depth[i, j] - z) < DEPTH_TOLERANCE[0] * z + DEPTH_TOLERANCE[1]
    return uv, inside & shown & agrees


def shown_mask(scene: SyntheticScene, object_id: np.ndarray, frame: float) -> np.ndarray:
    """[P] whether each point's object is shown at ``frame`` (static points always are)."""
    shown = object_id < 0
    for oid in np.unique(object_id[object_id >= 0]):
        shown[object_id == oid] = scene.is_visible(int(oid), frame)
    return shown


def surface_points(cam: PinholeCamera, render: RenderResult, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """World points [P, 3] seen at the centres of pixels (rows, cols)."""
    uv = np.stack([cols + 0.5, rows + 0.5], axis=1).astype(np.float64)
    origin, dirs = cam.pixel_rays(uv)
    return origin + dirs * render.depth[rows, cols, None]


def degrade_mask(mask: np.ndarray, rng: np.random.Generator, max_error: int) -> np.ndarray:
    """``mask`` eroded (negative draw) or dilated (positive) by up to ``max_error`` pixels."""
    steps = int(rng.integers(-max_error, max_error + 1))
    if steps == 0:
        return mask.copy()
    op = cv2.dilate if steps > 0 else cv2.erode
    return op(mask.astype(np.uint8), np.ones((3, 3), np.uint8), iterations=abs(steps)).astype(bool)


def lidar_depth(depth: np.ndarray, rng: np.random.Generator, cfg: PriorDegradation) -> np.ndarray:
    """float32 [H, W, 1]: low-resolution, noisy, range-limited z-depth (0 = no return)."""
    s = cfg.lidar_subsample
    low = depth[s // 2 :: s, s // 2 :: s]
    up = np.repeat(np.repeat(low, s, axis=0), s, axis=1)[: depth.shape[0], : depth.shape[1]]
    noisy = up * (1.0 + rng.normal(0.0, cfg.lidar_noise, up.shape))
    return np.where(up < cfg.lidar_range, noisy, 0.0).astype(np.float32)[..., None]


def aligned_disparity(depth: np.ndarray, unit: float, rng: np.random.Generator, cfg: PriorDegradation) -> np.ndarray:
    """float32 [H, W] disparity 1/z of ``depth`` (metres) with z measured in units of ``unit``
    metres, with a per-frame scale and shift error and per-pixel noise (a monocular estimate
    aligned imperfectly)."""
    disparity = unit / depth
    median = float(np.median(disparity))
    scale = 1.0 + rng.uniform(-cfg.disparity_scale_error, cfg.disparity_scale_error)
    shift = rng.uniform(-cfg.disparity_shift_error, cfg.disparity_shift_error) * median
    noise = rng.normal(0.0, cfg.disparity_noise * median, disparity.shape)
    return (scale * disparity + shift + noise).astype(np.float32)


def ground_truth_tracks(
    scene: SyntheticScene,
    cams: Sequence[PinholeCamera],
    renders: Sequence[RenderResult],
    masks: Sequence[np.ndarray],
    stride: int,
) -> GroundTruthTracks:
    """3D tracks of grid points (spacing ``stride``) inside ``masks`` of every training frame."""
    frames = np.arange(len(cams), dtype=np.float64)
    parts: List[GroundTruthTracks] = []
    for q, (cam, render, mask) in enumerate(zip(cams, renders, masks)):
        rows, cols = np.mgrid[0 : cam.height : stride, 0 : cam.width : stride]
        keep = mask[rows, cols]
        rows, cols = rows[keep], cols[keep]
        oid = render.object_id[rows, cols].astype(np.int64)
        positions = scene.track_points(surface_points(cam, render, rows, cols), oid, q, frames)  # [F, P, 3]
        visible = np.stack(
            [
                project_visible(cams[t], renders[t].depth, positions[t], shown_mask(scene, oid, t))[1]
                for t in range(len(cams))
            ],
            axis=1,
        )
        parts.append(
            GroundTruthTracks(
                np.full(len(oid), q),
                np.stack([cols + 0.5, rows + 0.5], axis=1),
                oid,
                positions.transpose(1, 0, 2),
                visible,
            )
        )
    return GroundTruthTracks(
        *(
            np.concatenate([getattr(p, f) for p in parts])
            for f in ("query_index", "query_uv", "object_id", "positions", "visible")
        )
    )


def degraded_track(
    cam: PinholeCamera, positions: np.ndarray, visible: np.ndarray, rng: np.random.Generator, cfg: PriorDegradation
) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(uv [P, 2], occlusion logit [P], expected-distance logit [P]) of points at ``positions`` in
    one target frame, as a TAPIR-like tracker would report them."""
    uv, _ = pinhole_project(cam, positions)
    uv = uv + rng.normal(0.0, cfg.track_jitter, uv.shape)
    occlusion = np.where(visible, -4.0, 4.0) + rng.normal(0.0, 1.0, len(uv))
    expected_dist = -3.0 + rng.normal(0.0, 0.5, len(uv))
    lost = rng.random(len(uv)) < cfg.track_dropout
    uv[lost] += rng.normal(0.0, 8.0, (int(lost.sum()), 2))
    expected_dist[lost] = 3.0
    return uv, occlusion, expected_dist


def covisible_mask(
    scene: SyntheticScene,
    cam: PinholeCamera,
    render: RenderResult,
    frame: int,
    train_cams: Sequence[PinholeCamera],
    train_renders: Sequence[RenderResult],
) -> np.ndarray:
    """bool [H, W]: the surface seen at each pixel of ``cam`` at ``frame`` is visible in the
    training camera at one time step or more (moving with its object)."""
    rows, cols = np.mgrid[0 : cam.height, 0 : cam.width]
    rows, cols = rows.reshape(-1), cols.reshape(-1)
    oid = render.object_id[rows, cols].astype(np.int64)
    points = surface_points(cam, render, rows, cols)
    frames = np.arange(len(train_cams), dtype=np.float64)
    positions = scene.track_points(points, oid, frame, frames)
    seen = np.zeros(len(points), dtype=bool)
    for t, (train_cam, train_render) in enumerate(zip(train_cams, train_renders)):
        seen |= project_visible(train_cam, train_render.depth, positions[t], shown_mask(scene, oid, t))[1]
    return seen.reshape(cam.height, cam.width)


def keypoint_anchors(scene: SyntheticScene) -> Tuple[np.ndarray, np.ndarray]:
    """(object ids [N], object-local points [N, 3]): three surface points per moving object, on
    its +x, −y (towards the cameras) and +z sides."""
    ids, points = [], []
    for oid, obj in enumerate(scene.objects):
        extent = np.asarray(obj.shape.half_extents) if isinstance(obj.shape, Box) else np.full(3, obj.shape.radius)
        for axis in range(3):
            point = np.zeros(3)
            point[axis] = extent[axis] * (1 if axis != 1 else -1)
            ids.append(oid)
            points.append(point)
    return np.array(ids), np.array(points)


def keypoint_rows(scene: SyntheticScene, cam: PinholeCamera, render: RenderResult, frame: int) -> np.ndarray:
    """[N, 3] (x, y, visible) of the keypoint anchors at ``frame`` in 2x-image coordinates."""
    ids, local = keypoint_anchors(scene)
    world = np.stack(
        [
            scene.object_pose(int(oid), frame)[:3, :3] @ p + scene.object_pose(int(oid), frame)[:3, 3]
            for oid, p in zip(ids, local)
        ]
    )
    uv, visible = project_visible(cam, render.depth, world, shown_mask(scene, ids, frame))
    return np.concatenate([uv / 2.0, visible[:, None].astype(np.float64)], axis=1)
