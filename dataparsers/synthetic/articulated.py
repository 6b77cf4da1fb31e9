"""An articulated synthetic scene (closer to DyCheck's people and pets than rigid objects alone):
a three-link arm whose links swing about hinge joints of a kinematic chain, beside a rigid
rolling sphere, on scene.py's textured ground with its two static boxes.

Each link is a scene object of its own (its own id, so the ground-truth tracks follow it); its
pose is the chain's product of joint transforms, so neighbouring links move differently but
stay attached, and one object does not move rigidly as a whole.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

import numpy as np

from dataparsers.synthetic.scene import (
    Box,
    SceneObject,
    Sphere,
    SyntheticScene,
    Trajectory,
    default_scene,
    rotation_about,
)

Vec = Tuple[float, float, float]


@dataclass(frozen=True)
class Joint:
    """A hinge at ``offset`` in its parent link's joint frame (the world for the root), turning
    about ``axis`` (in that frame) by bias + amplitude · sin(2π · cycles · u + phase) radians."""

    offset: Vec
    axis: Vec
    bias: float = 0.0
    amplitude: float = 0.0
    cycles: float = 1.0
    phase: float = 0.0

    def angle(self, u: float) -> float:
        return self.bias + self.amplitude * np.sin(2 * np.pi * self.cycles * u + self.phase)

    def transform(self, u: float) -> np.ndarray:
        """[4, 4] child joint frame -> parent joint frame: T(offset) · R(axis, angle(u))."""
        pose = np.eye(4)
        pose[:3, :3] = rotation_about(self.axis, self.angle(u))
        pose[:3, 3] = self.offset
        return pose


@dataclass(frozen=True)
class LinkTrajectory:
    """Pose of link ``len(joints) − 1`` of a serial chain: the product of its joints' transforms,
    then the link's centre ``centre`` in its own joint frame (duck-types scene.Trajectory)."""

    joints: Tuple[Joint, ...]
    centre: Vec

    def pose(self, u: float) -> np.ndarray:
        pose = np.eye(4)
        for joint in self.joints:
            pose = pose @ joint.transform(u)  # world <- joint_k = Π_k T_k(u)
        local = np.eye(4)
        local[:3, 3] = self.centre
        return pose @ local


def arm_links(base: Vec, seed_colors) -> list[SceneObject]:
    """Upper arm, forearm and hand of a 3-link arm standing at ``base`` (yawing shoulder, pitching
    shoulder, elbow and wrist)."""
    shoulder_yaw = Joint(base, (0.0, 0.0, 1.0), 0.0, 0.7, 0.8, 0.0)
    shoulder = Joint((0.0, 0.0, 0.0), (1.0, 0.0, 0.0), 0.2, 0.35, 1.3, 0.4)
    elbow = Joint((0.0, 0.0, 0.7), (1.0, 0.0, 0.0), 0.9, 0.6, 1.1, 1.2)
    wrist = Joint((0.0, 0.0, 0.56), (0.0, 1.0, 0.0), 0.0, 0.8, 1.7, 0.0)
    upper = (shoulder_yaw, shoulder)
    return [
        SceneObject(
            "upper_arm",
            Box((0.11, 0.11, 0.35)),
            LinkTrajectory(upper, (0.0, 0.0, 0.35)),
            seed_colors((0.85, 0.55, 0.2), (0.3, 0.15, 0.05)),
            texture_cells=8,
        ),
        SceneObject(
            "forearm",
            Box((0.09, 0.09, 0.28)),
            LinkTrajectory((*upper, elbow), (0.0, 0.0, 0.28)),
            seed_colors((0.2, 0.7, 0.75), (0.9, 0.95, 0.9)),
            texture_cells=8,
        ),
        SceneObject(
            "hand",
            Box((0.17, 0.07, 0.11)),
            LinkTrajectory((*upper, elbow, wrist), (0.0, 0.0, 0.11)),
            seed_colors((0.9, 0.3, 0.6), (0.95, 0.85, 0.3)),
            texture_cells=6,
        ),
    ]


def articulated_scene(num_frames: int = 60, fps: float = 30.0, seed: int = 0) -> SyntheticScene:
    """scene.py's ground and static boxes with a 3-link arm (objects 0–2) and a rigid rolling
    sphere (object 3); ``seed`` varies colours and the ground noise."""
    base = default_scene(num_frames, fps, seed)
    rng = np.random.default_rng(seed + 1)

    def colors(a: Vec, b: Vec):
        jitter = rng.uniform(-0.08, 0.08, size=(2, 3))
        ca, cb = np.clip(np.array([a, b]) + jitter, 0.02, 0.98)
        return tuple(map(float, ca)), tuple(map(float, cb))

    radius, travel = 0.25, np.array([1.6, 0.5, 0.0])
    sphere = SceneObject(
        "rolling_sphere",
        Sphere(radius),
        Trajectory(
            start=(-1.1, -0.75, radius),
            velocity=tuple(travel),
            spin_axis=tuple(np.cross([0.0, 0.0, 1.0], travel)),
            spin=float(np.linalg.norm(travel) / radius),
        ),
        colors((0.9, 0.2, 0.15), (0.95, 0.9, 0.2)),
        texture_cells=8,
    )
    objects = [*arm_links((0.15, 0.05, 0.0), colors), sphere]
    return SyntheticScene(
        num_frames=num_frames,
        fps=fps,
        objects=objects,
        static_objects=base.static_objects,
        texture_seed=base.texture_seed,
    )
