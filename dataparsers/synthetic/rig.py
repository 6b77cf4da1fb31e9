"""A rig of synchronized pinhole cameras on an arc (a slice of a dome) facing the scene."""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import numpy as np

from dataparsers.synthetic.scene import PinholeCamera


@dataclass(frozen=True)
class RigConfig:
    num_cameras: int = 9
    width: int = 160
    height: int = 120
    horizontal_fov_deg: float = 55.0
    radius: float = 4.0
    """Distance of every camera from the target point."""
    arc_deg: float = 100.0
    """Azimuth span of the arc."""
    elevations_deg: Tuple[float, float] = (18.0, 32.0)
    """Cameras alternate between these elevations (a dome slice, not a plane)."""
    target: Tuple[float, float, float] = (0.0, 0.0, 0.4)
    principal_offset: Tuple[float, float] = (0.0, 0.0)
    """(cx, cy) offset from the image centre in pixels (0 for formats that fix cx = W/2, cy = H/2)."""


def look_at_w2c(center: np.ndarray, target: np.ndarray, up: Sequence[float] = (0.0, 0.0, 1.0)) -> np.ndarray:
    """World -> camera (OpenCV axes) of a camera at ``center`` looking at ``target``, z-up world."""
    forward = (target - center) / np.linalg.norm(target - center)
    right = np.cross(forward, up)
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    rot = np.stack([right, down, forward], axis=1)  # camera -> world
    w2c = np.eye(4)
    w2c[:3, :3] = rot.T
    w2c[:3, 3] = -rot.T @ center
    return w2c


def arc_order(num_cameras: int) -> np.ndarray:
    """Arc positions in units of the spacing, centre-out: 0, +1, −1, +2, −2, … so that camera 0
    (Neural3DV's held-out cam00) is the central one."""
    k = np.arange(num_cameras)
    return np.where(k % 2 == 1, (k + 1) // 2, -(k // 2)).astype(np.float64)


def camera_rig(cfg: RigConfig, distortion: Optional[np.ndarray] = None) -> List[PinholeCamera]:
    """``cfg.num_cameras`` cameras, camera 0 at the centre of the arc, all facing ``cfg.target``."""
    focal = cfg.width / (2.0 * np.tan(np.radians(cfg.horizontal_fov_deg) / 2.0))
    K = np.array(
        [
            [focal, 0.0, cfg.width / 2.0 + cfg.principal_offset[0]],
            [0.0, focal, cfg.height / 2.0 + cfg.principal_offset[1]],
            [0.0, 0.0, 1.0],
        ]
    )
    positions = arc_order(cfg.num_cameras)
    span = max(positions.max() - positions.min(), 1.0)
    target = np.asarray(cfg.target, dtype=np.float64)
    cams = []
    for pos in positions:
        azimuth = np.radians(-90.0 + cfg.arc_deg * pos / span)  # arc centred on the −y axis
        elevation = np.radians(cfg.elevations_deg[int(pos) % 2])  # alternate along the arc
        offset = cfg.radius * np.array(
            [np.cos(elevation) * np.cos(azimuth), np.cos(elevation) * np.sin(azimuth), np.sin(elevation)]
        )
        cams.append(
            PinholeCamera(
                K=K.copy(),
                w2c=look_at_w2c(target + offset, target),
                width=cfg.width,
                height=cfg.height,
                distortion=None if distortion is None else distortion.copy(),
            )
        )
    return cams
