"""Time offsets between cameras from per-camera signals sampled on a regular grid (motion energy
per video frame, or decoded audio samples).

``estimate_lag`` finds the lag L with signal(n) ≈ reference(n + L): the peak of their normalised
cross-correlation (each lag's Pearson correlation over the overlap), refined to a fraction of a
sample by a parabola through the peak and its two neighbours. ``solve_clock_shifts`` does this
for every pair of cameras and solves the pairwise lags for one clock shift per camera by
confidence-weighted least squares, so every camera is timed against all the others. For log
motion-energy signals it can refine each pair's lag by the timing of the pauses both cameras see
(pauses.py), which depends less than the correlation peak on how each view weighs the motion.

Convention: camera c's frame 0 is at world time S_c (the reference camera has S = 0). SelfCap's
sync.json stores offset_c = −S_c: frame n of camera c is at n / fps − offset_c.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Dict, List, Tuple

import numpy as np

from dataparsers.rig.pauses import pause_lag


class SyncError(ValueError):
    """The cameras' time offsets cannot be determined from the signals."""


@dataclass(frozen=True)
class Signal:
    values: np.ndarray
    """[N] samples."""
    rate: float
    """Samples per second."""
    start: float
    """Time of sample 0 in seconds after the camera's video frame 0 (the camera's own clock)."""

    def first(self, seconds: float) -> "Signal":
        """The signal's first ``seconds``."""
        return Signal(self.values[: max(1, int(round(seconds * self.rate)))], self.rate, self.start)


@dataclass(frozen=True)
class Lag:
    samples: float
    """signal(n) ≈ reference(n + samples), in samples of the signals."""
    confidence: float
    """Pearson correlation of the signals over their overlap at the integer peak."""


@dataclass(frozen=True)
class PairLag:
    cameras: Tuple[str, str]
    shift: float
    """S_second − S_first in seconds."""
    confidence: float


@dataclass(frozen=True)
class ClockShifts:
    shifts: Dict[str, float]
    """S_c: world time of camera c's frame 0 in seconds (0 for the reference)."""
    confidence: Dict[str, float]
    """Per camera: the best confidence among its pairs."""
    pairs: List[PairLag]

    def sync_offsets(self) -> Dict[str, float]:
        """SelfCap sync.json values: offset_c = −S_c seconds."""
        return {name: -shift for name, shift in self.shifts.items()}


def estimate_lag(reference: np.ndarray, signal: np.ndarray, max_lag: int, min_overlap: float = 0.5) -> Lag:
    """The lag of ``signal`` behind ``reference`` within ±``max_lag`` samples, considering only
    lags at which the signals overlap for at least ``min_overlap`` of the shorter one.
    A SyncError if a signal is constant (no information) or no lag qualifies."""
    a, b = _standardized(reference, "reference"), _standardized(signal, "signal")
    lags, corr = _normalized_correlation(a, b, max_lag, min_overlap)
    if not len(lags):
        raise SyncError(f"the signals never overlap by {min_overlap:.0%} within ±{max_lag} samples")
    k = int(np.argmax(corr))
    refined = float(lags[k])
    if 0 < k < len(corr) - 1:
        left, mid, right = corr[k - 1], corr[k], corr[k + 1]
        curvature = left - 2 * mid + right
        if curvature < 0:
            refined += 0.5 * (left - right) / curvature
    return Lag(refined, float(corr[k]))


def solve_clock_shifts(
    signals: Dict[str, Signal], reference: str, max_shift: float, min_confidence: float, pauses: bool = False
) -> ClockShifts:
    """Clock shift S_c of every camera (S_reference = 0) from all pairwise lags within ±``max_shift``
    seconds; pairs below ``min_confidence`` are not used. With ``pauses`` (log motion signals) a
    pair's lag is taken from the pauses both cameras see where they share one. A SyncError names
    the cameras whose shift is not determined (no usable pair links them to the reference)."""
    names = list(signals)
    pairs = []
    for first, second in itertools.combinations(names, 2):
        a, b = signals[first], signals[second]
        if not np.isclose(a.rate, b.rate, rtol=1e-6):
            raise SyncError(f"cameras {first} and {second} have signals at different rates ({a.rate}, {b.rate})")
        try:
            lag = estimate_lag(a.values, b.values, int(np.ceil(max_shift * a.rate)) + 1)
        except SyncError as err:
            raise SyncError(f"cameras {first} and {second}: {err}") from err
        samples = lag.samples
        if pauses:
            refined = pause_lag(a.values, b.values, lag.samples)
            samples = lag.samples if refined is None else refined
        pairs.append(PairLag((first, second), samples / a.rate + a.start - b.start, lag.confidence))
    confidence = {n: max((p.confidence for p in pairs if n in p.cameras), default=-1.0) for n in names}
    usable = [p for p in pairs if p.confidence >= min_confidence]
    linked = linked_to(reference, names, usable)
    unlinked = [n for n in names if n not in linked]
    if unlinked:
        detail = ", ".join(f"{n} (best correlation {confidence[n]:.2f})" for n in unlinked)
        raise SyncError(
            f"cannot determine the time offsets of cameras {detail}: no signal correlates with the other "
            f"cameras' by at least {min_confidence} within ±{max_shift} s"
        )
    return ClockShifts(least_squares_shifts(names, usable, reference), confidence, pairs)


