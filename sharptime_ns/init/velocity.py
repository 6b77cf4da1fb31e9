"""Velocities of the dynamic points.

Dynamic points of adjacent triangulated frames are associated by a kNN search (the
``knn_neighbors`` nearest dynamic points of the neighbouring frame within ``knn_max_distance``,
disambiguated by the tracks' SIFT descriptors, mutual best matches only;
``velocity_matching="nearest"`` uses the plain nearest neighbour), displacement ÷ frame interval
(central difference where both neighbours match), then a robust median over the nearest matched
points of the same frame (fills unmatched points, removes outliers). A second, guided pass matches
the still unmatched points around the positions the first-pass velocities predict.
"""

from __future__ import annotations

from typing import List, Tuple

import numpy as np
from scipy.spatial import cKDTree

from sharptime_ns.init.config import VelocityConfig
from sharptime_ns.init.triangulation import FramePoints


def _match_pair(
    a: FramePoints, b: FramePoints, max_disp: float, config: VelocityConfig
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
    config: VelocityConfig,
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
    config: VelocityConfig,
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
    config: VelocityConfig,
) -> Tuple[List[np.ndarray], float]:
    """Per frame, velocities [P_k, 3] (world units per normalized time) of its dynamic points,
    and the fraction of dynamic points matched to a neighbouring frame."""
    n = len(dynamic)
    pairs = [_match_pair(dynamic[k], dynamic[k + 1], max_disp, config) for k in range(n - 1)]
    velocities, matched = _velocities_from_pairs(dynamic, times, pairs, max_disp, smooth_radius, config)
    if config.velocity_matching == "descriptor" and guided_radius > 0 and n > 1:
        pairs = [
            _guided_pair(
                dynamic[k],
                dynamic[k + 1],
                velocities[k],
                velocities[k + 1],
                times[k + 1] - times[k],
                pairs[k],
                guided_radius,
                config,
            )
            for k in range(n - 1)
        ]
        velocities, matched = _velocities_from_pairs(dynamic, times, pairs, max_disp, smooth_radius, config)
    total = sum(d.num_points for d in dynamic)
    return velocities, (sum(int(m.sum()) for m in matched) / total if total else 0.0)


def _velocities_from_pairs(
    dynamic: List[FramePoints],
    times: np.ndarray,
    pairs: List[Tuple[np.ndarray, np.ndarray]],
    max_disp: float,
    smooth_radius: float,
    config: VelocityConfig,
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
