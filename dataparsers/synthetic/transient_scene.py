"""The Neural3DV-like benchmark scene family: a forward-facing rig in front of a textured room
corner with the four kinds of dynamic content SharpTimeGS is about.

- **slow motion**: a ball rolling a short way over the whole sequence;
- **fast motion**: a small spinning cube swinging left and right, about 10 px a frame at 160×120;
- **transients**: a candle flame (emissive) whose brightness jumps between random levels every few
  frames and that goes out for a while, and a box that pops in and out (no motion at all);
- **long-static content next to motion**: a cabinet, a table and the candle's holder, the wall and
  the floor, all with fractal textures (:mod:`dataparsers.synthetic.textures`).

``seed`` picks a member of the family: colours, textures, flame levels and the popping box's
windows vary; the layout and the motions stay. :meth:`TransientScene.transient_events` gives the
frames where a transient changes state (the ground truth stores them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Tuple

import numpy as np

from dataparsers.synthetic.rig import look_at_w2c
from dataparsers.synthetic.scene import (
    AMBIENT,
    DIFFUSE,
    Box,
    PinholeCamera,
    SceneObject,
    Sphere,
    SyntheticScene,
    Trajectory,
)
from dataparsers.synthetic.textures import fractal_albedo

FAMILY = "transient"
"""Name of this family in the ground truth's scene.json (``"default"``: :func:`default_scene`)."""


@dataclass(frozen=True)
class TransientObject(SceneObject):
    """A scene object with a fractal texture, several visibility windows and, when emissive,
    a brightness that is constant within equal segments of the sequence and jumps between them."""

    windows: Tuple[Tuple[float, float], ...] = ((-np.inf, np.inf),)
    """Normalised times [start, end) in which the object exists."""
    levels: Tuple[float, ...] = (1.0,)
    """Brightness of segment k of len(levels) equal segments of the normalised time."""
    emissive: bool = False
    """Unlit: colour = albedo × level (a flame); else shaded like every other object."""
    texture_seed: int = 0

    def visible_at(self, u: float) -> bool:
        return any(start <= u < end for start, end in self.windows)

    def level_at(self, u: float) -> float:
        return self.levels[min(int(u * len(self.levels)), len(self.levels) - 1)]


class TransientScene(SyntheticScene):
    """:class:`SyntheticScene` with fractal textures everywhere and transient objects."""

    def is_visible(self, object_id: int, frame: float) -> bool:
        obj = self.objects[object_id]
        u = self.normalized_time(frame)
        return obj.visible_at(u) if isinstance(obj, TransientObject) else super().is_visible(object_id, frame)

    def shade(
        self, obj: SceneObject, object_id: int, frame: float, p_local: np.ndarray, n_dot_l: np.ndarray
    ) -> np.ndarray:
        if not isinstance(obj, TransientObject):
            return super().shade(obj, object_id, frame, p_local, n_dot_l)
        albedo = fractal_albedo(p_local, np.asarray(obj.colors), obj.texture_cells, obj.texture_seed)
        if obj.emissive:
            return np.clip(albedo * obj.level_at(self.normalized_time(frame)), 0.0, 1.0)
        return albedo * (AMBIENT + DIFFUSE * np.clip(n_dot_l, 0, None))[:, None]

    def _ground_albedo(self, xy: np.ndarray) -> np.ndarray:
        points = np.concatenate([xy, np.zeros((len(xy), 1))], axis=1)
        return fractal_albedo(points, np.array([[0.42, 0.3, 0.2], [0.72, 0.58, 0.42]]), 1.2, self.texture_seed)

    def transient_object_ids(self) -> List[int]:
        """Ids of the objects that appear, vanish or change brightness (no matter whether they move)."""
        return [
            k
            for k, obj in enumerate(self.objects)
            if isinstance(obj, TransientObject) and (obj.windows != ((-np.inf, np.inf),) or len(set(obj.levels)) > 1)
        ]

    def transient_events(self) -> List[int]:
        """Frames f ≥ 1 at which some transient object is shown differently than at f − 1 (it
        appears, vanishes or its brightness jumps)."""

        def state(frame: int) -> Tuple:
            u = self.normalized_time(frame)
            return tuple(
                (obj.visible_at(u), obj.level_at(u)) for obj in self.objects if isinstance(obj, TransientObject)
            )

        return [f for f in range(1, self.num_frames) if state(f) != state(f - 1)]


