"""Static / dynamic split: a point is dynamic when its reprojection lands in the dynamic mask in
more than ``dynamic_vote_fraction`` of the cameras that observe it (its track)."""

from __future__ import annotations

from typing import List, Tuple

import numpy as np

from sharptime_ns.init.triangulation import FramePoints
from splat4d.geometry import apply_transform, project


def sample_mask(mask: np.ndarray, xy: np.ndarray, width: int, height: int) -> np.ndarray:
    """Mask values [N] at pixel coordinates xy [N, 2] of a width × height image (OpenCV pixel
    centres at +0.5; points outside the image read False)."""
    mh, mw = mask.shape
    xy = np.nan_to_num(np.asarray(xy, dtype=np.float64), nan=-1.0, posinf=-1.0, neginf=-1.0)
    inside = (xy[:, 0] >= 0) & (xy[:, 0] < width) & (xy[:, 1] >= 0) & (xy[:, 1] < height)
    mx = np.clip(np.floor(xy[:, 0] * (mw / width)).astype(np.int64), 0, mw - 1)
    my = np.clip(np.floor(xy[:, 1] * (mh / height)).astype(np.int64), 0, mh - 1)
    return inside & mask[my, mx]


def split_points(
    points: FramePoints,
    masks: List[np.ndarray],
    images: List[np.ndarray],
    Ks: np.ndarray,
    w2c: np.ndarray,
    vote_fraction: float,
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
        uv, z = project(apply_transform(w2c[c], points.xyz[point_of_obs[sel]]), Ks[c])
        h, w = images[c].shape[:2]
        votes[sel] = sample_mask(masks[c], uv, w, h)
        depth[sel] = z
    counts = np.bincount(point_of_obs, minlength=P)
    dyn_votes = np.bincount(point_of_obs, weights=votes.astype(np.float64), minlength=P)
    mean_depth = np.bincount(point_of_obs, weights=depth, minlength=P) / np.maximum(counts, 1)
    return dyn_votes > vote_fraction * counts, mean_depth
