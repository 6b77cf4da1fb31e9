"""Trajectory sampling and drawing for the viewer's "Show trajectories" (no viewer needed)."""

import pytest
import torch

from shapeofmotion_ns.trajectories import SCENE_NODE, draw_trajectories, rainbow, sample_trajectories


class FakeScene:
    """Records what a viser scene is asked to add."""

    def __init__(self):
        self.added = {}

    def _add(self, name, **kwargs):
        self.added[name] = kwargs
        scene = self

        class Handle:
            def remove(self):
                del scene.added[name]

        return Handle()

    def add_spline_catmull_rom(self, name, positions, **kwargs):
        return self._add(name, positions=positions, **kwargs)

    def add_point_cloud(self, name, points, colors, **kwargs):
        return self._add(name, points=points, colors=colors, **kwargs)


def lines(G=6, T=4):
    """Gaussian g moves +z from (g, 0, 0): spread along x."""
    start = torch.stack([torch.arange(float(G)), torch.zeros(G), torch.zeros(G)], dim=1)
    return start[:, None] + torch.tensor([0.0, 0.0, 0.1]) * torch.arange(float(T))[None, :, None]


def test_sampling_prefers_opaque_gaussians_is_repeatable_and_colours_along_the_spread():
    positions = lines()
    opacities = torch.tensor([0.9, 0.1, 0.8, 0.7, 0.2, 0.95])
    sample = sample_trajectories(positions, opacities, count=3)
    assert set(sample.ids.tolist()) <= {0, 2, 3, 5}
    assert len(sample.ids) == 3 and all(opacities[sample.ids] >= 0.5)
    assert torch.equal(sample.positions, positions[sample.ids])
    again = sample_trajectories(positions, opacities, count=3)
    assert torch.equal(again.ids, sample.ids) and torch.equal(again.colors, sample.colors)
    # ordered along x: the first is red, the last magenta
    assert torch.allclose(sample.colors[0], torch.tensor([1.0, 0.0, 0.0]))
    assert torch.allclose(sample.colors[-1], torch.tensor([1.0, 0.0, 1.0]))
    everything = sample_trajectories(positions, opacities, count=100)
    assert everything.ids.tolist() == [0, 2, 3, 5]  # only the opaque ones while there are some
    transparent = sample_trajectories(positions, torch.zeros(6), count=100)
    assert transparent.ids.tolist() == list(range(6))


def test_rainbow_hues_and_bad_input():
    assert torch.allclose(rainbow(torch.tensor([0.0, 0.4, 0.8])), torch.tensor([[1.0, 0, 0], [0, 1, 0], [0, 0, 1]]))
    with pytest.raises(ValueError, match=r"positions \[G, T, 3\]"):
        sample_trajectories(torch.zeros(4, 3), torch.zeros(4), 2)
    with pytest.raises(ValueError, match="count"):
        sample_trajectories(lines(), torch.ones(6), -1)


def test_drawing_adds_one_spline_per_trajectory_and_their_points():
    scene = FakeScene()
    sample = sample_trajectories(lines(), torch.ones(6), count=4)
    handles = draw_trajectories(scene, sample, scale=10.0)
    splines = [name for name in scene.added if "track_" in name]
    assert len(splines) == 4 and len(handles) == 5
    first = scene.added[f"{SCENE_NODE}/track_0"]
    assert first["positions"].shape == (4, 3) and first["positions"][1, 2] == pytest.approx(1.0)  # × scale
    assert first["color"] == (255, 0, 0)
    cloud = scene.added[f"{SCENE_NODE}/points"]
    assert cloud["points"].shape == (16, 3) and cloud["colors"].shape == (16, 3)
    for handle in handles:
        handle.remove()
    assert scene.added == {}
