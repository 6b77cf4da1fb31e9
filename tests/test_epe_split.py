"""benchmarks/shapeofmotion_epe_split.py's split of the track error into readout and correspondence,
and its per-frame depth offsets against the prior's."""

import functools
import importlib.util
import math
import sys
from pathlib import Path

import torch

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "shapeofmotion_epe_split.py"


@functools.cache
def load_script():
    sys.path.insert(0, str(SCRIPT.parent))  # the script imports a sibling, as when run
    spec = importlib.util.spec_from_file_location("shapeofmotion_epe_split", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def split_function():
    return load_script().readout_and_correspondence


def moving_points(K: int = 4, N: int = 30):
    """True points [K, N, 3] moving along x, seen from cameras at (0, 0, −5) looking along z."""
    torch.manual_seed(0)
    points = torch.randn(N, 3) * 0.3
    truth = torch.stack([points + torch.tensor([0.2 * k, 0.0, 0.0]) for k in range(K)])
    return truth, torch.tensor([[0.0, 0.0, -5.0]]).expand(K, 3)


def test_a_per_frame_depth_error_is_readout_not_correspondence():
    truth, centres = moving_points()
    K, N = truth.shape[:2]
    rays = torch.nn.functional.normalize(truth - centres[:, None], dim=-1)
    depth_error = torch.tensor([0.1, -0.1, 0.2, 0.0])  # each frame's surface off along its rays
    placed = truth + depth_error[:, None, None] * rays
    aligned = placed[None].expand(K, -1, -1, -1)  # every frame's points land on frame j's surface
    out = split_function()(aligned, truth, torch.ones(K, N, dtype=torch.bool), centres)
    assert math.isclose(out["readout"], 0.1, rel_tol=1e-4)
    assert math.isclose(out["readout along the ray"], 0.1, rel_tol=1e-4)
    assert math.isclose(out["readout along the ray (signed mean)"], 0.05, rel_tol=1e-4)
    assert out["readout across the ray"] < 1e-5
    assert out["correspondence"] < 1e-6


def test_a_wrong_motion_is_correspondence_only_over_the_valid_pairs():
    truth, centres = moving_points()
    K, N = truth.shape[:2]
    aligned = truth[None].repeat(K, 1, 1, 1)
    for i in range(K):
        for j in range(K):
            if i != j:  # frame i's points carried 0.1 too far along y, across the rays
                aligned[i, j] += torch.tensor([0.0, 0.1, 0.0])
    aligned[0, 1, :5] += 10.0  # points not valid at frame 0: not scored
    valid = torch.ones(K, N, dtype=torch.bool)
    valid[0, :5] = False
    out = split_function()(aligned, truth, valid, centres)
    assert out["readout"] < 1e-6
    assert math.isclose(out["correspondence"], 0.1, rel_tol=1e-4)
    assert out["correspondence across the ray"] > 0.09


def test_a_surface_that_follows_the_priors_frame_offsets_correlates_with_them():
    depth_offsets = load_script().depth_offsets
    truth, centres = moving_points()
    K, N = truth.shape[:2]
    rays = torch.nn.functional.normalize(truth - centres[:, None], dim=-1)
    prior_offset = torch.tensor([0.1, -0.1, 0.2, 0.0])
    torch.manual_seed(1)
    prior = truth + (prior_offset[:, None] + 0.05 * torch.randn(K, N))[..., None] * rays
    model = truth + 0.5 * prior_offset[:, None, None] * rays + torch.tensor([0.0, 0.03, 0.0])  # half, and across
    valid = torch.ones(K, N, dtype=torch.bool)
    out = depth_offsets(model[None].expand(K, -1, -1, -1), prior[None].expand(K, -1, -1, -1), truth, valid, centres)
    assert out["per-frame depth offset correlation, model vs prior"] > 0.95
    assert math.isclose(out["per-frame depth offset std, model"], float((0.5 * prior_offset).std()), rel_tol=0.02)
    assert math.isclose(out["per-frame depth offset std, prior"], float(prior_offset.std()), rel_tol=0.2)  # + noise
    assert out["readout along the ray less the frame's offset"] < 2e-3  # the across offset is ~0 along the rays
    valid[:, :28] = False  # two points per frame: too few for an offset
    assert (
        depth_offsets(model[None].expand(K, -1, -1, -1), prior[None].expand(K, -1, -1, -1), truth, valid, centres) == {}
    )
