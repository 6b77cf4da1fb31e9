"""Background shell of the velocity-aware initialization: static points on a far sphere.

Triangulation finds few or no points on distant or weakly textured background (sky, far walls),
and densification cannot grow Gaussians where there are none, so such regions stay empty or get
covered by stretched foreground Gaussians that break in novel views. As outdoor Gaussian
splatting pipelines do with a sky sphere, we add static points on the upper half of a sphere
around the scene (up: :func:`world_up`): for each camera, rays through a
regular pixel grid are intersected with the sphere and the points take the pixel's colour. The
lower half is left out: there the rays end on the ground, and points behind it would learn its
colours from other views and show through it.
"""

from __future__ import annotations

from typing import List, Sequence, Tuple

import numpy as np

from splat4d.geometry import camera_centres


def world_up(w2c: np.ndarray) -> np.ndarray:
    """Unit up direction [3] of a rig of OpenCV cameras (x right, y down) without roll: the normal
    of the plane their right axes (rows 0 of R) span, on the side of their mean up axis −(rows 1).
    Cameras tilt down at a scene, so their mean up axis leans towards it; their right axes stay
    level. When the right axes are all parallel, the mean up axis made orthogonal to them."""
    rights, mean_up = w2c[:, 0, :3], -w2c[:, 1, :3].mean(axis=0)
    _, singular, vt = np.linalg.svd(rights)
    if len(singular) > 1 and singular[1] > 0.05 * singular[0]:
        up = vt[-1]
    else:
        right = rights.mean(axis=0) / np.linalg.norm(rights.mean(axis=0))
        up = mean_up - (mean_up @ right) * right
    up = up / np.linalg.norm(up)
    return up if up @ mean_up >= 0 else -up


def ray_sphere_exit(origins: np.ndarray, dirs: np.ndarray, centre: np.ndarray, radius: float) -> np.ndarray:
    """Points [N, 3] where rays origins [N, 3] + s·dirs [N, 3] (unit, origins inside) leave the sphere:
    s = −b + sqrt(b² − (|o − c|² − R²)), b = d·(o − c)."""
    rel = origins - centre
    b = np.einsum("ij,ij->i", dirs, rel)
    s = -b + np.sqrt(np.maximum(b * b - (np.einsum("ij,ij->i", rel, rel) - radius**2), 0.0))
    return origins + s[:, None] * dirs


def background_shell(
    images: Sequence[np.ndarray],
    Ks: np.ndarray,
    w2c: np.ndarray,
    centre: np.ndarray,
    distance: float,
    pixel_step: float,
    max_points: int,
) -> Tuple[np.ndarray, np.ndarray]:
    """Points (float32 [P, 3]) and colours (uint8 [P, 3]) on the upper half of the sphere around
    ``centre`` whose radius is ``distance`` × the largest camera distance from it, seen through a
    grid of every ``pixel_step`` pixels of every camera (images uint8 [H, W, 3], intrinsics
    [C, 3, 3], world->camera [C, 4, 4]), coarser where needed to keep at most about ``max_points``
    over all cameras before the lower half is dropped."""
    if max_points <= 0 or len(images) == 0:
        return np.zeros((0, 3), np.float32), np.zeros((0, 3), np.uint8)
    centres = camera_centres(w2c)
    radius = distance * float(np.linalg.norm(centres - centre, axis=1).max())
    per_camera = max(max_points // len(images), 1)
    up = world_up(w2c)
    xyz: List[np.ndarray] = []
    rgb: List[np.ndarray] = []
    for image, K, pose, origin in zip(images, Ks, w2c, centres, strict=True):
        h, w = image.shape[:2]
        step = max(np.sqrt(h * w / per_camera), pixel_step, 1.0)
        u, v = np.meshgrid(np.arange(step / 2, w, step), np.arange(step / 2, h, step))
        pixels = np.stack([u.ravel(), v.ravel(), np.ones(u.size)], axis=1)
        dirs = pixels @ np.linalg.inv(K).T @ pose[:3, :3]  # camera rays in world axes: Rᵀ K⁻¹ [u, v, 1]
        dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
        points = ray_sphere_exit(np.broadcast_to(origin, dirs.shape), dirs, centre, radius)
        upper = (points - centre) @ up > 0
        xyz.append(points[upper])
        rgb.append(image[v.ravel().astype(int), u.ravel().astype(int)][upper])
    return np.concatenate(xyz).astype(np.float32), np.concatenate(rgb).astype(np.uint8)
