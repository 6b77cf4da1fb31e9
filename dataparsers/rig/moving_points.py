"""Refining the video sync of a calibrated rig with moving points (epipolar.py has the why).

1. Anchors: up to ``anchors`` instants of the reference camera's video with the most motion
   (its motion energy), far enough from every camera's ends; each camera's anchor frame is the
   one nearest in time by the coarse clock shifts.
2. Tracks: in a window of ±``half_window`` frames (+1) around each anchor frame, corners in the
   moving regions (where the window's frames differ from the anchor's), refined to sub-pixel
   and followed with pyramidal Lucas–Kanade through the window with a forward–backward check.
3. Matches per pair and anchor (``match``): B's tracks near the epipolar line of an A track at
   the anchor instant, confirmed by the other cameras (a track where the point triangulated from
   A and B projects) and by staying on A's epipolar lines through the window. Descriptors do
   not tell the views' points apart here: the moving things are small and textured with
   repeating patterns, and neighbouring corners on one epipolar line look alike.
4. Per pair the shift that puts B's tracks on A's epipolar lines (epipolar.pair_delay, with the
   calibration's bias field removed); its standard error is the larger of the Gauss–Newton one
   and the jackknife's over blocks of anchors. Pairs with enough inlier tracks and a standard
   error below ``max_pair_std`` are solved for one clock shift per camera
   (sync.least_squares_shifts, weights 1 / standard error); a camera whose least-squares
   standard error is above ``max_std`` keeps its coarse shift, with the reason logged.
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import cv2
import numpy as np

from dataparsers.camera_conventions import scale_intrinsics
from dataparsers.easyvolcap_calibration import Calibration
from dataparsers.rig.epipolar import (
    PairDelay,
    TrackResiduals,
    epipolar_lines,
    fundamental_matrix,
    pair_delay,
    track_fit,
    undistorted_pixels,
)
from dataparsers.rig.sync import ClockShifts, PairLag, least_squares_errors, least_squares_shifts
from dataparsers.video import decode_frames

CHANGE = 10
"""Grey levels by which a pixel must change within a window to count as moving."""
KLT_SIZE = 9
"""Lucas–Kanade window (pixels; 7 and 3 pyramid levels were worse at 160×120)."""
FORWARD_BACKWARD = 0.2
"""Pixels a point may miss its start by when tracked one frame forward and back."""
JACKKNIFE_BLOCKS = 5
"""Blocks of anchors left out in turn to measure how much a pair's shift depends on its points."""


@dataclass
class EpipolarSettings:
    """How the video sync is refined from moving points once the rig is calibrated."""

    enabled: bool = True
    """Refine video-only sync by the epipolar geometry of tracked moving points (off: keep the
    motion-energy shifts). Measured (benchmarks/rig_sync.py, worst camera): synthetic captures at
    640×480 go from 0.039 / 0.058 frame to 0.022 / 0.038 with pycolmap's calibration (0.015 /
    0.028 with the true one; 90 frames: 0.097 → 0.023); at 160×120 the points move too little
    (0.3 px per frame) to time any camera below ``max_std``, so all 14 captures keep their
    motion-energy shifts (0.03–0.23 frame)."""
    anchors: int = 40
    """Instants (the reference camera's frames with the most motion) at which points are matched."""
    half_window: int = 4
    """Frames tracked on each side of an anchor frame."""
    anchor_spacing: int = 1
    """Frames between two anchors at least (overlapping windows give other corners and tracks)."""
    max_width: int = 960
    """Frames are tracked at this width at most (pixels)."""
    min_tracks: int = 6
    """A camera pair needs this many inlier tracks to be used."""
    max_pair_std: float = 0.1
    """A camera pair's shift is used only if its standard error is below this (frames): the larger
    of the Gauss–Newton estimate and the jackknife's over blocks of anchors."""
    max_std: float = 0.025
    """A camera keeps its motion-energy shift unless the pairs time it to a standard error below
    this (frames; least squares over the used pairs weighted by 1 / their standard error)."""


@dataclass
class CameraTracks:
    first: int
    """Video frame of the tracks' first sample."""
    points: np.ndarray
    """[N, L, 2] OpenCV pixel coordinates at tracking resolution."""
    undistorted: np.ndarray
    """[N, L, 2] undistorted pixels (pixel centres at +0.5) at tracking resolution."""


@dataclass(frozen=True)
class EpipolarSync:
    shifts: ClockShifts
    pairs: List[Tuple[Tuple[str, str], Optional[PairDelay]]]
    """Every pair's estimate (None: no matched tracks), used or not."""
    fallback: List[str]
    """Cameras that kept their coarse shift."""
    reason: str
    """Why cameras fell back ('' when none did)."""


