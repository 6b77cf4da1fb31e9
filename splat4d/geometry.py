"""Pinhole camera geometry shared by the methods, the dataparsers and the benchmarks.

Conventions: cameras are OpenCV world→camera matrices ``w2c`` [..., 4, 4] (x right, y down,
z forward) with intrinsics ``K`` [..., 3, 3]; pixel (i, j) has its centre at (j + 0.5, i + 0.5),
like nerfstudio and gsplat. nerfstudio's cameras are camera→world matrices with OpenGL axes
(x right, y up, z back). ``apply_transform``, ``project`` and ``camera_centres`` take NumPy
arrays or torch tensors alike.
"""

from __future__ import annotations

from typing import Tuple, TypeVar

import cv2
import numpy as np
import torch

Array = TypeVar("Array", np.ndarray, torch.Tensor)

OPENCV_TO_OPENGL_AXES = np.diag([1.0, -1.0, -1.0])
"""Flips the camera's y and z axes: OpenCV ↔ OpenGL camera axes (its own inverse)."""


def opencv_w2c_to_opengl_c2w(w2c: np.ndarray) -> np.ndarray:
    """[..., 4, 4] world->camera in OpenCV axes to nerfstudio's [..., 4, 4] camera->world in OpenGL axes."""
    c2w = np.linalg.inv(w2c)
    c2w[..., :3, :3] = c2w[..., :3, :3] @ OPENCV_TO_OPENGL_AXES
    return c2w


def opengl_c2w_to_opencv_w2c(c2w: np.ndarray) -> np.ndarray:
    """[..., 4, 4] camera->world in OpenGL axes (nerfstudio) to world->camera in OpenCV axes."""
    c2w = np.array(c2w, dtype=np.float64)
    c2w[..., :3, :3] = c2w[..., :3, :3] @ OPENCV_TO_OPENGL_AXES
    return np.linalg.inv(c2w)


def apply_transform(matrix: Array, points: Array) -> Array:
    """x' = M[:3, :3] x + M[:3, 3] for points [..., 3] and M [4, 4] (or [..., 4, 4] batched like points)."""
    return (matrix[..., :3, :3] @ points[..., None])[..., 0] + matrix[..., :3, 3]


def project(points_cam: Array, K: Array, min_depth: float = 1e-6) -> Tuple[Array, Array]:
    """Pixels [..., 2] and depths [...] of camera-space points [..., 3]: u = K x / z, with z
    clamped to ``min_depth`` (points behind the camera land far outside the image)."""
    z = points_cam[..., 2]
    uvw = (K @ points_cam[..., None])[..., 0]
    return uvw[..., :2] / z.clip(min=min_depth)[..., None], z


def camera_centres(w2c: Array) -> Array:
    """Camera centres [..., 3] of world→camera matrices [..., 4, 4]: c = −Rᵀ t."""
    return -(w2c[..., :3, :3].swapaxes(-1, -2) @ w2c[..., :3, 3:])[..., 0]


def rotation_to_z(up: np.ndarray) -> np.ndarray:
    """The smallest rotation [3, 3] taking the unit vector ``up`` to +z (Rodrigues)."""
    z = np.array([0.0, 0.0, 1.0])
    axis = np.cross(up, z)
    sin, cos = np.linalg.norm(axis), float(np.dot(up, z))
    if sin < 1e-12:
        return np.eye(3) if cos > 0 else np.diag([1.0, -1.0, -1.0])
    return cv2.Rodrigues(axis / sin * np.arctan2(sin, cos))[0]
