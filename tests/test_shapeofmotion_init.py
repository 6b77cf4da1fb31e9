"""Shape of Motion initialization: Procrustes / clustering on known rigid motions, and the whole
initialization on a synthetic monocular scene read by the iphone dataparser."""

import dataclasses
import math
import os
import shutil

import numpy as np
import pytest
import torch

from dataparsers.iphone.dataparser import IPhoneDataParserConfig
from dataparsers.iphone.dataset import IPhoneDataset
from dataparsers.iphone.layout import IPhoneLayout
from shapeofmotion_ns import init as init_module
from shapeofmotion_ns.init import InitConfig, cached_initialize_scene, initialize_scene, quats_from_normals
from shapeofmotion_ns.init_motion import (
    fit_cluster_bases,
    initial_motion,
    optimize_motion,
    solve_se3,
)
from shapeofmotion_ns.iphone_frames import training_frames
from shapeofmotion_ns.lift import PriorWarning, Tracks3D, lift_tracks
from shapeofmotion_ns.motion import bases_at, blend, move_means, rotation_6d_to_matrix
from shapeofmotion_ns.track_clusters import cluster_by_velocity, fill_missing
from splat4d.projection import quat_to_rotmat
from splat4d.quantile import safe_quantile

NUM_FRAMES = 8  # frames of the monocular_scene fixture (conftest.py)


