"""Sub-frame lag between two log motion signals from the timing of the pauses both cameras see.

Why: each view weighs the moving things differently (their size, texture and contrast in that
view, what lies behind them, the motion energy threshold), so one camera's motion energy is not
an affine copy of another's. The cross-correlation peak (sync.estimate_lag) follows the whole
curve's shape and is pulled by these differences, by 0.1–0.3 frame on the synthetic rig
captures (benchmarks/rig_sync.py). A pause, where everything stops, happens at the same instant
in every view, and while things stand still they do not change how a view sees them, so the
dip of the log motion energy around a pause is nearly the same curve in every view up to a
monotone map of its values (each view's own gain, threshold and floor).

A monotone map keeps the times at which a dip's flanks cross a level, only relabelling the
level. So for each dip we take the two crossing times per level, and describe the dip by the
midpoint of the crossings as a function of their distance (the dip's width at that level),
which is free of the level's value. Two views of the same pause have the same midpoint-versus-
width curve, shifted by their lag: the lag is the mean midpoint difference over the widths both
dips span.
"""

from __future__ import annotations

from typing import List, Optional, Tuple

import numpy as np
from scipy.signal import find_peaks

MIN_DEPTH = 1.0
"""A pause is a minimum of the log motion signal at least this deep below its neighbouring
peaks (a factor e ≈ 2.7 less motion energy); shallower dips are slowdowns whose timing differs
between views."""
REACH = 12
"""Samples searched on each side of a minimum for the dip's flanks."""
LEVELS = (0.15, 0.85)
"""Fraction of a dip's depth between which its crossings are used: the bottom is flattened by
the energy threshold and noise, the rim already belongs to the motion around the pause."""
NUM_LEVELS = 40
NUM_WIDTHS = 20
MATCH = 1.5
"""Samples by which two views' minima may disagree, after the coarse lag, to be one pause."""


def pause_lag(reference: np.ndarray, signal: np.ndarray, coarse: float) -> Optional[float]:
    """The lag L with signal(n) ≈ reference(n + L) from the pauses both log motion signals
    show within ``MATCH`` samples of the ``coarse`` lag (their depth-weighted mean), or None
    when they share no pause."""
    total, weight = 0.0, 0.0
    signal_pauses = _pauses(signal)
    for k_ref, depth_ref in _pauses(reference):
        matches = [(k, depth) for k, depth in signal_pauses if abs(k + coarse - k_ref) <= MATCH]
        if not matches:
            continue
        shape_ref = _dip_shape(reference, k_ref)
        for k_sig, depth_sig in matches:
            shift = _midpoint_shift(shape_ref, _dip_shape(signal, k_sig))
            if shift is not None:
                w = min(depth_ref, depth_sig)
                total, weight = total + w * shift, weight + w
    return total / weight if weight else None


def _pauses(x: np.ndarray) -> List[Tuple[int, float]]:
    """(index, depth) of the minima of ``x`` at least ``MIN_DEPTH`` deep, away from the ends."""
    index, props = find_peaks(-np.asarray(x, dtype=np.float64), prominence=MIN_DEPTH)
    return [(int(k), float(d)) for k, d in zip(index, props["prominences"]) if 2 <= k <= len(x) - 3]


def _dip_shape(x: np.ndarray, k: int) -> Tuple[np.ndarray, np.ndarray]:
    """Width and midpoint (samples) of the dip at minimum ``k`` at levels across ``LEVELS`` of
    its depth below the lower of its two rims."""
    rim = min(x[max(0, k - REACH) : k + 1].max(), x[k : k + REACH + 1].max())
    widths, midpoints = [], []
    if rim <= x[k]:  # flat for REACH samples on a side: no flank to time
        return np.asarray(widths), np.asarray(midpoints)
    for level in x[k] + (rim - x[k]) * np.linspace(*LEVELS, NUM_LEVELS):
        crossing = _crossings(x, k, level)
        if crossing is not None:
            widths.append(crossing[1] - crossing[0])
            midpoints.append(0.5 * (crossing[0] + crossing[1]))
    return np.asarray(widths), np.asarray(midpoints)


def _crossings(x: np.ndarray, k: int, level: float) -> Optional[Tuple[float, float]]:
    """Where ``x`` (linearly interpolated) last rises above ``level`` before ``k`` and first
    after it; None if it stays below up to an end."""
    left = k
    while left > 0 and x[left - 1] < level:
        left -= 1
    right = k
    while right < len(x) - 1 and x[right + 1] < level:
        right += 1
    if left == 0 or right == len(x) - 1:
        return None
    before = left - 1 + (x[left - 1] - level) / (x[left - 1] - x[left])
    after = right + (level - x[right]) / (x[right + 1] - x[right])
    return before, after


def _midpoint_shift(reference: Tuple[np.ndarray, np.ndarray], signal: Tuple[np.ndarray, np.ndarray]) -> Optional[float]:
    """Mean difference of the reference's and the signal's midpoint over the widths both span."""
    (w_ref, m_ref), (w_sig, m_sig) = reference, signal
    if len(w_ref) < 3 or len(w_sig) < 3:
        return None
    low, high = max(w_ref.min(), w_sig.min()), min(w_ref.max(), w_sig.max())
    if high <= low:
        return None
    widths = np.linspace(low, high, NUM_WIDTHS)
    order_ref, order_sig = np.argsort(w_ref), np.argsort(w_sig)
    at_ref = np.interp(widths, w_ref[order_ref], m_ref[order_ref])
    at_sig = np.interp(widths, w_sig[order_sig], m_sig[order_sig])
    return float(np.mean(at_ref - at_sig))
