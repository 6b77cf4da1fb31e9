"""Camera poses between known ones: rotations by spherical linear interpolation (slerp), camera
centres linearly, both in time (video frame index)."""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation, Slerp

from dataparsers.iphone.cameras import w2c_matrix


def interpolate_poses(known_times: np.ndarray, known_w2c: np.ndarray, times: np.ndarray) -> np.ndarray:
    """[N, 4, 4] OpenCV world → camera poses at ``times`` [N] from poses ``known_w2c`` [K, 4, 4] at
    increasing ``known_times`` [K] (K ≥ 2); a time outside the known span raises ValueError."""
    known_times, times = np.asarray(known_times, dtype=np.float64), np.asarray(times, dtype=np.float64)
    if len(known_times) < 2 or np.any(np.diff(known_times) <= 0):
        raise ValueError(f"poses are interpolated from two or more increasing times, got {known_times.tolist()}")
    outside = times[(times < known_times[0]) | (times > known_times[-1])]
    if len(outside):
        raise ValueError(
            f"times {outside.tolist()} lie outside the known poses' span [{known_times[0]}, {known_times[-1]}]"
        )
    rotations = Slerp(known_times, Rotation.from_matrix(known_w2c[:, :3, :3]))(times).as_matrix()
    known_centres = -np.einsum("kji,kj->ki", known_w2c[:, :3, :3], known_w2c[:, :3, 3])
    centres = np.stack([np.interp(times, known_times, known_centres[:, k]) for k in range(3)], axis=1)
    return np.stack([w2c_matrix(rotation, centre) for rotation, centre in zip(rotations, centres)])
