"""Initial motion bases and coefficients from 3D tracks (reference:
init_motion_params_with_procrustes, sample_initial_bases_centers and run_initial_optim).

1. Tracks are clustered (track_clusters.py): by k-means on their per-frame velocity directions
   (the reference) or by how rigidly they move together; small clusters are dropped.
2. Each cluster's basis is, per frame, the weighted SE(3) Procrustes fit taking its points at the
   canonical frame to that frame; frames with too little weight copy the previous fit.
3. Coefficient logits are 10·exp(−‖μ − centre_b‖) to the clusters' median canonical positions
   (``coef_init="distance"``, the reference), or 10 on the track's own cluster and 0 on the
   others (``"cluster"``; tracks of dropped clusters keep the distance logits).
4. A short optimization fits bases, coefficients and canonical means to the tracks (3D L1,
   reprojection, coefficient sparsity, smoothness and z-acceleration).

All positions are in the model's normalized frame; cameras are OpenCV world→camera matrices in
that frame, one per time step.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import List, Optional, Tuple

import torch
from rich.progress import Progress
from torch import Tensor

from shapeofmotion_ns.lift import PriorWarning, Tracks3D
from shapeofmotion_ns.losses import acceleration, bases_smoothness, masked_l1, z_accel_loss
from shapeofmotion_ns.motion import bases_at, blend, identity_bases, matrix_to_rotation_6d, move_means
from shapeofmotion_ns.track_clusters import ClusterBy, cluster_tracks
from splat4d.geometry import apply_transform, camera_centres, project
from splat4d.quantile import safe_quantile


@dataclass
class MotionInit:
    rots: Tensor  # [B, T, 6]
    transls: Tensor  # [B, T, 3]
    coef_logits: Tensor  # [P, B]
    means: Tensor  # [P, 3] canonical means


def procrustes_weights(points: Tensor, visible: Tensor) -> Tensor:
    """Per-frame weights [T, n] of one cluster's points [T, n, 3]: exp of minus the distance to the
    frame's median point (relative to the median distance), normalized to mean 1, times
    visibility; the 10% farthest (over all frames) and NaNs get 0."""
    dist = (points - points.median(dim=1, keepdim=True).values).norm(dim=-1)
    dist = dist / dist.median(dim=1, keepdim=True).values.clamp(min=1e-12)
    weights = torch.exp(-dist)
    weights = weights / (weights.mean(dim=1, keepdim=True) + 1e-6) * (visible.float() + 1e-6)
    invalid = (dist > safe_quantile(dist, 0.9)) | torch.isnan(weights)
    return torch.where(invalid, torch.zeros_like(weights), weights)


def solve_se3(src: Tensor, dst: Tensor, weights: Tensor) -> Tuple[Tensor, Tensor]:
    """Weighted Kabsch: R [3, 3], t [3] minimizing Σ w ‖R src + t − dst‖² (src, dst [n, 3])."""
    w = (weights / weights.sum())[:, None]
    src_mean, dst_mean = (w * src).sum(0), (w * dst).sum(0)
    cov = ((dst - dst_mean) * w).T @ (src - src_mean)
    U, _, Vh = torch.linalg.svd(cov.double())
    fix = torch.diag(torch.tensor([1.0, 1.0, float(torch.sign(torch.det(U) * torch.det(Vh)))], dtype=torch.float64))
    R = (U @ fix @ Vh).to(src.dtype)
    return R, dst_mean - R @ src_mean


def fit_cluster_bases(
    tracks: Tracks3D, labels: Tensor, clusters: List[int], canonical: int, min_mean_weight: float
) -> Tuple[Tensor, Tensor]:
    """Per cluster and frame the SE(3) fit from the canonical frame: ([B, T, 6], [B, T, 3])."""
    T = tracks.xyz.shape[1]
    rots, transls = identity_bases(len(clusters), T)
    order = list(range(canonical - 1, -1, -1)) + list(range(canonical, T))
    for b, cluster in enumerate(clusters):
        members = labels == cluster
        points = tracks.xyz[members].transpose(0, 1)  # [T, n, 3]
        weights = procrustes_weights(points, tracks.visible[members].T)
        confidence = tracks.confidence[members].T
        prev = canonical
        for t in order:
            pair = weights[canonical] * weights[t] * (confidence[canonical] + confidence[t]) / 2
            if pair.sum() < min_mean_weight * T:
                rots[b, t], transls[b, t] = rots[b, prev], transls[b, prev]
            else:
                R, tr = solve_se3(points[canonical], points[t], pair)
                rots[b, t], transls[b, t] = matrix_to_rotation_6d(R), tr
            prev = t
    return rots, transls


def initial_motion(
    tracks: Tracks3D,
    canonical: int,
    num_bases: int,
    min_cluster_points: int,
    min_mean_weight: float,
    seed: int,
    coef_init: str = "distance",
    cluster_by: ClusterBy = "velocity",
    progress: Optional[Progress] = None,
) -> MotionInit:
    """Steps 1–3 of the module docstring (tracks in the normalized frame)."""
    labels = cluster_tracks(cluster_by, tracks.xyz, tracks.visible, num_bases, seed, progress)
    ids, counts = labels.unique(return_counts=True)
    clusters = ids[counts > min_cluster_points].tolist()
    if not clusters:
        warnings.warn(
            f"no motion cluster has more than {min_cluster_points} tracks (largest: {int(counts.max())}); "
            f"keeping all {len(ids)} clusters",
            PriorWarning,
            stacklevel=2,
        )
        clusters = ids.tolist()
    means = tracks.xyz[:, canonical]
    centres = torch.stack([means[labels == c].median(dim=0).values for c in clusters])
    coef_logits = 10 * torch.exp(-torch.cdist(means, centres))  # w_gb = 10·exp(−‖μ_g − centre_b‖)
    if coef_init == "cluster":  # w_gb = 10 on the track's own cluster, 0 elsewhere
        own = labels[:, None] == torch.tensor(clusters)[None]
        coef_logits = torch.where(own.any(dim=1, keepdim=True), 10.0 * own.float(), coef_logits)
    elif coef_init != "distance":
        raise ValueError(f"coef_init must be 'distance' or 'cluster', got {coef_init!r}")
    rots, transls = fit_cluster_bases(tracks, labels, clusters, canonical, min_mean_weight)
    return MotionInit(rots, transls, coef_logits, means.clone())


def ramp(step: int, total: int, low: float, high: float, start: int = 400) -> float:
    """low until ``start``, then linear to high at ``total`` (the reference's smoothness schedule)."""
    return low if step <= start else low + (high - low) * (step - start) / max(total - start, 1)


def optimize_motion(
    init: MotionInit,
    tracks: Tracks3D,
    w2c: Tensor,
    K: Tensor,
    steps: int,
    progress: Optional[Progress] = None,
    device: str = "cpu",
) -> MotionInit:
    """Step 4: Adam on bases (lr 1e-2 / 3e-2), coefficients (1e-2) and means (1e-3), decayed to
    10% over ``steps``, on ``device``. w2c [T, 4, 4], K [T, 3, 3]: one camera per time step."""
    rots, transls, coef_logits, means = (
        x.to(device).clone().requires_grad_(True) for x in (init.rots, init.transls, init.coef_logits, init.means)
    )
    tracks = tracks.to(device)
    w2c, K = w2c.to(device), K.to(device)
    optimizer = torch.optim.Adam(
        [
            {"params": [rots], "lr": 1e-2},
            {"params": [transls], "lr": 3e-2},
            {"params": [coef_logits], "lr": 1e-2},
            {"params": [means], "lr": 1e-3},
        ]
    )
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=0.1 ** (1 / max(steps, 1)))
    T = rots.shape[1]
    frames = torch.arange(T, device=device)
    neighbours = torch.cat([frames.clamp(1, T - 2) - 1, frames.clamp(1, T - 2), frames.clamp(1, T - 2) + 1])
    weights = tracks.visible.float() * tracks.confidence
    target_2d, _ = project(apply_transform(w2c, tracks.xyz), K[None])
    centres = camera_centres(w2c)
    focal = float(K[0, 0, 0])
    task = progress.add_task("fitting motion bases", total=steps) if progress is not None else None
    for step in range(steps):
        R, t = blend(coef_logits, *bases_at(rots, transls, frames))
        positions = move_means(means, R, t)  # [P, T, 3]
        loss = masked_l1(positions, tracks.xyz, weights)
        pred_2d, _ = project(apply_transform(w2c, positions), K[None])
        loss = loss + 0.5 * masked_l1(pred_2d, target_2d, weights, quantile=0.95) / focal
        coefs = torch.softmax(coef_logits, dim=-1)
        loss = loss + 0.01 * (1 - (coefs**2).sum(dim=-1).mean())  # sparse coefficients
        w_smooth = ramp(step, steps, 0.01, 0.1)
        loss = loss + w_smooth * bases_smoothness(rots, transls) + 0.5 * w_smooth * acceleration(positions)
        R_nb, t_nb = blend(coef_logits, *bases_at(rots, transls, neighbours))
        around = move_means(means, R_nb, t_nb).reshape(len(means), 3, T, 3)
        loss = loss + 0.1 * z_accel_loss(around, centres)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
        if progress is not None:
            progress.update(task, advance=1, description=f"fitting motion bases (loss {loss.item():.4f})")
    return MotionInit(*(x.detach().cpu() for x in (rots, transls, coef_logits, means)))


def cameras_per_time_step(w2c: Tensor, K: Tensor, time_ids: Tensor, num_steps: int) -> Tuple[Tensor, Tensor]:
    """One camera per time step: each step takes the training frame nearest in time."""
    nearest = (torch.arange(num_steps)[:, None] - time_ids[None]).abs().argmin(dim=1)
    return w2c[nearest], K[nearest]
