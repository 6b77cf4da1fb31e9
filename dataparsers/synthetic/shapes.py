"""Analytic primitives of the synthetic scenes in their own coordinates: ray intersection,
normals and procedural checker textures (sphere, box), and the background sphere's exit point."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

import numpy as np


def checker(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """1 on 'white' cells of the unit checkerboard in (a, b), else 0."""
    return ((np.floor(a) + np.floor(b)) % 2).astype(np.float64)


def cell_noise(ix: np.ndarray, iy: np.ndarray, seed: int) -> np.ndarray:
    """Deterministic pseudo-random RGB in [0, 1) per integer cell, [N, 3]."""
    phases = np.array([0.0, 17.13, 41.71]) + seed * 3.7
    h = np.sin(ix[:, None] * 12.9898 + iy[:, None] * 78.233 + phases) * 43758.5453
    return h - np.floor(h)


@dataclass(frozen=True)
class Sphere:
    radius: float

    def intersect(self, o: np.ndarray, d: np.ndarray) -> np.ndarray:
        """Nearest positive ray parameter for rays o [3] + t·d [N, 3] in local coordinates (inf: miss)."""
        a = np.einsum("ij,ij->i", d, d)
        b = d @ o
        c = o @ o - self.radius**2
        disc = b * b - a * c
        with np.errstate(invalid="ignore"):
            t = (-b - np.sqrt(disc)) / a
        return np.where((disc >= 0) & (t > 1e-9), t, np.inf)

    def normal(self, p: np.ndarray) -> np.ndarray:
        return p / self.radius

    def texture(self, p: np.ndarray, colors: np.ndarray, cells: float) -> np.ndarray:
        """Latitude/longitude checkerboard with ``cells`` cells around the equator."""
        q = p / self.radius
        lon = np.arctan2(q[:, 1], q[:, 0]) / (2 * np.pi) * cells
        lat = np.arcsin(np.clip(q[:, 2], -1, 1)) / np.pi * cells / 2
        w = checker(lon, lat)[:, None]
        return colors[0] * w + colors[1] * (1 - w)


def background_hit(o: np.ndarray, d: np.ndarray, radius: float) -> np.ndarray:
    """Ray parameter where rays from o [3] inside the origin-centred sphere leave it, [N]."""
    a = np.einsum("ij,ij->i", d, d)
    b = d @ o
    return (-b + np.sqrt(b * b - a * (o @ o - radius**2))) / a


@dataclass(frozen=True)
class Box:
    half_extents: Tuple[float, float, float]

    def intersect(self, o: np.ndarray, d: np.ndarray) -> np.ndarray:
        """Slab test: the ray is inside the box between the largest entry and smallest exit."""
        t_near, t_far = np.full(len(d), -np.inf), np.full(len(d), np.inf)
        with np.errstate(divide="ignore", invalid="ignore"):
            for axis, h in enumerate(self.half_extents):
                inv = 1.0 / d[:, axis]
                t1, t2 = (-h - o[axis]) * inv, (h - o[axis]) * inv
                t_near = np.maximum(t_near, np.minimum(t1, t2))
                t_far = np.minimum(t_far, np.maximum(t1, t2))
        return np.where((t_near <= t_far) & (t_near > 1e-9), t_near, np.inf)

    def normal(self, p: np.ndarray) -> np.ndarray:
        rel = np.abs(p) / np.asarray(self.half_extents)
        axis = np.argmax(rel, axis=1)
        n = np.zeros_like(p)
        n[np.arange(len(p)), axis] = np.sign(p[np.arange(len(p)), axis])
        return n

    def texture(self, p: np.ndarray, colors: np.ndarray, cells: float) -> np.ndarray:
        """3D checkerboard (``cells`` per unit length) shaded per face axis."""
        s = p * cells
        w = ((np.floor(s[:, 0]) + np.floor(s[:, 1]) + np.floor(s[:, 2])) % 2)[:, None]
        face_tint = 0.85 + 0.15 * np.abs(self.normal(p)) @ np.array([1.0, 0.5, 0.0])
        return (colors[0] * w + colors[1] * (1 - w)) * face_tint[:, None]


Shape = Sphere | Box
