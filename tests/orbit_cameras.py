"""A timed camera on a circle around the origin, looking at it (the strategy and CUDA tests)."""

import math

import torch
from nerfstudio.cameras.cameras import Cameras


def orbit_camera(i: int, t: float, width: int, height: int, focal: float) -> Cameras:
    """Camera ``i`` of an orbit (0.4 rad apart, 3 units out) at time ``t``, principal point centred."""
    angle = 0.4 * i
    c2w = torch.eye(4)[:3]
    c2w[:, :3] = torch.tensor(
        [[math.cos(angle), 0, math.sin(angle)], [0, 1, 0], [-math.sin(angle), 0, math.cos(angle)]]
    )
    c2w[:, 3] = c2w[:, 2] * 3.0  # OpenGL: the camera looks down −z, so it sits on +z
    return Cameras(
        camera_to_worlds=c2w[None],
        fx=focal,
        fy=focal,
        cx=width / 2,
        cy=height / 2,
        width=width,
        height=height,
        times=torch.tensor([[t]]),
    )
