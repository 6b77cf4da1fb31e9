"""Sub-frame time shift between two calibrated cameras from points they both track.

Why: the motion-energy sync (sync.py, pauses.py) depends on how each view weighs the moving
things, which biases its lags by up to a quarter frame (benchmarks/RESULTS.md, issue 16). Once
the rig is calibrated (from the static scene, independent of the sync), a moving point seen by
cameras A and B must lie, at every world instant, on the epipolar line in B of where A sees it.
If B's clock is off by δ, B's point is where it was δ earlier or later, off the line by δ times
its speed across the line. That does not depend on the view's texture or shading.

For one pair of cameras with a coarse shift D₀ (S_B − S_A, seconds) and matched tracks (the
same physical point followed a few frames in each video, in undistorted pixel coordinates),
the residual of a track at A's frame t is the signed distance of b(t − D·fps), B's track
interpolated in time (cubic), from the epipolar line F·a(t). We minimise a robust (Cauchy) sum
of these residuals over D on a grid within ±``search`` frames of D₀ (0.05 frame, then 0.01 near
the best), refine by a parabola, and estimate the shift's standard error from the inliers'
residuals and their speed across the epipolar lines (Gauss–Newton): points moving along the
lines carry no timing information. An error of the calibration moves the lines by a static,
smoothly varying amount, which ``bias_field`` removes (an affine function of the image position).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

import cv2
import numpy as np
from scipy.interpolate import CubicSpline

from dataparsers.easyvolcap_calibration import Calibration

CAUCHY_SCALE = 0.5
"""Pixels: residuals much larger than this (mismatches, tracking slips) barely count."""
INLIER = 1.5
"""Pixels: a track whose mean |residual| at the solution is below this is an inlier."""
GRID_STEP = 0.01
"""Frames between the shifts tried near the best of the coarse grid."""
COARSE_STEP = 0.05
"""Frames between the shifts tried over the whole search."""


@dataclass(frozen=True)
class PairDelay:
    shift: float
    """S_B − S_A in seconds (B's frame 0 after A's)."""
    correction: float
    """shift − the coarse shift, in frames."""
    std_frames: float
    """Standard error of the shift in frames (inf when the tracks do not determine it)."""
    tracks: int
    """Inlier tracks."""


def undistorted_pixels(points: np.ndarray, calib: Calibration) -> np.ndarray:
    """[..., 2] OpenCV pixel coordinates (pixel centres at integers) → undistorted coordinates
    in the calibration's convention (pixel centres at +0.5) of an ideal pinhole with the same K."""
    shape = points.shape
    flat = np.asarray(points, np.float64).reshape(-1, 1, 2) + 0.5
    if not np.any(calib.distortion):
        return flat.reshape(shape)
    out = cv2.undistortPoints(flat, calib.K, np.asarray(calib.distortion, np.float64), P=calib.K)
    return out.reshape(shape)


def fundamental_matrix(first: Calibration, second: Calibration) -> np.ndarray:
    """F with x_secondᵀ F x_first = 0 for undistorted pixel coordinates (homogeneous)."""
    relative = second.w2c @ np.linalg.inv(first.w2c)  # first camera → second camera
    rotation, t = relative[:3, :3], relative[:3, 3]
    cross = np.array([[0, -t[2], t[1]], [t[2], 0, -t[0]], [-t[1], t[0], 0]])
    return np.linalg.inv(second.K).T @ cross @ rotation @ np.linalg.inv(first.K)


def epipolar_lines(F: np.ndarray, points: np.ndarray) -> np.ndarray:
    """[..., 3] lines in the second image of ``points`` [..., 2] of the first, scaled so that
    a point's dot product with its line is its signed distance in pixels."""
    lines = np.concatenate([points, np.ones(points.shape[:-1] + (1,))], axis=-1) @ F.T
    return lines / np.maximum(np.linalg.norm(lines[..., :2], axis=-1, keepdims=True), 1e-12)


class TrackResiduals:
    """Signed epipolar distances of matched tracks as a function of the shift.

    ``tracks_a`` [M, La, 2] and ``tracks_b`` [M, Lb, 2]: M matched tracks in undistorted pixels,
    track m of A at A's frames first_a[m] … first_a[m] + La − 1 (likewise B). ``coarse``: the
    shift S_B − S_A in seconds, known to within ``search`` frames. Only A's samples whose
    instant lies inside B's track at every shift within the search count (``valid``)."""

    def __init__(self, tracks_a, first_a, tracks_b, first_b, F: np.ndarray, fps: float, coarse: float, search: float):
        tracks_a, tracks_b = np.asarray(tracks_a, np.float64), np.asarray(tracks_b, np.float64)
        self.length_b = tracks_b.shape[1]
        self.lines = epipolar_lines(F, tracks_a)  # [M, La, 3]
        # B's fractional track index of A's sample k at shift g frames after the coarse one:
        # A frame t ↔ B frame t − coarse·fps − g
        length_a = tracks_a.shape[1]
        self.base = (
            np.asarray(first_a)[:, None] + np.arange(length_a)[None] - coarse * fps - np.asarray(first_b)[:, None]
        )
        self.valid = (self.base - search >= 0) & (self.base + search <= self.length_b - 1)
        self.counts = np.maximum(self.valid.sum(1), 1)
        # per-track cubic splines of B's samples: coefficients [4, Lb − 1, M, 2] of each interval
        self.coefficients = CubicSpline(np.arange(self.length_b), np.moveaxis(tracks_b, 1, 0), axis=0).c
        self.track = np.arange(len(tracks_a))[:, None].repeat(length_a, 1)

    def __call__(self, g: float) -> np.ndarray:
        """[M, La] signed distances in pixels (0 where not valid) at shift g (frames after the coarse one)."""
        index = np.clip(self.base - g, 0, self.length_b - 1)
        interval = np.minimum(index.astype(np.int64), self.length_b - 2)
        dx = (index - interval)[..., None]
        c = self.coefficients[:, interval, self.track]  # [4, M, La, 2]
        b = ((c[0] * dx + c[1]) * dx + c[2]) * dx + c[3]
        r = np.einsum("mkc,mkc->mk", self.lines[..., :2], b) + self.lines[..., 2]
        return np.where(self.valid, r, 0.0)

    def mean_abs(self, g: float) -> np.ndarray:
        """[M] mean |distance| per track."""
        return np.abs(self(g)).sum(1) / self.counts


