"""The initialization's results: the geometry (what is cached) and the initial Gaussians with
their temporal parameters, both in normalized sequence time (the sequence spans [0, 1]; the model
converts to its time unit).

Temporal parameters: dynamic T = its frame's time, σt = ``dynamic_lifespan_frames`` frame
intervals, r = ``dynamic_radius_frames`` frame intervals; static T = middle of the sequence, σt =
``static_lifespan_factor`` × sequence length, r = half the sequence (``radius_init``). The model moves a Gaussian by v / f(σt, r) · (t − T), so
the stored v is the measured velocity × f(σt, r) (:func:`sharptime_ns.temporal.motion_factor`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict

import numpy as np
import torch

from sharptime_ns.init.config import VelocityInitConfig
from sharptime_ns.temporal import motion_factor
from splat4d.cache import Entry


@dataclass
class InitPoints:
    """Initial Gaussians: positions at their canonical time and temporal parameters in normalized time."""

    means: np.ndarray  # [P, 3] float32 world positions at their canonical time
    colors: np.ndarray  # [P, 3] uint8
    velocities: np.ndarray  # [P, 3] float32 stored v (already multiplied by f), world units per normalized time
    times: np.ndarray  # [P] canonical time T in [0, 1]
    tscales: np.ndarray  # [P] σt (normalized time)
    radii: np.ndarray  # [P] r (normalized time)
    is_dynamic: np.ndarray  # [P] bool

    def __len__(self) -> int:
        return int(self.means.shape[0])


@dataclass
class Geometry:
    """The geometric result (what is cached). Times and velocities use normalized time."""

    means: np.ndarray  # [P, 3] float32
    colors: np.ndarray  # [P, 3] uint8
    velocities: np.ndarray  # [P, 3] float32 measured velocity, world units per normalized time
    times: np.ndarray  # [P] float32 normalized time of the frame (dynamic); sequence middle (static)
    is_dynamic: np.ndarray  # [P] bool
    num_triangulated: int  # points triangulated over all frames, before dedup / cap
    frame_interval: float  # median normalized interval between triangulated frames
    t_min: float
    t_max: float
    stats: Dict[str, float] = field(default_factory=dict)

    _ARRAYS = ("means", "colors", "velocities", "times", "is_dynamic")
    _SCALARS = ("num_triangulated", "frame_interval", "t_min", "t_max", "stats")

    def to_entry(self) -> Entry:
        """Tensors and primitives, for :mod:`splat4d.cache`."""
        arrays = {k: torch.from_numpy(np.ascontiguousarray(getattr(self, k))) for k in self._ARRAYS}
        return {**arrays, **{k: getattr(self, k) for k in self._SCALARS}}

    @classmethod
    def from_entry(cls, entry: Entry) -> "Geometry":
        return cls(**{k: entry[k].numpy() for k in cls._ARRAYS}, **{k: entry[k] for k in cls._SCALARS})


def to_init_points(geometry: Geometry, config: VelocityInitConfig) -> InitPoints:
    """Temporal parameters in normalized time; stored v = measured v × f(σt, r)."""
    dyn = geometry.is_dynamic.astype(bool)
    n = len(dyn)
    length = geometry.t_max - geometry.t_min
    if length <= 0:  # a single frame: the "sequence" is the whole normalized range
        length = 1.0
    interval = geometry.frame_interval if geometry.frame_interval > 0 else length
    times = np.where(dyn, geometry.times, 0.5 * (geometry.t_min + geometry.t_max))
    tscales = np.where(dyn, config.dynamic_lifespan_frames * interval, config.static_lifespan_factor * length)
    if config.radius_init == "lifespan":
        radii = np.where(dyn, config.dynamic_radius_frames * interval, 0.5 * length)
    else:
        radii = np.full(n, config.init_radius, dtype=np.float64)
    measured = geometry.velocities.astype(np.float64)  # world units per normalized time
    measured[~dyn] = 0.0
    f = motion_factor(torch.from_numpy(tscales.astype(np.float64)), torch.from_numpy(radii)).numpy()
    return InitPoints(
        means=geometry.means.astype(np.float32),
        colors=geometry.colors.astype(np.uint8),
        velocities=(measured * f[:, None]).astype(np.float32),
        times=times.astype(np.float32),
        tscales=tscales.astype(np.float32),
        radii=radii.astype(np.float32),
        is_dynamic=dyn,
    )