def refine_shifts(
    videos: Dict[str, Path],
    num_frames: Dict[str, int],
    energy: np.ndarray,
    coarse: ClockShifts,
    calibrations: Dict[str, Calibration],
    fps: float,
    reference: str,
    settings: EpipolarSettings,
) -> EpipolarSync:
    """Clock shifts refined from moving points; ``energy`` is the reference's motion energy."""
    names = list(videos)
    frames = {n: coarse.shifts[n] * fps for n in names}  # S_c in frames
    anchors = choose_anchors(energy, frames, num_frames, reference, settings)
    if not anchors:
        reason = f"no instant has ±{settings.half_window + 3} frames in every video: all cameras keep their motion-energy shifts"
        return EpipolarSync(coarse, [], names, reason)
    scaled = {n: _tracking_calibration(calibrations[n], settings.max_width) for n in names}
    tracks: Dict[str, List[Optional[CameraTracks]]] = {}
    length = 2 * settings.half_window + 3
    for name in names:
        starts = [int(round(anchor - frames[name])) - settings.half_window - 1 for anchor in anchors]
        decoded = _decode(videos[name], starts, length, scaled[name])
        windows = [[decoded.get(k) for k in range(start, start + length)] for start in starts]
        tracks[name] = [
            camera_tracks(window, start, settings.half_window + 1, scaled[name])
            if all(f is not None for f in window)
            else None
            for window, start in zip(windows, starts)
        ]
    estimates, used = [], []
    for first, second in itertools.combinations(names, 2):
        F = fundamental_matrix(scaled[first], scaled[second])
        lag = coarse.shifts[second] - coarse.shifts[first]
        matched = [
            match({n: tracks[n][k] for n in names}, scaled, frames, anchor, (first, second), fps)
            for k, anchor in enumerate(anchors)
        ]
        delay = pair_delay_with_spread([m for m in matched if m is not None], F, fps, lag)
        estimates.append(((first, second), delay))
        if delay is not None and delay.tracks >= settings.min_tracks and delay.std_frames < settings.max_pair_std:
            used.append(PairLag((first, second), delay.shift, 1.0 / max(delay.std_frames, 1e-3)))
    return _combine(coarse, used, estimates, reference, settings)


def pair_delay_with_spread(matched: List[tuple], F: np.ndarray, fps: float, lag: float) -> Optional[PairDelay]:
    """epipolar.pair_delay over the matches of all anchors (in time order), its standard error
    raised to the jackknife's over ``JACKKNIFE_BLOCKS`` blocks of consecutive anchors (points
    tracked from neighbouring anchors overlap, so their errors are not independent)."""
    if not matched:
        return None
    delay = pair_delay(*(np.concatenate(parts) for parts in zip(*matched)), F, fps, lag, bias_field=True)
    blocks = np.array_split(np.arange(len(matched)), min(JACKKNIFE_BLOCKS, len(matched)))
    if delay is None or len(blocks) < 3:
        return delay
    estimates = []
    for left_out in blocks:
        rest = [m for k, m in enumerate(matched) if k not in set(left_out.tolist())]
        partial = pair_delay(*(np.concatenate(parts) for parts in zip(*rest)), F, fps, lag, bias_field=True)
        if partial is None:
            return dataclasses.replace(delay, std_frames=float("inf"))
        estimates.append(partial.correction)
    spread = float(np.sqrt((len(blocks) - 1) / len(blocks) * np.sum((np.array(estimates) - np.mean(estimates)) ** 2)))
    return dataclasses.replace(delay, std_frames=max(delay.std_frames, spread))


def choose_anchors(
    energy: np.ndarray, frames: Dict[str, float], num_frames: Dict[str, int], reference: str, settings: EpipolarSettings
) -> List[int]:
    """Reference frames with the most motion whose windows lie inside every camera's video."""
    margin = settings.half_window + 3
    low = max(margin + frames[n] for n in frames)
    high = min(num_frames[n] - 1 - margin + frames[n] for n in frames)
    candidates = [k for k in range(int(np.ceil(low)), int(np.floor(high)) + 1) if 0 <= k < len(energy)]
    chosen: List[int] = []
    for k in sorted(candidates, key=lambda k: -energy[k]):
        if len(chosen) == settings.anchors:
            break
        if all(abs(k - c) >= settings.anchor_spacing for c in chosen):
            chosen.append(k)
    return sorted(chosen)