def transient_scene(num_frames: int = 30, fps: float = 30.0, seed: int = 0) -> TransientScene:
    """One member of the family (see the module docstring)."""
    rng = np.random.default_rng(seed)

    def colors(a: Tuple[float, float, float], b: Tuple[float, float, float]):
        jitter = rng.uniform(-0.07, 0.07, size=(2, 3))
        first, second = np.clip(np.array([a, b]) + jitter, 0.02, 0.98)
        return tuple(map(float, first)), tuple(map(float, second))

    def textured(name: str, shape, trajectory: Trajectory, palette, frequency: float, **kw) -> TransientObject:
        return TransientObject(
            name, shape, trajectory, palette, frequency, texture_seed=int(rng.integers(0, 10_000)), **kw
        )

    flame_levels = tuple(float(x) for x in rng.uniform(0.25, 1.0, size=10))
    out_at = float(rng.uniform(0.42, 0.5))
    first_pop = float(rng.uniform(0.12, 0.2))
    second_pop = float(rng.uniform(0.55, 0.62))
    table_top = 0.5
    moving = [
        textured(
            "slow_ball",
            Sphere(0.28),
            Trajectory(
                start=(-1.0, -0.35, 0.28), velocity=(0.6, 0.1, 0.0), spin_axis=(-0.1, 0.6, 0.0), spin=0.6 / 0.28
            ),
            colors((0.85, 0.25, 0.15), (0.95, 0.85, 0.3)),
            3.0,
        ),
        textured(
            "fast_cube",
            Box((0.13, 0.13, 0.13)),
            Trajectory(
                start=(0.0, -0.6, 1.05),
                amplitude=(0.9, 0.0, 0.0),
                cycles=1.5,
                spin_axis=(0.3, 0.2, 1.0),
                spin=3 * np.pi,
            ),
            colors((0.15, 0.4, 0.85), (0.85, 0.9, 0.95)),
            6.0,
        ),
        textured(
            "flame",
            Sphere(0.16),
            Trajectory(start=(1.1, 0.2, table_top + 0.2)),
            colors((0.95, 0.45, 0.1), (1.0, 0.9, 0.45)),
            5.0,
            windows=((-np.inf, out_at), (out_at + 0.12, np.inf)),
            levels=flame_levels,
            emissive=True,
        ),
        textured(
            "popping_box",
            Box((0.17, 0.17, 0.17)),
            Trajectory(start=(-0.25, 0.35, 0.17), initial_rotation=(0, 0, 0.4)),
            colors((0.2, 0.7, 0.35), (0.85, 0.95, 0.6)),
            4.0,
            windows=((first_pop, first_pop + 0.18), (second_pop, second_pop + 0.2)),
        ),
    ]
    static = [
        textured(
            "back_wall",
            Box((4.5, 0.1, 2.5)),
            Trajectory(start=(0.0, 2.2, 1.5)),
            colors((0.55, 0.55, 0.6), (0.85, 0.8, 0.72)),
            0.8,
        ),
        textured(
            "cabinet",
            Box((0.35, 0.3, 0.65)),
            Trajectory(start=(-1.45, 0.9, 0.65), initial_rotation=(0, 0, 0.2)),
            colors((0.45, 0.28, 0.15), (0.7, 0.5, 0.3)),
            2.0,
        ),
        textured(
            "table",
            Box((0.45, 0.35, table_top / 2)),
            Trajectory(start=(1.1, 0.2, table_top / 2)),
            colors((0.3, 0.3, 0.35), (0.6, 0.6, 0.65)),
            2.5,
        ),
        textured(
            "candle",
            Box((0.05, 0.05, 0.04)),
            Trajectory(start=(1.1, 0.2, table_top + 0.04)),
            colors((0.9, 0.88, 0.8), (0.8, 0.75, 0.65)),
            8.0,
        ),
    ]
    return TransientScene(
        num_frames=num_frames, fps=fps, objects=moving, static_objects=static, texture_seed=int(rng.integers(0, 10_000))
    )


def forward_facing_rig(
    width: int = 160,
    height: int = 120,
    columns: int = 7,
    rows: int = 3,
    spacing: float = 0.35,
    distance: float = 4.2,
    target: Tuple[float, float, float] = (0.0, 0.2, 0.7),
    horizontal_fov_deg: float = 55.0,
) -> List[PinholeCamera]:
    """Neural3DV-like rig: ``columns × rows`` cameras on a vertical plane ``spacing`` apart, all
    looking at ``target`` from about ``distance`` in front (−y); camera 0 is the centre of the grid
    (the held-out view), the others follow row by row. 7 × 3 = 21 cameras like Neural3DV."""
    focal = width / (2.0 * np.tan(np.radians(horizontal_fov_deg) / 2.0))
    K = np.array([[focal, 0.0, width / 2.0], [0.0, focal, height / 2.0], [0.0, 0.0, 1.0]])
    target_arr = np.asarray(target, dtype=np.float64)
    grid = [(c - (columns - 1) / 2, r - (rows - 1) / 2) for r in range(rows) for c in range(columns)]
    grid.sort(key=lambda cr: cr != (0.0, 0.0))  # centre first, the rest in row order
    cams = []
    for col, row in grid:
        center = target_arr + np.array([col * spacing, -distance, -row * spacing + 0.5])
        cams.append(PinholeCamera(K=K.copy(), w2c=look_at_w2c(center, target_arr), width=width, height=height))
    return cams
