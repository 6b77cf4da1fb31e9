"""Analytic dynamic scene and its ray-casting renderer (numpy, independent of any rasterizer).

The world is z-up: a textured ground plane z = 0 inside a textured background sphere, static
boxes, and moving objects (spheres and boxes) whose poses are analytic functions of a
fractional frame index. Objects can be visible only during part of the sequence.

Motion is parameterised by the normalised sequence time u = frame / (num_frames − 1), so the
same story plays over any number of frames. Textures live in each object's own coordinates,
so a surface point moves with its object: :meth:`SyntheticScene.track_points` gives exact 3D
tracks.

Pixel convention (OpenCV / gsplat / nerfstudio): pixel (i, j) covers [j, j+1) × [i, i+1), its
centre is (j + 0.5, i + 0.5), and u = fx·x/z + cx, v = fy·y/z + cy in camera axes x right,
y down, z forward. Ray directions are scaled to camera-z = 1, so a hit's ray parameter is its
z-depth.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Tuple

import cv2
import numpy as np

from dataparsers.synthetic.shapes import Box, Shape, Sphere, background_hit, cell_noise, checker

AMBIENT = 0.35
DIFFUSE = 0.65
UNDISTORT_CRITERIA = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 50, 1e-12)


@dataclass
class PinholeCamera:
    """A pinhole camera in OpenCV conventions, optionally with OpenCV lens distortion."""

    K: np.ndarray  # [3, 3] intrinsics, pixel centres at +0.5
    w2c: np.ndarray  # [4, 4] world -> camera, OpenCV axes (x right, y down, z forward)
    width: int
    height: int
    distortion: Optional[np.ndarray] = None  # OpenCV (k1, k2, p1, p2, k3); None: no distortion

    @property
    def c2w(self) -> np.ndarray:
        return np.linalg.inv(self.w2c)

    @property
    def center(self) -> np.ndarray:
        return self.c2w[:3, 3]

    def to_camera(self, points: np.ndarray) -> np.ndarray:
        """World points [P, 3] in camera coordinates [P, 3]."""
        return points @ self.w2c[:3, :3].T + self.w2c[:3, 3]

    def project(self, points: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """Pixel coordinates [P, 2] (distorted when the camera has distortion) and z-depth [P]."""
        cam = self.to_camera(np.asarray(points, dtype=np.float64).reshape(-1, 3))
        dist = np.zeros(5) if self.distortion is None else self.distortion
        uv, _ = cv2.projectPoints(cam, np.zeros(3), np.zeros(3), self.K, dist)
        return uv.reshape(-1, 2), cam[:, 2]

    def pixel_rays(self, uv: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """Ray origin [3] and world directions [N, 3] (camera-z component 1) through pixels uv [N, 2]."""
        if self.distortion is None:
            xy = (uv - self.K[:2, 2]) / np.diag(self.K)[:2]
        else:
            pts = np.ascontiguousarray(uv, dtype=np.float64).reshape(-1, 1, 2)
            xy = cv2.undistortPointsIter(pts, self.K, self.distortion, None, None, UNDISTORT_CRITERIA).reshape(-1, 2)
        dirs_cam = np.concatenate([xy, np.ones((len(xy), 1))], axis=1)
        return self.center, dirs_cam @ self.c2w[:3, :3].T


@dataclass
class RenderResult:
    rgb: np.ndarray  # float32 [H, W, 3] in [0, 1], supersampled
    depth: np.ndarray  # float32 [H, W] camera z-depth at pixel centres
    dynamic_mask: np.ndarray  # bool [H, W]: a moving object at the pixel centre
    object_id: np.ndarray  # int16 [H, W]: moving object index, -1 = static background/ground


def rotation_about(axis: Sequence[float], angle: float) -> np.ndarray:
    """3×3 rotation by ``angle`` radians about ``axis`` (Rodrigues)."""
    rvec = np.asarray(axis, dtype=np.float64)
    rvec = rvec / np.linalg.norm(rvec) * angle
    return cv2.Rodrigues(rvec)[0]


@dataclass(frozen=True)
class Trajectory:
    """Pose at normalised time u: position p0 + velocity·u + amplitude·sin(2π·cycles·u),
    orientation rotation_about(spin_axis, spin·u) · R0."""

    start: Tuple[float, float, float]
    velocity: Tuple[float, float, float] = (0.0, 0.0, 0.0)
    amplitude: Tuple[float, float, float] = (0.0, 0.0, 0.0)
    cycles: float = 0.0
    spin_axis: Tuple[float, float, float] = (0.0, 0.0, 1.0)
    spin: float = 0.0  # radians over the whole sequence
    initial_rotation: Tuple[float, float, float] = (0.0, 0.0, 0.0)  # Rodrigues vector R0

    def pose(self, u: float) -> np.ndarray:
        pose = np.eye(4)
        r0 = cv2.Rodrigues(np.asarray(self.initial_rotation, dtype=np.float64))[0]
        pose[:3, :3] = rotation_about(self.spin_axis, self.spin * u) @ r0 if self.spin else r0
        pose[:3, 3] = (
            np.asarray(self.start)
            + np.asarray(self.velocity) * u
            + np.asarray(self.amplitude) * np.sin(2 * np.pi * self.cycles * u)
        )
        return pose


@dataclass(frozen=True)
class SceneObject:
    """A textured shape following a trajectory, visible for normalised times in [appear, disappear)."""

    name: str
    shape: Shape
    trajectory: Trajectory
    colors: Tuple[Tuple[float, float, float], Tuple[float, float, float]]
    texture_cells: float
    appear: float = -np.inf
    disappear: float = np.inf


@dataclass
class SyntheticScene:
    """Ground, background, static boxes and moving objects; analytic in (fractional) frame time."""

    num_frames: int
    fps: float
    objects: List[SceneObject]  # moving objects; object id = index
    static_objects: List[SceneObject] = field(default_factory=list)  # rendered with id -1
    ground_cell: float = 0.06  # size of the ground's fine noise cells (world units)
    ground_checker: float = 0.5  # size of the ground's coarse checker squares
    background_radius: float = 12.0
    light_direction: Tuple[float, float, float] = (0.35, -0.45, 0.82)
    texture_seed: int = 0

    # ----- time and motion -----
    def normalized_time(self, frame: float) -> float:
        return float(frame) / max(self.num_frames - 1, 1)

    def object_pose(self, object_id: int, frame: float) -> np.ndarray:
        """[4, 4] object -> world at a (fractional) frame."""
        return self.objects[object_id].trajectory.pose(self.normalized_time(frame))

    def is_visible(self, object_id: int, frame: float) -> bool:
        obj = self.objects[object_id]
        return bool(obj.appear <= self.normalized_time(frame) < obj.disappear)

    def track_points(
        self, points: np.ndarray, object_ids: np.ndarray, frame_from: float, frames_to: np.ndarray
    ) -> np.ndarray:
        """World positions [T, P, 3] at ``frames_to`` of points [P, 3] given at ``frame_from`` on
        objects ``object_ids`` [P] (-1: static, stays put)."""
        points = np.asarray(points, dtype=np.float64)
        frames_to = np.atleast_1d(np.asarray(frames_to, dtype=np.float64))
        out = np.broadcast_to(points, (len(frames_to), *points.shape)).copy()
        for oid in np.unique(object_ids[object_ids >= 0]):
            sel = object_ids == oid
            local = (points[sel] - self.object_pose(oid, frame_from)[:3, 3]) @ self.object_pose(oid, frame_from)[:3, :3]
            for k, frame in enumerate(frames_to):
                pose = self.object_pose(oid, frame)
                out[k, sel] = local @ pose[:3, :3].T + pose[:3, 3]
        return out

    # ----- rendering -----
    def render(self, cam: PinholeCamera, frame: float, supersample: int = 2) -> RenderResult:
        """RGB averaged over supersample² sub-pixel rays; depth / masks / ids at pixel centres."""
        w, h, s = cam.width, cam.height, supersample
        jj, ii = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
        sub = (np.arange(s) + 0.5) / s
        # sub-pixel samples ordered [s (y), s (x), H, W]
        su = np.broadcast_to((jj[None, None] + sub[None, :, None, None]), (s, s, h, w)).reshape(-1)
        sv = np.broadcast_to((ii[None, None] + sub[:, None, None, None]), (s, s, h, w)).reshape(-1)
        centres = np.stack([jj.reshape(-1) + 0.5, ii.reshape(-1) + 0.5], axis=1)
        uv = np.concatenate([np.stack([su, sv], axis=1), centres])
        origin, dirs = cam.pixel_rays(uv)
        rgb, depth, ids = self.cast(origin, dirs, frame)
        n_sub = s * s * h * w
        rgb_img = rgb[:n_sub].reshape(s * s, h, w, 3).mean(axis=0)
        oid = ids[n_sub:].reshape(h, w).astype(np.int16)
        return RenderResult(
            rgb=np.clip(rgb_img, 0, 1).astype(np.float32),
            depth=depth[n_sub:].reshape(h, w).astype(np.float32),
            dynamic_mask=oid >= 0,
            object_id=oid,
        )

    def cast(self, origin: np.ndarray, dirs: np.ndarray, frame: float) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Shade rays origin [3] + t·dirs [N, 3]: colour [N, 3], ray parameter t [N], object id [N]."""
        primitives = self._primitives(frame)
        t_all = np.empty((len(primitives) + 2, len(dirs)))
        for k, (obj, _, pose) in enumerate(primitives):
            o_local = (origin - pose[:3, 3]) @ pose[:3, :3]
            t_all[k] = obj.shape.intersect(o_local, dirs @ pose[:3, :3])
        with np.errstate(divide="ignore", invalid="ignore"):
            t_ground = -origin[2] / dirs[:, 2]
        t_all[-2] = np.where(t_ground > 1e-9, t_ground, np.inf)
        t_all[-1] = background_hit(origin, dirs, self.background_radius)
        winner = np.argmin(t_all, axis=0)
        t = t_all[winner, np.arange(len(dirs))]
        rgb = np.empty((len(dirs), 3))
        ids = np.full(len(dirs), -1, dtype=np.int64)
        light = np.asarray(self.light_direction) / np.linalg.norm(self.light_direction)
        for k, (obj, oid, pose) in enumerate(primitives):
            sel = winner == k
            if not sel.any():
                continue
            p_local = (origin + t[sel, None] * dirs[sel] - pose[:3, 3]) @ pose[:3, :3]
            normal = obj.shape.normal(p_local) @ pose[:3, :3].T
            rgb[sel] = self.shade(obj, oid, frame, p_local, normal @ light)
            ids[sel] = oid
        sel = winner == len(primitives)
        rgb[sel] = self._ground_albedo(origin[:2] + t[sel, None] * dirs[sel, :2]) * (AMBIENT + DIFFUSE * light[2])
        sel = winner == len(primitives) + 1
        rgb[sel] = self._background(dirs[sel])
        return rgb, t, ids

    def shade(
        self, obj: SceneObject, object_id: int, frame: float, p_local: np.ndarray, n_dot_l: np.ndarray
    ) -> np.ndarray:
        """Colour [N, 3] of surface points p_local [N, 3] on ``obj`` (id −1: static) lit at cos angle n_dot_l [N]."""
        albedo = obj.shape.texture(p_local, np.asarray(obj.colors), obj.texture_cells)
        return albedo * (AMBIENT + DIFFUSE * np.clip(n_dot_l, 0, None))[:, None]

    def _primitives(self, frame: float) -> List[Tuple[SceneObject, int, np.ndarray]]:
        """(object, id, pose) of everything rendered at ``frame``: static objects first (id -1)."""
        prims = [(obj, -1, obj.trajectory.pose(0.0)) for obj in self.static_objects]
        prims += [
            (obj, k, self.object_pose(k, frame)) for k, obj in enumerate(self.objects) if self.is_visible(k, frame)
        ]
        return prims

    def _ground_albedo(self, xy: np.ndarray) -> np.ndarray:
        """Fine texture: per-cell noise colours modulated by a coarse checkerboard."""
        noise = cell_noise(
            np.floor(xy[:, 0] / self.ground_cell), np.floor(xy[:, 1] / self.ground_cell), self.texture_seed
        )
        coarse = checker(xy[:, 0] / self.ground_checker, xy[:, 1] / self.ground_checker)[:, None]
        tint = 0.7 * noise.mean(axis=1, keepdims=True) + 0.3 * noise  # mostly luminance, some colour
        return (0.2 + 0.55 * tint) * (0.6 + 0.4 * coarse) * np.array([1.0, 0.95, 0.85])

    def _background(self, dirs: np.ndarray) -> np.ndarray:
        """Sky-like gradient with azimuthal stripes, by ray direction (no parallax)."""
        unit = dirs / np.linalg.norm(dirs, axis=1, keepdims=True)
        elevation = np.clip(unit[:, 2], -1, 1)[:, None]
        azimuth = np.arctan2(unit[:, 1], unit[:, 0])
        stripes = (0.5 + 0.5 * np.sign(np.sin(azimuth * 18)))[:, None]
        horizon, zenith = np.array([0.75, 0.8, 0.85]), np.array([0.35, 0.5, 0.8])
        return (horizon + (zenith - horizon) * np.clip(elevation * 2, 0, 1)) * (0.85 + 0.15 * stripes)