def rotation_z(angle: float) -> torch.Tensor:
    c, s = math.cos(angle), math.sin(angle)
    return torch.tensor([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def two_rigid_bodies(T: int = 6, n: int = 150, seed: int = 0) -> tuple:
    """Tracks of two point clouds: A spins about its centre and drifts +x, B slides −y and rises."""
    g = torch.Generator().manual_seed(seed)
    a0 = 0.2 * torch.randn(n, 3, generator=g) + torch.tensor([1.5, 0.0, 0.0])
    b0 = 0.2 * torch.randn(n, 3, generator=g) + torch.tensor([-1.5, 0.0, 0.0])
    xyz = torch.zeros(2 * n, T, 3)
    for t in range(T):
        Ra = rotation_z(0.15 * t)
        xyz[:n, t] = (a0 - a0.mean(0)) @ Ra.T + a0.mean(0) + torch.tensor([0.05 * t, 0.0, 0.0])
        xyz[n:, t] = b0 + torch.tensor([0.0, -0.08 * t, 0.03 * t])
    visible = torch.ones(2 * n, T, dtype=torch.bool)
    tracks = Tracks3D(xyz, visible, ~visible, torch.ones(2 * n, T), torch.rand(2 * n, 3, generator=g))
    return tracks, n


def trajectories(motion, frames: torch.Tensor) -> torch.Tensor:
    R, t = blend(motion.coef_logits, *bases_at(motion.rots, motion.transls, frames))
    return move_means(motion.means, R, t)


def test_fill_missing_interpolates_between_observations():
    xyz = torch.arange(5.0)[None, :, None].expand(2, 5, 3).clone()
    visible = torch.tensor([[True, False, False, True, False], [False, True, True, True, True]])
    xyz[~visible] = 99.0
    filled = fill_missing(xyz, visible)
    assert torch.allclose(filled[0, :, 0], torch.tensor([0.0, 1.0, 2.0, 3.0, 3.0]))
    assert torch.allclose(filled[1, :, 0], torch.tensor([1.0, 1.0, 2.0, 3.0, 4.0]))


def test_weighted_procrustes_recovers_the_rigid_transform():
    g = torch.Generator().manual_seed(1)
    src = torch.randn(40, 3, generator=g)
    R = rotation_6d_to_matrix(torch.randn(6, generator=g))
    t = torch.tensor([0.3, -1.0, 2.0])
    dst = src @ R.T + t
    dst[:5] += 10 * torch.randn(5, 3, generator=g)  # outliers with zero weight
    weights = torch.ones(40)
    weights[:5] = 0.0
    R_fit, t_fit = solve_se3(src, dst, weights)
    assert torch.allclose(R_fit, R, atol=1e-5) and torch.allclose(t_fit, t, atol=1e-5)
    assert torch.det(R_fit) > 0


def test_initial_motion_separates_and_fits_two_rigid_bodies():
    tracks, n = two_rigid_bodies()
    motion = initial_motion(tracks, canonical=0, num_bases=2, min_cluster_points=100, min_mean_weight=0.1, seed=0)
    assert motion.rots.shape == (2, 6, 6) and motion.coef_logits.shape == (2 * n, 2)
    # each body is dominated by its own basis
    owner = motion.coef_logits.argmax(dim=1)
    assert (owner[:n] == owner[0]).all() and (owner[n:] == owner[n]).all() and owner[0] != owner[n]
    # the basis of A rotates by 0.15 rad per frame about z
    R_a = rotation_6d_to_matrix(motion.rots[owner[0]])
    angles = torch.atan2(R_a[:, 1, 0], R_a[:, 0, 0])
    assert torch.allclose(angles, 0.15 * torch.arange(6.0), atol=1e-4)
    error = (trajectories(motion, torch.arange(6)) - tracks.xyz).norm(dim=-1)
    assert error.mean() < 0.01  # blending leaves a small residue
    w2c = torch.eye(4).expand(6, 4, 4).clone()
    w2c[:, 2, 3] = 6.0
    K = torch.tensor([[100.0, 0, 50], [0, 100, 50], [0, 0, 1]]).expand(6, 3, 3)
    refined = optimize_motion(motion, tracks, w2c, K, steps=60)
    assert (trajectories(refined, torch.arange(6)) - tracks.xyz).norm(dim=-1).mean() < error.mean()


def test_cluster_coefficient_init_puts_each_track_on_its_own_basis():
    tracks, n = two_rigid_bodies()
    args = dict(canonical=0, num_bases=2, min_cluster_points=100, min_mean_weight=0.1, seed=0)
    distance = initial_motion(tracks, **args)
    cluster = initial_motion(tracks, **args, coef_init="cluster")
    # same bases; logits 10 on the track's own k-means cluster (both are kept: basis b = cluster b), 0 elsewhere
    assert torch.equal(cluster.rots, distance.rots) and torch.equal(cluster.transls, distance.transls)
    labels = cluster_by_velocity(tracks.xyz, tracks.visible, num_clusters=2, seed=0)
    assert torch.equal(cluster.coef_logits, 10.0 * torch.nn.functional.one_hot(labels, 2).float())
    assert torch.softmax(cluster.coef_logits, dim=1).max(dim=1).values.min() > 0.9999
    assert distance.coef_logits.softmax(dim=1).max(dim=1).values.min() < 0.9999  # the reference's is softer
    with pytest.raises(ValueError, match="coef_init"):
        initial_motion(tracks, **args, coef_init="nearest")


def test_procrustes_copies_the_previous_frame_without_enough_weight():
    tracks, n = two_rigid_bodies(T=5)
    tracks.visible[:, 3] = False  # frame 3 is unobserved
    labels = torch.cat([torch.zeros(n), torch.ones(n)]).long()
    rots, transls = fit_cluster_bases(tracks, labels, [0, 1], canonical=1, min_mean_weight=0.1)
    assert torch.equal(rots[:, 3], rots[:, 2]) and torch.equal(transls[:, 3], transls[:, 2])
    assert not torch.allclose(transls[0, 4], transls[0, 2])
    assert torch.allclose(rotation_6d_to_matrix(rots[:, 1]), torch.eye(3).expand(2, 3, 3), atol=1e-5)


def test_normals_become_quaternions_rotating_z():
    normals = torch.nn.functional.normalize(torch.tensor([[0.0, 0, 1], [1, 0, 0], [0, 1, 1], [0, 0, -1], [0, 0, 0]]))
    R = quat_to_rotmat(quats_from_normals(normals))
    assert torch.allclose(R[:4, :, 2], normals[:4], atol=1e-6)
    assert torch.allclose(R[4], torch.eye(3))


# ----- on a synthetic monocular scene -----
@pytest.fixture(scope="module")
def parsed(monocular_scene):
    outputs = IPhoneDataParserConfig(data=monocular_scene).setup().get_dataparser_outputs("train")
    return outputs, training_frames(IPhoneDataset(outputs))


@pytest.fixture(scope="module")
def ground_truth(monocular_scene, parsed):
    """Exact 3D tracks [P, F, 3] in nerfstudio units and their visibility."""
    outputs, _ = parsed
    with np.load(IPhoneLayout(monocular_scene).ground_truth_dir / "tracks_3d.npz") as data:
        positions, visible = data["positions"], data["visible"]
    transform = outputs.dataparser_transform.double().numpy()
    ns = outputs.dataparser_scale * (positions @ transform[:, :3].T + transform[:, 3])
    return torch.from_numpy(ns).float(), torch.from_numpy(visible)


def match_errors(xyz: torch.Tensor, visible: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """Errors of visible entries against the ground-truth track closest on average."""
    dist = (xyz[:, None] - gt[None]).norm(dim=-1)  # [P, G, T]
    cost = (dist * visible[:, None]).sum(-1) / visible.sum(-1, keepdim=True).clamp(min=1)
    return dist[torch.arange(len(xyz)), cost.argmin(dim=1)][visible]


def test_lifted_tracks_lie_on_the_true_trajectories(parsed, ground_truth):
    _, frames = parsed
    tracks = lift_tracks(frames, 10_000, torch.Generator().manual_seed(0))
    assert len(tracks) > 0.8 * sum(frames.tracks.num_points)
    assert tracks.xyz.shape[1] == NUM_FRAMES and tracks.visible.any(dim=1).all()
    centres = torch.linalg.inv(frames.w2c)[:, :3, 3]
    depth = (tracks.xyz - centres[None]).norm(dim=-1)[tracks.visible]
    relative = match_errors(tracks.xyz, tracks.visible, ground_truth[0]) / depth
    # the disparity prior has ±5% scale and ±3% shift errors per frame
    assert relative.median() < 0.05 and safe_quantile(relative, 0.9) < 0.1
    # every track names its query frame and point: distinct, and its own ground-truth track is the closest
    assert tracks.ids.shape == (len(tracks), 2) and len(tracks.ids.unique(dim=0)) == len(tracks)
    offsets = torch.tensor([0, *frames.tracks.num_points]).cumsum(0)
    own = ground_truth[0][offsets[tracks.ids[:, 0]] + tracks.ids[:, 1]]
    own_errors = (tracks.xyz - own).norm(dim=-1)[tracks.visible] / depth
    assert own_errors.median() < 0.05 and safe_quantile(own_errors, 0.9) < 0.1


@pytest.mark.parametrize("cluster_by", ["velocity", "rigidity"])
def test_initialization_of_the_synthetic_scene(parsed, ground_truth, cluster_by):
    _, frames = parsed
    config = InitConfig(
        num_dynamic=2000, num_static=1500, min_cluster_points=20, optim_steps=150, cluster_by=cluster_by
    )
    init = initialize_scene(frames, config)
    n = len(init.means)
    assert init.quats.shape == (n, 4) and init.log_scales.shape == (n, 3) and init.colors.shape == (n, 3)
    num_dyn = int(init.is_dynamic.sum())
    assert 100 < num_dyn < n and init.is_dynamic[:num_dyn].all()
    assert init.rots.shape[1] == NUM_FRAMES and init.coef_logits.shape == (n, init.rots.shape[0])
    assert torch.isfinite(init.means).all() and torch.isfinite(init.log_scales).all()
    # normalization: the dynamic points span about ±1, the camera up vector is +z
    dyn = init.means[init.is_dynamic]
    spread = (safe_quantile(dyn, 0.95, dim=0) - safe_quantile(dyn, 0.05, dim=0)).max() / 2
    assert 0.6 < spread < 1.5
    up_model = init.normalization.rotation @ (-frames.w2c[:, 1, :3].mean(0))
    assert torch.allclose(torch.nn.functional.normalize(up_model, dim=0), torch.tensor([0.0, 0, 1]), atol=1e-5)
    # the initial trajectories follow the true ones: median error under 20% of the foreground's half extent
    R, t = blend(init.coef_logits[:num_dyn], *bases_at(init.rots, init.transls, torch.arange(NUM_FRAMES)))
    world = init.normalization.points_to_world(move_means(dyn, R, t))
    gt, gt_visible = ground_truth
    errors = match_errors(world, torch.ones(num_dyn, NUM_FRAMES, dtype=torch.bool), gt[gt_visible.any(dim=1)])
    assert errors.median() < 0.2 * init.normalization.scale  # 0.046 / 0.374 when written
    # each dynamic Gaussian keeps the id of the track it was fitted to
    assert init.track_ids.shape == (num_dyn, 2) and len(init.track_ids.unique(dim=0)) == num_dyn


def with_depth(frames, change):
    """The same frames with each frame's depth map replaced by change(index, depth)."""

    def load(i):
        data = frames.load(i)
        return dataclasses.replace(data, depth=change(i, data.depth.clone()))

    return dataclasses.replace(frames, load=load)


def test_a_frame_without_usable_depth_is_skipped_with_a_warning(parsed):
    _, frames = parsed
    nan_first = with_depth(frames, lambda i, d: d.fill_(float("nan")) if i == 0 else d)
    with pytest.warns(PriorWarning, match=f"{frames.names[0]}: no pixel has a valid depth"):
        tracks = lift_tracks(nan_first, 10_000, torch.Generator().manual_seed(0))
    assert not tracks.visible[:, 0].any() and tracks.visible[:, 1:].any()


def test_no_usable_depth_anywhere_is_an_error_naming_the_frames(parsed):
    _, frames = parsed
    with pytest.warns(PriorWarning), pytest.raises(ValueError, match=f"no usable 2D tracks.*{frames.names[-1]}"):
        lift_tracks(with_depth(frames, lambda i, d: d.zero_()), 10_000, torch.Generator().manual_seed(0))


def test_the_initialization_is_cached_next_to_the_data(monocular_scene, parsed, monkeypatch):
    _, frames = parsed
    config = InitConfig(num_dynamic=300, num_static=300, min_cluster_points=20, optim_steps=5)
    cache = monocular_scene / ".splat4d_cache"
    shutil.rmtree(cache, ignore_errors=True)
    first = cached_initialize_scene(frames, config, monocular_scene)
    (entry,) = cache.glob("shapeofmotion_init_*.pt")
    torch.load(entry, weights_only=True)  # tensors and primitives only

    def no_recompute(*args):
        raise AssertionError("recomputed despite the cache")

    monkeypatch.setattr(init_module, "initialize_scene", no_recompute)
    second = cached_initialize_scene(frames, config, monocular_scene)
    for field in dataclasses.fields(first):
        a, b = getattr(first, field.name), getattr(second, field.name)
        if field.name == "normalization":
            a, b = dataclasses.astuple(a), dataclasses.astuple(b)
            assert all(torch.equal(torch.as_tensor(x), torch.as_tensor(y)) for x, y in zip(a, b))
        else:
            assert torch.equal(a, b) if torch.is_tensor(a) else a == b, field.name
    with pytest.raises(AssertionError, match="recomputed"):  # another config field: another entry
        cached_initialize_scene(frames, dataclasses.replace(config, optim_steps=6), monocular_scene)
    with pytest.raises(AssertionError, match="recomputed"):  # use_cache off: never read
        cached_initialize_scene(frames, dataclasses.replace(config, use_cache=False), monocular_scene)
    monkeypatch.undo()
    touched = monocular_scene / "extra.json"
    os.utime(touched, ns=(touched.stat().st_atime_ns, touched.stat().st_mtime_ns + 10**9))  # an input changed
    cached_initialize_scene(frames, config, monocular_scene)
    assert len(list(cache.glob("shapeofmotion_init_*.pt"))) == 2
    assert not list(cache.glob("*.tmp"))