def camera_tracks(frames: List[np.ndarray], first: int, anchor: int, calib: Calibration) -> Optional[CameraTracks]:
    """Moving corners of ``frames[anchor]`` followed through ``frames`` (grey, uint8; video
    frames ``first`` …)."""
    if len(frames) < 2 * anchor + 1 or frames[anchor] is None:
        return None
    base = frames[anchor]
    change = np.max([cv2.absdiff(f, base) for f in frames], axis=0)
    mask = cv2.dilate((change > CHANGE).astype(np.uint8) * 255, np.ones((5, 5), np.uint8))
    corners = cv2.goodFeaturesToTrack(base, 400, 0.01, 3, mask=mask, blockSize=5)
    if corners is None or len(corners) < 2:
        return None
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 30, 0.01)
    corners = cv2.cornerSubPix(base, corners.astype(np.float32), (3, 3), (-1, -1), criteria)
    lk = dict(winSize=(KLT_SIZE, KLT_SIZE), maxLevel=2, criteria=criteria)
    points = np.full((len(corners), len(frames), 2), np.nan, np.float32)
    points[:, anchor] = corners[:, 0]
    for step in (1, -1):
        current, alive = corners.copy(), np.ones(len(corners), bool)
        k = anchor
        while 0 <= k + step < len(frames):
            moved, ok, _ = cv2.calcOpticalFlowPyrLK(frames[k], frames[k + step], current, None, **lk)
            back, ok_back, _ = cv2.calcOpticalFlowPyrLK(frames[k + step], frames[k], moved, None, **lk)
            error = np.linalg.norm((back - current)[:, 0], axis=1)
            alive &= (ok[:, 0] == 1) & (ok_back[:, 0] == 1) & (error < FORWARD_BACKWARD)
            k += step
            points[alive, k] = moved[alive, 0]
            current = moved
    complete = ~np.isnan(points).any(axis=(1, 2))
    moving = np.linalg.norm(points[:, -1] - points[:, 0], axis=1) > 0.5
    keep = complete & moving
    if keep.sum() < 2:
        return None
    points = points[keep].astype(np.float64)
    return CameraTracks(first, points, undistorted_pixels(points, calib))


def at_instant(tracks: CameraTracks, frame: float) -> Tuple[np.ndarray, np.ndarray]:
    """([N, 2] undistorted positions, [N] speeds in pixels per frame) at the camera's fractional
    ``frame`` (within its window's middle)."""
    middle = tracks.points.shape[1] // 2
    step = (tracks.undistorted[:, middle + 1] - tracks.undistorted[:, middle - 1]) / 2
    return tracks.undistorted[:, middle] + (frame - tracks.first - middle) * step, np.linalg.norm(step, axis=1)