def track_fit(residuals: TrackResiduals, search: float, step: float = 0.05) -> np.ndarray:
    """[M] each track's smallest mean |distance| over shifts within ±``search`` frames (for
    telling the right match of a point from others near the same epipolar line)."""
    return np.min([residuals.mean_abs(g) for g in np.arange(-search, search + step / 2, step)], axis=0)


def pair_delay(
    tracks_a: np.ndarray,
    first_a: np.ndarray,
    tracks_b: np.ndarray,
    first_b: np.ndarray,
    F: np.ndarray,
    fps: float,
    coarse: float,
    search: float = 1.0,
    bias_field: bool = False,
) -> Optional[PairDelay]:
    """The shift S_B − S_A (seconds) that best puts B's tracks on the epipolar lines of A's
    (arguments: TrackResiduals). With ``bias_field`` the residuals are first freed of an affine
    function of A's image position (fitted to the inliers at every shift tried): what an error
    of the calibration adds to them does not change with time, unlike what the shift adds.
    None when no track has two samples inside B's in time or no track fits."""
    if not len(tracks_a) or np.shape(tracks_b)[1] < 3:
        return None
    residuals = TrackResiduals(tracks_a, first_a, tracks_b, first_b, F, fps, coarse, search)
    valid, counts = residuals.valid, residuals.counts
    usable = valid.sum(1) >= 2
    if not usable.any():
        return None
    best, inliers = _solve(residuals, valid, counts, usable, search)
    if not inliers.any():
        return None
    if bias_field:
        points = np.asarray(tracks_a, np.float64)
        scale = max(float(np.ptp(points[..., 0])), float(np.ptp(points[..., 1])), 1.0)
        design = np.concatenate([np.ones(points.shape[:-1] + (1,)), (points - points.mean((0, 1))) / scale], axis=-1)
        fit_on = valid & inliers[:, None]
        if int(fit_on.sum()) > 3 * design.shape[-1]:
            plain = residuals

            def residuals(g: float) -> np.ndarray:  # noqa: F811 (the bias-free residuals from here on)
                r = plain(g)
                coef = np.linalg.lstsq(design[fit_on], r[fit_on], rcond=None)[0]
                return np.where(valid, r - design @ coef, 0.0)

            best, inliers = _solve(residuals, valid, counts, usable, search)
            if not inliers.any():
                return None
    at_best = residuals(best)
    # Gauss–Newton standard error: residual variance over the inliers' squared speed across the lines
    speed = (residuals(best + 0.5 * GRID_STEP) - residuals(best - 0.5 * GRID_STEP)) / GRID_STEP
    mask = valid & inliers[:, None]
    samples = int(mask.sum())
    information = float((speed[mask] ** 2).sum())
    variance = float((at_best[mask] ** 2).sum()) / max(samples - 1, 1)
    std = float(np.sqrt(max(variance, 0.01**2) / information)) if information > 0 else float("inf")
    return PairDelay(coarse + best / fps, best, std, int(inliers.sum()))


def _solve(
    residuals, valid: np.ndarray, counts: np.ndarray, usable: np.ndarray, search: float
) -> Tuple[float, np.ndarray]:
    """(shift in frames after the coarse one minimising the robust cost of ``residuals(g)``,
    [M] inlier tracks)."""

    def cost(g: float) -> float:
        rho = np.log1p((residuals(g) / CAUCHY_SCALE) ** 2)
        return float(((rho * valid).sum(1) / counts * usable).sum())

    # coarse to fine: every COARSE_STEP over the search, then every GRID_STEP near the best
    coarse_grid = np.arange(-search, search + COARSE_STEP / 2, COARSE_STEP)
    centre = float(coarse_grid[int(np.argmin([cost(g) for g in coarse_grid]))])
    grid = np.arange(centre - COARSE_STEP, centre + COARSE_STEP + GRID_STEP / 2, GRID_STEP)
    costs = np.array([cost(g) for g in grid])
    k = int(np.argmin(costs))
    best = float(grid[k])
    if 0 < k < len(grid) - 1:
        left, mid, right = costs[k - 1], costs[k], costs[k + 1]
        curvature = left - 2 * mid + right
        if curvature > 0:
            best += 0.5 * GRID_STEP * (left - right) / curvature
    mean_abs = np.abs(residuals(best)).sum(1) / counts
    return best, usable & (mean_abs < INLIER)
