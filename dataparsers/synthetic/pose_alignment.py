"""Scoring estimated camera poses against ground truth up to a similarity transform (an SfM
reconstruction has its own origin, orientation and scale).

The similarity is Umeyama's least-squares fit of the estimated to the true camera centres and,
so that cameras on a near-planar arc do not leave a rotation about it undetermined, of points one
rig radius along each camera's axes. Errors per camera: rotation angle (degrees) between the
aligned and the true orientation, and centre distance as a fraction of the rig's size (the
diagonal of the true centres' bounding box).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Tuple

import numpy as np

from splat4d.geometry import camera_centres


@dataclass(frozen=True)
class PoseErrors:
    rotation_deg: Dict[str, float]
    centre_fraction: Dict[str, float]


def umeyama(source: np.ndarray, target: np.ndarray) -> Tuple[float, np.ndarray, np.ndarray]:
    """(s, R, t) minimising Σ ‖s·R·source_i + t − target_i‖² over points [N, 3]."""
    mu_s, mu_t = source.mean(0), target.mean(0)
    xs, xt = source - mu_s, target - mu_t
    U, S, Vt = np.linalg.svd(xt.T @ xs / len(source))
    D = np.eye(3)
    D[2, 2] = np.sign(np.linalg.det(U @ Vt))
    R = U @ D @ Vt
    s = float(np.trace(np.diag(S) @ D) / xs.var(0).sum())
    return s, R, mu_t - s * R @ mu_s


def pose_errors(estimated_w2c: Dict[str, np.ndarray], true_w2c: Dict[str, np.ndarray]) -> PoseErrors:
    """Errors of every camera of ``true_w2c`` ([4, 4] OpenCV world → camera) after alignment."""
    names = list(true_w2c)
    est_rot, true_rot = (np.array([w2c[n][:3, :3] for n in names]) for w2c in (estimated_w2c, true_w2c))
    est_c, true_c = (camera_centres(np.array([w2c[n] for n in names])) for w2c in (estimated_w2c, true_w2c))
    s, R, t = umeyama(_axis_points(est_c, est_rot), _axis_points(true_c, true_rot))
    size = float(np.linalg.norm(true_c.max(0) - true_c.min(0)))
    rotation, centre = {}, {}
    for k, name in enumerate(names):
        relative = est_rot[k] @ R.T @ true_rot[k].T
        rotation[name] = float(np.degrees(np.arccos(np.clip((np.trace(relative) - 1) / 2, -1.0, 1.0))))
        centre[name] = float(np.linalg.norm(s * R @ est_c[k] + t - true_c[k]) / size)
    return PoseErrors(rotation, centre)


def _axis_points(centres: np.ndarray, w2c_rotations: np.ndarray) -> np.ndarray:
    radius = float(np.linalg.norm(centres - centres.mean(0), axis=1).mean())
    return np.concatenate([centres] + [centres + radius * w2c_rotations[:, k, :] for k in range(3)])
