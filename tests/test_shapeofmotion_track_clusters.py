"""Track clustering of the Shape of Motion initialization: the rigidity clustering keeps a rolling
wheel whole and apart from a body sliding along with it, where velocity k-means cuts the wheel."""

import math

import pytest
import torch

from shapeofmotion_ns.init_motion import initial_motion
from shapeofmotion_ns.lift import Tracks3D
from shapeofmotion_ns.track_clusters import (
    cluster_by_rigidity,
    cluster_by_velocity,
    cluster_tracks,
    distance_deviation,
)


def wheel_and_slider(T: int = 24, n: int = 200, seed: int = 0) -> tuple:
    """Tracks [2n, T, 3]: a disk of radius 1 rolling along +x (a point's velocity turns with its
    angle) and a box sliding along +x with the wheel's centre, 1 ahead of it in z. A wheel point is
    visible while it faces the camera (its angle's cosine > −0.3); positions carry 5 mm noise."""
    g = torch.Generator().manual_seed(seed)
    radius, angle0 = torch.rand(n, generator=g).sqrt(), 2 * math.pi * torch.rand(n, generator=g)
    box = torch.rand(n, 3, generator=g) * torch.tensor([0.6, 0.6, 0.2]) + torch.tensor([-0.3, -0.3, 1.0])
    step = 0.2  # rolling: the centre advances by radius × angle
    xyz, visible = torch.zeros(2 * n, T, 3), torch.ones(2 * n, T, dtype=torch.bool)
    for t in range(T):
        angle = angle0 - step * t
        xyz[:n, t, 0] = step * t + radius * torch.cos(angle)
        xyz[:n, t, 1] = radius * torch.sin(angle)
        visible[:n, t] = torch.cos(angle) > -0.3
        xyz[n:, t] = box + torch.tensor([step * t, 0.0, 0.0])
    xyz = xyz + 0.005 * torch.randn(xyz.shape, generator=g)
    tracks = Tracks3D(xyz, visible, ~visible, torch.ones(2 * n, T), torch.rand(2 * n, 3, generator=g))
    return tracks, n


def purity(labels: torch.Tensor, n: int) -> tuple:
    """(wheel tracks in the wheel's largest cluster, slider tracks in that same cluster) as shares."""
    main = labels[:n].mode().values
    return float((labels[:n] == main).float().mean()), float((labels[n:] == main).float().mean())


def test_distance_deviation_is_zero_for_rigid_pairs_and_nan_without_shared_frames():
    T = 7
    xyz = torch.zeros(3, T, 3)
    xyz[1, :, 0] = 1.0  # fixed distance 1 to track 0
    xyz[2, :, 0] = 1.0 + 0.1 * torch.arange(T).flip(0)  # distance 1.6 … 1.0: median 1.3, deviations .3 .2 .1 0 …
    xyz[:, :, 1] = torch.arange(T).float()  # all three translate together
    visible = torch.ones(3, T, dtype=torch.bool)
    m = distance_deviation(xyz, visible, xyz, visible)
    assert torch.allclose(m[0, 1], torch.tensor(0.0), atol=1e-6) and torch.allclose(m[0, 2], torch.tensor(0.2))
    assert torch.allclose(m, m.T)
    visible[2, 2:] = False  # track 2 shares only 2 frames with the others
    assert torch.isnan(distance_deviation(xyz, visible, xyz, visible)[0, 2])


def test_rigidity_keeps_a_rolling_wheel_whole_where_velocity_cuts_it():
    tracks, n = wheel_and_slider()
    rigid = cluster_tracks("rigidity", tracks.xyz, tracks.visible, num_clusters=2, seed=0)
    wheel, slider = purity(rigid, n)
    assert wheel == 1.0 and slider == 0.0 and (rigid[n:] == rigid[n]).all()
    # anchors of the spectral step only, deviations on 12 of the 24 frames, a few pairs at a time
    few = cluster_by_rigidity(
        tracks.xyz, tracks.visible, 2, seed=0, max_anchors=100, max_frames=12, chunk_elements=5000
    )
    assert purity(few, n) == (1.0, 0.0) and (few[n:] == few[n]).all()
    velocity = cluster_by_velocity(tracks.xyz, tracks.visible, num_clusters=2, seed=0)
    wheel, slider = purity(velocity, n)
    assert wheel < 0.9 or slider > 0.1  # the reference's k-means mixes the bodies


def test_initial_motion_with_rigidity_clusters_fits_the_wheel_with_one_basis():
    tracks, n = wheel_and_slider()
    motion = initial_motion(
        tracks, canonical=0, num_bases=2, min_cluster_points=20, min_mean_weight=0.1, seed=0, cluster_by="rigidity"
    )
    owner = motion.coef_logits.argmax(dim=1)
    assert (owner[:n] == owner[0]).all() and (owner[n:] == owner[n]).all() and owner[0] != owner[n]
    with pytest.raises(ValueError, match="cluster_by"):
        cluster_tracks("speed", tracks.xyz, tracks.visible, num_clusters=2, seed=0)  # type: ignore[arg-type]
