"""Per-frame alignment of a relative (affine-invariant) disparity map to the structure-from-motion
points: the disparity 1/z of the 3D points seen in the frame is fitted by ``scale · predicted +
shift`` at their pixels, robustly (RANSAC over pairs of points, then least squares on the inliers,
repeated), in disparity space; residuals are relative to the points' disparity, so the threshold
does not depend on the reconstruction's units.

The points of a frame: its own observations when SfM registered it, else the points observed by
the nearest registered frames before and after it, projected with its interpolated pose.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

import numpy as np

from dataparsers.iphone.optical_flow import sample
from dataparsers.iphone.video_sfm import VideoSfm
from splat4d.geometry import apply_transform, project


class DepthAlignmentError(ValueError):
    """A frame's disparity cannot be aligned to the SfM points."""


@dataclass(frozen=True)
class AlignmentSettings:
    """How relative disparity is fitted to the SfM points of its frame."""

    min_points: int = 20
    """A frame needs at least this many SfM points (and as many inliers) to be aligned."""
    inlier_threshold: float = 0.1
    """A point is an inlier when the fitted disparity misses its own by less than this fraction."""
    ransac_iterations: int = 200
    """Random pairs of points tried before the least-squares refinement."""


@dataclass(frozen=True)
class AffineFit:
    scale: float
    shift: float
    inliers: np.ndarray  # bool [M]


def fit_scale_shift(predicted: np.ndarray, target: np.ndarray, settings: AlignmentSettings) -> AffineFit:
    """Robust (scale > 0, shift) with ``scale · predicted + shift ≈ target`` (both [M], target > 0);
    DepthAlignmentError when fewer than ``min_points`` points are given or agree."""
    predicted, target = np.asarray(predicted, np.float64), np.asarray(target, np.float64)
    if len(target) < settings.min_points:
        raise DepthAlignmentError(f"{len(target)} SfM points, at least {settings.min_points} are needed")
    rng = np.random.default_rng(0)
    best = np.zeros(len(target), dtype=bool)
    for _ in range(settings.ransac_iterations):
        i, j = rng.choice(len(target), 2, replace=False)
        if abs(predicted[i] - predicted[j]) < 1e-12:
            continue
        scale = (target[i] - target[j]) / (predicted[i] - predicted[j])
        inliers = _inliers(predicted, target, scale, target[i] - scale * predicted[i], settings)
        if scale > 0 and inliers.sum() > best.sum():
            best = inliers
    for _ in range(3):
        if best.sum() < max(settings.min_points, 2):
            raise DepthAlignmentError(
                f"only {int(best.sum())} of {len(target)} SfM points agree with the predicted disparity within "
                f"{settings.inlier_threshold:.0%} (at least {settings.min_points} are needed)"
            )
        # least squares weighted by 1/target: minimises the relative residuals that select the inliers
        w = 1.0 / target[best]
        A = np.stack([predicted[best], np.ones(int(best.sum()))], axis=1) * w[:, None]
        scale, shift = np.linalg.lstsq(A, target[best] * w, rcond=None)[0]
        best = _inliers(predicted, target, scale, shift, settings)
    if not scale > 0:
        raise DepthAlignmentError(f"the fitted scale {scale:.3g} is not positive (the prediction is not a disparity)")
    return AffineFit(float(scale), float(shift), best)


def _inliers(predicted: np.ndarray, target: np.ndarray, scale: float, shift: float, s: AlignmentSettings):
    return np.abs(scale * predicted + shift - target) < s.inlier_threshold * target


def frame_points(sfm: VideoSfm, t: int, size: Tuple[int, int]) -> Tuple[np.ndarray, np.ndarray]:
    """(pixels [M, 2], z-depths [M]) of the SfM points seen in used frame ``t`` (image ``size`` W, H)."""
    if sfm.registered[t]:
        own = sfm.obs_frame == t
        z = apply_transform(sfm.w2c[t], sfm.points[sfm.obs_point[own]])[:, 2]
        return sfm.obs_uv[own][z > 0], z[z > 0]
    posed = np.flatnonzero(sfm.registered)
    neighbours = [posed[posed < t].max(initial=-1), posed[posed > t].min(initial=-1)]
    seen = np.unique(sfm.obs_point[np.isin(sfm.obs_frame, [n for n in neighbours if n >= 0])])
    uv, z = project(apply_transform(sfm.w2c[t], sfm.points[seen]), sfm.K)
    inside = (z > 0) & (uv[:, 0] >= 0) & (uv[:, 0] < size[0]) & (uv[:, 1] >= 0) & (uv[:, 1] < size[1])
    return uv[inside], z[inside]


def align_disparity(
    predicted: np.ndarray, sfm: VideoSfm, t: int, settings: AlignmentSettings, known_only: bool = False
) -> Tuple[np.ndarray, AffineFit]:
    """(float32 [H, W] disparity in the reconstruction's units, 0 where not positive; the fit) of
    the relative disparity ``predicted`` [H, W] of used frame ``t``. ``known_only``: pixels where
    ``predicted`` is 0 are unknown (not fitted, left 0)."""
    height, width = predicted.shape
    uv, z = frame_points(sfm, t, (width, height))
    known = predicted > 0 if known_only else np.ones(predicted.shape, dtype=bool)
    rows, cols = (np.clip(np.floor(uv[:, k]).astype(int), 0, n - 1) for k, n in ((1, height), (0, width)))
    keep = known[rows, cols]
    try:
        values = sample(predicted[..., None].astype(np.float32), uv[keep])[:, 0]
        fit = fit_scale_shift(values, 1.0 / z[keep], settings)
    except DepthAlignmentError as err:
        raise DepthAlignmentError(f"frame {t}: cannot align the disparity to the SfM points: {err}") from err
    aligned = np.where(known, fit.scale * predicted.astype(np.float64) + fit.shift, 0.0)
    return np.where(aligned > 0, aligned, 0.0).astype(np.float32), fit


def positive_reciprocal(values: np.ndarray) -> np.ndarray:
    """float32 1 / values where values > 0, else 0 (z-depth ↔ disparity, 0 = unknown)."""
    positive = values > 0
    return np.where(positive, 1.0 / np.where(positive, values, 1.0), 0.0).astype(np.float32)
