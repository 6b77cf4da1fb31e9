"""Long-range tracking metrics of Shape of Motion (reference: scripts/evaluate_iphone.py).

The same N points (DyCheck keypoints, or ground-truth tracks) are annotated on K frames. A
method predicts, for every ordered pair (i, j) of those frames, where frame i's points are at
frame j: world positions [K, K, N, 3], their pixels in camera j [K, K, N, 2] and whether they
are visible there [K, K, N].

- 3D: the predicted camera centres are aligned to the true ones by a similarity (Sim(3)), the
  predictions follow; for every pair, over the points valid in both frames, EPE = mean
  ‖x̂ − x‖ and δ3D@τ = fraction with error < τ (5 cm, 10 cm); all averaged over pairs with
  such points. Pairs i = j count.
- 2D (TAP-Vid style), over pairs i ≠ j and points visible in frame i: occlusion accuracy =
  fraction whose predicted visibility in frame j is right; for each threshold δ in 4, 8, 16,
  32, 64 px, δ-accuracy = correct (within δ and visible in j) / visible in j, and Jaccard =
  true positives / (visible in j + false positives), a false positive being predicted visible
  while occluded in j or off by δ or more; AJ and ⟨δ_avg⟩ average them over δ.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Sequence, Tuple

import torch
from torch import Tensor

from splat4d.geometry import apply_transform

PIXEL_THRESHOLDS = (4, 8, 16, 32, 64)
METRIC_THRESHOLDS = (0.05, 0.10)  # metres
VISIBILITY_DEPTH_TOLERANCE = 0.05  # metres: predicted visible when the rendered depth is this close


@dataclass
class TrackAnnotations:
    """The true positions of N points on K frames."""

    points_2d: Tensor  # [K, N, 2] pixels
    visible: Tensor  # [K, N] bool
    points_3d: Tensor  # [K, N, 3] metric world positions
    valid_3d: Tensor  # [K, N] bool: points_3d is known (visible, with a depth)
    camera_centres: Tensor  # [K, 3] metric world


@dataclass
class TrackPredictions:
    """Where frame i's points are at frame j, for all K × K ordered pairs."""

    points_3d: Tensor  # [K, K, N, 3] in the method's world
    points_2d: Tensor  # [K, K, N, 2] pixels of camera j
    visible: Tensor  # [K, K, N] bool
    camera_centres: Tensor  # [K, 3] in the method's world


def similarity_alignment(src: Tensor, dst: Tensor) -> Tuple[float, Tensor, Tensor]:
    """(s, R, t) with dst ≈ s (R src + t), as the reference's Procrustes: s is the ratio of the
    RMS spreads, R the best rotation between the centred, spread-normalized point sets."""
    src, dst = src.double(), dst.double()
    src_mean, dst_mean = src.mean(0), dst.mean(0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    src_spread = src_c.square().sum(-1).mean().sqrt().clamp(min=1e-12)
    dst_spread = dst_c.square().sum(-1).mean().sqrt().clamp(min=1e-12)
    U, _, Vh = torch.linalg.svd((dst_c / dst_spread).T @ (src_c / src_spread))
    fix = torch.diag(torch.tensor([1.0, 1.0, float(torch.sign(torch.det(U) * torch.det(Vh)))], dtype=torch.float64))
    R = U @ fix @ Vh
    s = float(dst_spread / src_spread)
    return s, R, dst_mean / s - R @ src_mean


def align_to_metric(predictions: TrackPredictions, annotations: TrackAnnotations) -> Tuple[Tensor, float]:
    """Predicted 3D points [K, K, N, 3] in the annotations' metric world, and the scale s."""
    s, R, t = similarity_alignment(predictions.camera_centres, annotations.camera_centres)
    matrix = torch.eye(4, dtype=torch.float64)
    matrix[:3, :3], matrix[:3, 3] = R, t
    return (s * apply_transform(matrix, predictions.points_3d.double())).float(), s


def tracking_3d_metrics(
    points_3d: Tensor, annotations: TrackAnnotations, thresholds: Sequence[float] = METRIC_THRESHOLDS
) -> Dict[str, float]:
    """EPE and δ3D@τ of aligned predictions [K, K, N, 3] (metres)."""
    K = points_3d.shape[0]
    epes, within = [], {tau: [] for tau in thresholds}
    for i in range(K):
        for j in range(K):
            both = annotations.valid_3d[i] & annotations.valid_3d[j]
            if not both.any():
                continue
            errors = (points_3d[i, j][both] - annotations.points_3d[j][both]).norm(dim=-1)
            epes.append(errors.mean())
            for tau in thresholds:
                within[tau].append((errors < tau).float().mean())
    if not epes:
        raise ValueError("no pair of annotated frames shares a point with a known 3D position")
    out = {"epe": float(torch.stack(epes).mean())}
    out.update({f"delta_3d_{round(tau * 100)}cm": float(torch.stack(v).mean()) for tau, v in within.items()})
    return out


def tracking_2d_metrics(
    predictions: TrackPredictions, annotations: TrackAnnotations, thresholds: Sequence[float] = PIXEL_THRESHOLDS
) -> Dict[str, float]:
    """AJ, ⟨δ_avg⟩ and occlusion accuracy (module docstring)."""
    K = annotations.visible.shape[0]
    target = annotations.points_2d[None].expand(K, -1, -1, -1)  # pair (i, j) → frame j's annotation
    target_visible = annotations.visible[None].expand(K, -1, -1)
    evaluated = annotations.visible[:, None].expand(-1, K, -1) & ~torch.eye(K, dtype=torch.bool)[..., None]
    if not evaluated.any():
        raise ValueError("no point is visible in a frame with another annotated frame to track it to")
    pred_visible = predictions.visible
    occlusion_accuracy = ((pred_visible == target_visible) & evaluated).sum() / evaluated.sum()
    distance2 = (predictions.points_2d - target).square().sum(-1)
    positives = (target_visible & evaluated).sum()
    jaccards, fractions = [], []
    for delta in thresholds:
        close = distance2 < delta**2
        correct = close & target_visible
        fractions.append((correct & evaluated).sum() / positives.clamp(min=1))
        true_pos = (correct & pred_visible & evaluated).sum()
        false_pos = (((~target_visible) | ~close) & pred_visible & evaluated).sum()
        jaccards.append(true_pos / (positives + false_pos).clamp(min=1))
    return {
        "aj": float(torch.stack(jaccards).mean()),
        "delta_avg": float(torch.stack(fractions).mean()),
        "occlusion_accuracy": float(occlusion_accuracy),
    }


def visible_by_depth(
    rendered_depth: Tensor, point_depth: Tensor, metres_per_unit: float, tolerance: float = VISIBILITY_DEPTH_TOLERANCE
) -> Tensor:
    """Predicted visibility when no visibility is predicted: the point's depth in camera j is
    within ``tolerance`` metres of the depth rendered at its pixel."""
    return (rendered_depth - point_depth).abs() * metres_per_unit < tolerance
