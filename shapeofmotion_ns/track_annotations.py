"""Ground truth for the tracking metrics, in the layout of track_metrics.TrackAnnotations, with
pixels of the training images and metric 3D positions.

- keypoints: DyCheck's keypoints of K training frames (the iphone parser's ``keypoints``
  metadata); their 3D positions are unprojected at a depth map (lidar, as the reference) where
  all four neighbouring depth pixels are known;
- tracks: exact 3D tracks (a synthetic scene's ``ground_truth/tracks_3d.npz``: ``positions``
  [P, T, 3] in metres in the world of the cameras, ``visible`` [P, T]) at K training frames,
  projected into the training cameras.
Metric positions are nerfstudio positions × ``metric_scale`` (metres per nerfstudio unit; the
parser's ``metric_scale`` metadata), so the method's world differs from them by a scale only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from nerfstudio.cameras.cameras import Cameras
from nerfstudio.models.splatfacto import get_viewmat
from torch import Tensor

from shapeofmotion_ns.geometry import unproject
from shapeofmotion_ns.track_batch import known_depth_at
from shapeofmotion_ns.track_metrics import TrackAnnotations
from splat4d.geometry import apply_transform, camera_centres, project


@dataclass
class AnnotatedFrames:
    """Annotations of K training frames (image indices ``frames``)."""

    frames: Tensor  # [K] training image indices
    annotations: TrackAnnotations


def from_keypoints(
    cameras: Cameras, frames: Tensor, points: Tensor, depth_of: Callable[[int], Tensor], metric_scale: float
) -> AnnotatedFrames:
    """frames [K]; points [K, N, 3] (x, y, visible) in pixels of ``cameras``; depth_of(i): the
    z-depth map [H, W] of training image i in nerfstudio units (0 = unknown)."""
    w2c = get_viewmat(cameras.camera_to_worlds[frames])
    Ks = cameras.get_intrinsics_matrices()[frames]
    xy, visible = points[..., :2].float(), points[..., 2] > 0.5
    depth = torch.stack([known_depth_at(depth_of(int(i)), xy[k]) for k, i in enumerate(frames)])
    c2w = torch.linalg.inv(w2c)
    world = apply_transform(c2w[:, None], unproject(xy, depth, Ks[:, None]))
    return AnnotatedFrames(
        frames,
        TrackAnnotations(
            points_2d=xy,
            visible=visible,
            points_3d=world * metric_scale,
            valid_3d=visible & (depth > 0),
            camera_centres=camera_centres(w2c) * metric_scale,
        ),
    )


def evenly_spaced(count: int, total: int) -> Tensor:
    """``count`` indices spread over range(total) (all of them when count ≥ total)."""
    return torch.from_numpy(np.unique(np.linspace(0, total - 1, min(count, total)).round().astype(np.int64)))


def from_ground_truth_tracks(
    path: Path, cameras: Cameras, time_ids: Tensor, to_nerfstudio: Tensor, metric_scale: float, max_frames: int
) -> AnnotatedFrames:
    """Tracks of ``path`` at up to ``max_frames`` evenly spaced training frames; ``to_nerfstudio``
    [4, 4] maps the tracks' world (metres) to nerfstudio units (the dataparser's transform × scale)."""
    with np.load(path) as data:
        positions = torch.from_numpy(data["positions"]).float()  # [P, T, 3]
        visible = torch.from_numpy(data["visible"]).bool()
    frames = evenly_spaced(max_frames, len(time_ids))
    steps = time_ids[frames].long()
    world_ns = apply_transform(to_nerfstudio, positions[:, steps].transpose(0, 1))  # [K, P, 3]
    w2c = get_viewmat(cameras.camera_to_worlds[frames])
    Ks = cameras.get_intrinsics_matrices()[frames]
    xy, z = project(apply_transform(w2c[:, None], world_ns), Ks[:, None])
    seen = visible[:, steps].T & (z > 0)
    return AnnotatedFrames(
        frames,
        TrackAnnotations(
            points_2d=xy,
            visible=seen,
            points_3d=world_ns * metric_scale,
            valid_3d=seen,
            camera_centres=camera_centres(w2c) * metric_scale,
        ),
    )