def match(
    views: Dict[str, Optional[CameraTracks]],
    calibrations: Dict[str, Calibration],
    frames: Dict[str, float],
    instant: float,
    pair: Tuple[str, str],
    fps: float,
    fit: float = 0.5,
) -> Optional[Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """(A's tracks, their first frames, B's, theirs) matched at reference frame ``instant``
    (``frames``: each camera's coarse clock shift S_c in frames). Candidates are B's tracks near
    the epipolar line of an A track at that instant (a generous gate); a candidate is confirmed by
    the other cameras that see a track where the point triangulated from A and B projects, and
    must stay on A's epipolar lines through the window within ``fit`` pixels on average at some
    shift within a frame. Each A track takes its best candidate (most confirmations, then the
    best fit) if it is clearly better than the runner-up and no other A track claims it."""
    first, second = pair
    a, b = views[first], views[second]
    if a is None or b is None:
        return None
    xa, _ = at_instant(a, instant - frames[first])
    xb, speed_b = at_instant(b, instant - frames[second])
    F = fundamental_matrix(calibrations[first], calibrations[second])
    lines = epipolar_lines(F, xa)  # [Na, 3]
    ia, ib = np.nonzero(np.abs(lines[:, :2] @ xb.T + lines[:, 2:]) < 2.0 + 0.75 * speed_b[None])
    if not len(ia):
        return None
    support = np.zeros(len(ia))
    points = _triangulate(calibrations[first], calibrations[second], xa[ia], xb[ib])
    for name, other in views.items():
        if name in pair or other is None:
            continue
        seen, speed = at_instant(other, instant - frames[name])
        calib = calibrations[name]
        cam = points @ calib.w2c[:3, :3].T + calib.w2c[:3, 3]
        uv = cam @ calib.K.T
        projected = uv[:, :2] / np.maximum(uv[:, 2:], 1e-9)
        distance = np.linalg.norm(projected[:, None] - seen[None], axis=2)  # [candidates, N]
        support += ((distance < 1.0 + 0.75 * speed[None]) & (cam[:, 2:] > 0)).any(axis=1)
    first_a, first_b = np.full(len(ia), float(a.first)), np.full(len(ib), float(b.first))
    lag = (frames[second] - frames[first]) / fps
    residuals = TrackResiduals(a.undistorted[ia], first_a, b.undistorted[ib], first_b, F, fps, lag, 1.0)
    fits = np.where(residuals.valid.sum(1) >= 3, track_fit(residuals, 1.0), np.inf)
    # rank: more confirmations first, then the better fit; a fit above ``fit`` never ranks
    needed = min(1, len(views) - 2)
    ok = (fits < fit) & (support >= needed)
    rank = np.full((len(xa), len(xb)), np.inf)
    rank[ia[ok], ib[ok]] = fits[ok] / fit - support[ok]  # fits[ok] / fit < 1
    chosen = []
    for i in range(len(rank)):
        order = np.argsort(rank[i])
        j = order[0]
        if not np.isfinite(rank[i, j]) or np.argmin(rank[:, j]) != i:
            continue
        if len(order) > 1 and np.isfinite(rank[i, order[1]]):
            best, runner = rank[i, j], rank[i, order[1]]
            same_support = np.ceil(best) == np.ceil(runner)
            if same_support and (runner - np.ceil(runner) + 1) * fit < 2 * (best - np.ceil(best) + 1) * fit + 0.1:
                continue  # as many confirmations and not a clearly better fit
        chosen.append((i, j))
    if not chosen:
        return None
    ia, ib = np.array(chosen).T
    return a.undistorted[ia], first_a[: len(ia)], b.undistorted[ib], first_b[: len(ib)]


def _triangulate(first: Calibration, second: Calibration, xa: np.ndarray, xb: np.ndarray) -> np.ndarray:
    """[N, 3] world points from undistorted pixels (linear triangulation)."""
    pa, pb = first.K @ first.w2c[:3], second.K @ second.w2c[:3]
    homogeneous = cv2.triangulatePoints(pa, pb, xa.T.astype(np.float64), xb.T.astype(np.float64))
    return (homogeneous[:3] / np.where(np.abs(homogeneous[3]) > 1e-12, homogeneous[3], 1e-12)).T


def _combine(
    coarse: ClockShifts, used: List[PairLag], estimates, reference: str, settings: EpipolarSettings
) -> EpipolarSync:
    names = list(coarse.shifts)
    refined = least_squares_shifts(names, used, reference) if used else dict(coarse.shifts)
    errors = least_squares_errors(names, used, reference)
    fallback = [n for n in names if n != reference and not errors[n] < settings.max_std]
    reason = ""
    if fallback:
        detail = ", ".join(f"{n} ({errors[n]:.3f})" for n in fallback)
        reason = (
            f"cameras {detail} are timed by moving points to a standard error (frames) above {settings.max_std} "
            "(too little motion across the epipolar lines, or too few points tracked): they keep their "
            "motion-energy shifts"
        )
    shifts = {n: coarse.shifts[n] if n in fallback else refined[n] for n in names}
    return EpipolarSync(ClockShifts(shifts, coarse.confidence, coarse.pairs), estimates, fallback, reason)


def _tracking_calibration(calib: Calibration, max_width: int) -> Calibration:
    scale = min(1.0, max_width / calib.width)
    width, height = int(round(calib.width * scale)), int(round(calib.height * scale))
    K = scale_intrinsics(calib.K, width / calib.width, height / calib.height)
    return Calibration(K, np.asarray(calib.distortion, np.float64), calib.w2c, width, height)


def _decode(path: Path, starts: List[int], length: int, calib: Calibration) -> Dict[int, np.ndarray]:
    """Grey frames at tracking size of the windows ``start`` … ``start + length − 1`` by index;
    overlapping windows are decoded in one pass."""
    frames: Dict[int, np.ndarray] = {}
    runs: List[List[int]] = []
    for start in sorted(max(s, 0) for s in starts):
        if runs and start <= runs[-1][1]:
            runs[-1][1] = max(runs[-1][1], start + length)
        else:
            runs.append([start, start + length])
    for first, end in runs:
        for index, rgb in decode_frames(path, first, end - first):
            grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
            if grey.shape[1] != calib.width:
                grey = cv2.resize(grey, (calib.width, calib.height), interpolation=cv2.INTER_AREA)
            frames[index] = grey
    return frames