def least_squares_shifts(names: List[str], pairs: List[PairLag], reference: str) -> Dict[str, float]:
    """Clock shifts S_c (S_reference = 0) that best explain the pairs' shifts, each pair's
    equation weighted by its confidence (for independent errors: 1 / standard error)."""
    rows, rhs, index = _weighted_system(names, pairs, reference)
    shifts = np.linalg.lstsq(rows, rhs, rcond=None)[0]
    shifts -= shifts[index[reference]]
    return {n: float(shifts[index[n]]) for n in names}


def least_squares_errors(names: List[str], pairs: List[PairLag], reference: str) -> Dict[str, float]:
    """Standard error of each camera's least-squares shift when every pair's confidence is 1 over
    its standard error (in the unit of those errors); inf where no pair links it to the reference."""
    rows, _, index = _weighted_system(names, pairs, reference)
    normal = rows.T @ rows
    linked = linked_to(reference, names, pairs)
    keep = [index[n] for n in names if n in linked]
    covariance = np.linalg.pinv(normal[np.ix_(keep, keep)])
    errors = {n: float("inf") for n in names}
    for k, column in enumerate(keep):
        errors[names[column]] = float(np.sqrt(max(covariance[k, k], 0.0)))
    return errors


def _weighted_system(names: List[str], pairs: List[PairLag], reference: str):
    index = {n: k for k, n in enumerate(names)}
    rows = np.zeros((len(pairs) + 1, len(names)))
    rhs = np.zeros(len(pairs) + 1)
    for row, pair in enumerate(pairs):
        rows[row, index[pair.cameras[1]]], rows[row, index[pair.cameras[0]]] = pair.confidence, -pair.confidence
        rhs[row] = pair.confidence * pair.shift
    rows[-1, index[reference]] = 1e6  # S_reference = 0 (a hard constraint next to 1 / error weights)
    return rows, rhs, index


def linked_to(reference: str, names: List[str], pairs: List[PairLag]) -> set:
    linked, frontier = {reference}, [reference]
    while frontier:
        current = frontier.pop()
        for pair in pairs:
            if current in pair.cameras:
                other = pair.cameras[1] if pair.cameras[0] == current else pair.cameras[0]
                if other not in linked:
                    linked.add(other)
                    frontier.append(other)
    return linked


def _standardized(x: np.ndarray, what: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    std = x.std() if x.size else 0.0
    if x.size < 3 or not np.isfinite(std) or std <= 1e-9 * max(1.0, float(np.abs(x).max())):
        raise SyncError(f"the {what} is constant (nothing to align)")
    return (x - x.mean()) / std


def _normalized_correlation(
    a: np.ndarray, b: np.ndarray, max_lag: int, min_overlap: float
) -> Tuple[np.ndarray, np.ndarray]:
    """Lags L and the Pearson correlation of b[n] with a[n + L] over their overlap, per lag."""
    lags = np.arange(max(-max_lag, -(len(b) - 1)), min(max_lag, len(a) - 1) + 1)
    lo = np.maximum(0, -lags)  # overlap: n in [lo, hi)
    hi = np.minimum(len(b), len(a) - lags)
    count = hi - lo
    keep = count >= max(3, min_overlap * min(len(a), len(b)))
    lags, lo, hi, count = lags[keep], lo[keep], hi[keep], count[keep]
    n = 1 << int(np.ceil(np.log2(len(a) + len(b))))
    full = np.fft.irfft(np.fft.rfft(a, n) * np.conj(np.fft.rfft(b, n)), n)  # Σ_n b[n] a[n + L] at L mod n
    sum_ab = full[lags % n]
    ca, cb = np.concatenate([[0], np.cumsum(a)]), np.concatenate([[0], np.cumsum(b)])
    ca2, cb2 = np.concatenate([[0], np.cumsum(a * a)]), np.concatenate([[0], np.cumsum(b * b)])
    sum_a, sum_aa = ca[hi + lags] - ca[lo + lags], ca2[hi + lags] - ca2[lo + lags]
    sum_b, sum_bb = cb[hi] - cb[lo], cb2[hi] - cb2[lo]
    cov = sum_ab - sum_a * sum_b / count
    var_a = np.maximum(sum_aa - sum_a**2 / count, 1e-12)
    var_b = np.maximum(sum_bb - sum_b**2 / count, 1e-12)
    return lags, cov / np.sqrt(var_a * var_b)