def default_scene(num_frames: int = 30, fps: float = 30.0, seed: int = 0) -> SyntheticScene:
    """The standard synthetic scene: textured ground, two static boxes, a rolling sphere, a
    spinning and bobbing box, and a sphere visible only for u in [0.3, 0.7).

    ``seed`` varies colours, initial orientations and the ground noise; the motions are fixed.
    """
    rng = np.random.default_rng(seed)

    def colors(base_a: Tuple[float, float, float], base_b: Tuple[float, float, float]):
        jitter = rng.uniform(-0.08, 0.08, size=(2, 3))
        a, b = np.clip(np.array([base_a, base_b]) + jitter, 0.02, 0.98)
        return tuple(map(float, a)), tuple(map(float, b))

    def rot() -> Tuple[float, float, float]:
        return tuple(map(float, rng.uniform(-0.3, 0.3, size=3)))  # type: ignore[return-value]

    ball_radius, ball_travel = 0.3, np.array([2.0, 0.3, 0.0])
    moving = [
        SceneObject(
            "rolling_sphere",
            Sphere(ball_radius),
            Trajectory(
                start=(-1.0, -0.55, ball_radius),
                velocity=tuple(ball_travel),
                spin_axis=tuple(np.cross([0.0, 0.0, 1.0], ball_travel)),
                spin=float(np.linalg.norm(ball_travel) / ball_radius),
                initial_rotation=rot(),
            ),
            colors((0.9, 0.2, 0.15), (0.95, 0.9, 0.2)),
            texture_cells=8,
        ),
        SceneObject(
            "spinning_box",
            Box((0.22, 0.22, 0.22)),
            Trajectory(
                start=(0.35, 0.05, 0.55),
                velocity=(-0.4, 0.5, 0.0),
                amplitude=(0.0, 0.0, 0.15),
                cycles=1.0,
                spin_axis=(0.2, 0.1, 1.0),
                spin=1.5 * np.pi,
                initial_rotation=rot(),
            ),
            colors((0.15, 0.45, 0.9), (0.9, 0.9, 0.95)),
            texture_cells=9,
        ),
        SceneObject(
            "blinking_sphere",
            Sphere(0.25),
            Trajectory(
                start=(-0.55, 0.75, 0.75),
                amplitude=(0.2, 0.0, 0.1),
                cycles=0.5,
                spin_axis=(1.0, 0.0, 0.0),
                spin=np.pi,
                initial_rotation=rot(),
            ),
            colors((0.2, 0.8, 0.3), (0.1, 0.25, 0.1)),
            texture_cells=10,
            appear=0.3,
            disappear=0.7,
        ),
    ]
    static = [
        SceneObject(
            "pillar",
            Box((0.2, 0.2, 0.45)),
            Trajectory(start=(0.95, 0.85, 0.45), initial_rotation=(0, 0, 0.35)),
            colors((0.85, 0.6, 0.35), (0.45, 0.25, 0.15)),
            texture_cells=12,
        ),
        SceneObject(
            "crate",
            Box((0.35, 0.25, 0.15)),
            Trajectory(start=(-1.05, 0.75, 0.15), initial_rotation=(0, 0, -0.5)),
            colors((0.55, 0.35, 0.7), (0.9, 0.85, 0.8)),
            texture_cells=14,
        ),
    ]
    return SyntheticScene(
        num_frames=num_frames, fps=fps, objects=moving, static_objects=static, texture_seed=int(rng.integers(0, 1000))
    )
