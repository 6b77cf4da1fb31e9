"""Velocity-aware initialization of SharpTimeGS (sharptime_ns/init/) on a synthetic multi-view
video with exact ground truth (dataparsers/synthetic/scene.py): 6 cameras × 6 frames, 160×120."""

from __future__ import annotations

import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Tuple

import cv2
import numpy as np
import pytest
import torch
from nerfstudio.data.scene_box import SceneBox
from sharptime_init_scene import (
    NUM_CAMERAS,
    NUM_FRAMES,
    H,
    Synthetic,
    W,
    gt_labels,
    gt_velocity,
    measured_velocity,
    render_synthetic,
    split_accuracy,
)

from dataparsers.images import read_rgb
from sharptime_ns.init import frames as frames_mod
from sharptime_ns.init.config import MaskConfig, MergeConfig, TriangulationConfig, VelocityConfig, VelocityInitConfig
from sharptime_ns.init.driver import cache_file, compute_geometry, velocity_aware_init
from sharptime_ns.init.flow_masks import FlowMasker, flow_mask
from sharptime_ns.init.images import ImageCache
from sharptime_ns.init.inputs import MultiViewFrames, VelocityInitWarning
from sharptime_ns.init.merge import cap_indices, voxel_downsample
from sharptime_ns.init.points import InitPoints
from sharptime_ns.init.split import sample_mask
from sharptime_ns.init.triangulation import rig_pairs, triangulate_frame
from sharptime_ns.init.user_masks import UserMasks
from sharptime_ns.model import SharpTimeModelConfig
from sharptime_ns.temporal import motion_factor
from splat4d.geometry import apply_transform, project


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> Synthetic:
    return render_synthetic(tmp_path_factory.mktemp("sharptime_init_scene"))


def quiet(**kwargs) -> VelocityInitConfig:
    """No progress bar and, unless asked for, no background shell (its points lie on no GT surface)."""
    return VelocityInitConfig(**{"show_progress": False, "merge": MergeConfig(background_points=0), **kwargs})


@pytest.fixture(scope="module")
def result(synthetic) -> Tuple[InitPoints, float]:
    """The default init (normalized time), computed once (and cached in the data dir)."""
    start = time.perf_counter()
    pts = velocity_aware_init(synthetic.frames, quiet())
    assert pts is not None
    return pts, time.perf_counter() - start


# ----- pieces -----


def test_triangulate_frame_reprojects_and_lies_on_gt_surfaces(synthetic, tmp_path):
    images = [read_rgb(p) for p in synthetic.frames.image_paths[2]]
    pts = triangulate_frame(
        images, synthetic.frames.Ks, synthetic.frames.w2c, tmp_path / "work", quiet().triangulation, seed=0
    )
    assert pts.num_points > 100
    point_of_obs = np.repeat(np.arange(pts.num_points), np.diff(pts.track_offsets))
    assert np.all(np.diff(pts.track_offsets) >= 2)
    err, rel = [], []
    for c in range(NUM_CAMERAS):
        sel = pts.obs_cam == c
        uv, z = project(apply_transform(synthetic.frames.w2c[c], pts.xyz[point_of_obs[sel]]), synthetic.frames.Ks[c])
        err.append(np.linalg.norm(uv - pts.obs_xy[sel], axis=1))
        # depth of the observed surface at the keypoint
        ix, iy = np.floor(pts.obs_xy[sel]).astype(int).T
        rel.append(np.abs(z - synthetic.gt[2, c].depth[iy, ix]) / z)
    err, rel = np.concatenate(err), np.concatenate(rel)
    assert err.mean() < 0.5 and np.percentile(err, 95) < 1.0 and err.max() < 2.5  # pixels
    assert np.median(rel) < 0.01 and np.mean(rel < 0.03) > 0.8
    assert pts.descriptors.shape == (pts.num_points, 128)
    np.testing.assert_allclose(np.linalg.norm(pts.descriptors, axis=1), 1.0, atol=1e-4)


@pytest.mark.parametrize("method,min_iou,min_recall", [("dis", 0.5, 0.85), ("farneback", 0.35, 0.85)])
def test_flow_masks_cover_moving_objects(synthetic, method, min_iou, min_recall):
    config = quiet(masks=MaskConfig(flow_method=method)).masks
    masker = FlowMasker(config)
    cache = ImageCache(synthetic.frames, config.flow_max_side)
    iou, recall = [], []
    for f in range(NUM_FRAMES):
        for c in range(NUM_CAMERAS):
            mask = flow_mask(cache, masker, f, c, NUM_FRAMES, W)
            gt = synthetic.gt[f, c].dynamic_mask
            iou.append((mask & gt).sum() / max((mask | gt).sum(), 1))
            recall.append((mask & gt).sum() / max(gt.sum(), 1))
    assert np.mean(iou) > min_iou and np.mean(recall) > min_recall


def test_user_mask_lookup_and_sampling(tmp_path):
    (tmp_path / "masks" / "camA").mkdir(parents=True)
    cv2.imwrite(str(tmp_path / "masks" / "camA" / "000012.png"), np.full((6, 8), 255, np.uint8))
    m = np.zeros((6, 8), np.uint8)
    m[:, 4:] = 255
    cv2.imwrite(str(tmp_path / "masks" / "camA" / "3.png"), m)
    masks = UserMasks(tmp_path / "masks", ["camA", "camB"])
    assert masks.load(0, 0, Path("images/camA/000012.jpg")).all()  # by image stem
    by_index = masks.load(0, 3, Path("images/camA/frame_x.jpg"))  # by frame index
    assert by_index is not None and by_index[:, 4:].all() and not by_index[:, :4].any()
    assert masks.load(1, 0, Path("images/camB/000012.jpg")) is None  # missing → flow fallback
    assert masks.covers(0, [Path("images/camA/000012.jpg"), Path("images/camA/x.jpg")]) is False  # frame 1: none
    assert masks.covers(0, [Path("images/camA/000012.jpg")] * 4)  # frames 0-3: by stem (and frame 3 by index)
    assert not masks.covers(1, [Path("images/camB/000012.jpg")])
    # a 6×8 mask sampled with pixel coordinates of a 60×80 image; outside / NaN → False
    xy = np.array([[10.0, 10.0], [70.0, 50.0], [-1.0, 5.0], [np.nan, 1.0]])
    assert sample_mask(by_index, xy, 80, 60).tolist() == [False, True, False, False]


def test_voxel_downsample_and_cap():
    xyz = np.array([[0.01, 0.01, 0.01], [0.02, 0.03, 0.04], [1.0, 1.0, 1.0]])
    rgb = np.array([[0, 0, 0], [100, 200, 50], [7, 7, 7]], np.uint8)
    p, c = voxel_downsample(xyz, rgb, 0.1)
    np.testing.assert_allclose(p, [[0.015, 0.02, 0.025], [1.0, 1.0, 1.0]])
    assert c.tolist() == [[50, 100, 25], [7, 7, 7]]
    is_dyn = np.arange(1000) % 4 == 0
    keep = cap_indices(is_dyn, 100, seed=0)
    assert len(keep) == 100 and is_dyn[keep].sum() == 25 and len(np.unique(keep)) == 100
    assert cap_indices(is_dyn, 5000, seed=0) is None


# ----- the whole initialization -----


def test_points_lie_on_gt_surfaces(synthetic, result):
    pts, seconds = result
    n = len(pts)
    assert 200 < n <= MergeConfig().max_points
    assert pts.means.shape == (n, 3) and pts.means.dtype == np.float32
    assert pts.colors.shape == (n, 3) and pts.colors.dtype == np.uint8
    assert pts.velocities.shape == (n, 3) and pts.velocities.dtype == np.float32
    for a in (pts.times, pts.tscales, pts.radii):
        assert a.shape == (n,) and a.dtype == np.float32
    assert pts.is_dynamic.dtype == bool and 0 < pts.is_dynamic.sum() < n
    res, _, _ = gt_labels(synthetic, pts)
    assert np.median(res) < 0.01 and np.mean(res < 0.03) > 0.8
    assert seconds < 30


def test_background_shell_adds_far_static_points(synthetic, result):
    base, _ = result
    shell = velocity_aware_init(synthetic.frames, quiet(merge=MergeConfig(background_points=2000)))
    centres = np.stack([cam.center for cam in synthetic.cams])
    far = np.linalg.norm(shell.means - centres.mean(axis=0), axis=1) > 20 * np.linalg.norm(centres, axis=1).max()
    assert 50 < far.sum() == len(shell) - len(base)
    assert not shell.is_dynamic[far].any() and (shell.velocities[far] == 0).all()
    assert np.allclose(shell.times[far], base.times[~base.is_dynamic][0])
    assert (shell.means[far, 2] > 0).all()  # above the horizon: the scene is z-up


def test_static_dynamic_split_agrees_with_gt(synthetic, result):
    pts, _ = result
    accuracy, dyn_precision, static_precision = split_accuracy(synthetic, pts)
    assert accuracy > 0.85 and dyn_precision > 0.9 and static_precision > 0.8


def test_dynamic_velocities_match_gt_motion(synthetic, result):
    pts, _ = result
    _, lab, frames = gt_labels(synthetic, pts)
    measured = measured_velocity(pts)
    idx = np.flatnonzero(pts.is_dynamic & (lab >= 0))
    assert len(idx) > 100
    gt = np.stack([gt_velocity(synthetic, pts.means[i].astype(np.float64), lab[i], frames[i]) for i in idx])
    err = np.linalg.norm(measured[idx] - gt, axis=1)
    speed = np.linalg.norm(gt, axis=1)
    cos = np.sum(measured[idx] * gt, axis=1) / np.maximum(np.linalg.norm(measured[idx], axis=1) * speed, 1e-12)
    assert np.median(err / speed) < 0.35
    assert np.mean(cos > 0.8) > 0.7
    # far better than "no motion": the stored velocities carry the motion
    assert np.median(err) < 0.4 * np.median(speed)


def test_temporal_parameters_and_motion_factor(synthetic, result):
    lifespan, _ = result  # the default: the lifespan in r, half the sequence (static) or half a frame interval
    np.testing.assert_allclose(lifespan.radii[~lifespan.is_dynamic], 0.5)
    np.testing.assert_allclose(lifespan.radii[lifespan.is_dynamic], 0.5 / (NUM_FRAMES - 1), rtol=1e-6)
    paper = velocity_aware_init(synthetic.frames, quiet(dynamic_radius_frames=1.0))  # the paper's three frames
    np.testing.assert_allclose(paper.radii[paper.is_dynamic], 1.0 / (NUM_FRAMES - 1), rtol=1e-6)
    np.testing.assert_array_equal(paper.means, lifespan.means)  # from the same cached geometry
    pts = velocity_aware_init(synthetic.frames, quiet(radius_init="tiny"))  # from the cache
    dyn, sta = pts.is_dynamic, ~pts.is_dynamic
    frame_times = np.linspace(0, 1, NUM_FRAMES)
    # static: v = 0, T = middle of the sequence, σt = 3 × the sequence length, r ≈ 1e-6
    assert np.all(pts.velocities[sta] == 0)
    np.testing.assert_allclose(pts.times[sta], 0.5)
    np.testing.assert_allclose(pts.tscales[sta], 3.0)
    np.testing.assert_allclose(pts.radii, 1e-6)
    # dynamic: T = its frame's time, σt = one frame interval
    assert np.abs(pts.times[dyn, None] - frame_times[None]).min(axis=1).max() < 1e-6
    np.testing.assert_allclose(pts.tscales[dyn], 1.0 / (NUM_FRAMES - 1), rtol=1e-6)
    # stored v = measured × f; in normalized time f(0.2, 1e-6) = 2 (dynamic), f(3, 1e-6) = 10 (static)
    f = motion_factor(
        torch.tensor(pts.tscales[dyn], dtype=torch.float64), torch.tensor(pts.radii[dyn], dtype=torch.float64)
    )
    np.testing.assert_allclose(f.numpy(), 2.0)
    assert np.abs(pts.velocities[dyn]).max() > 0


def test_the_model_converts_the_init_to_its_time_unit(synthetic, result, monkeypatch):
    """The init is in normalized time; the model (in frames here) scales T, σt and r and re-derives
    the stored v with its own f."""
    monkeypatch.setattr(frames_mod, "triangulate_frame", _must_not_triangulate)  # served from the cache
    pts = velocity_aware_init(synthetic.frames, quiet(radius_init="tiny"))
    init = {k: v for k, v in asdict(pts).items() if k not in ("means", "colors")}
    model = SharpTimeModelConfig(time_unit="frames", num_random=10, lpips_loss_weight=0.0).setup(
        scene_box=SceneBox(torch.tensor([[-1.0, -1, -1], [1, 1, 1]])),
        num_train_data=1,
        metadata={"num_frames": NUM_FRAMES},
        device="cpu",
    )
    velocities, times, tscales, radii = (x.numpy() for x in model.init_in_time_unit(init))
    num_frames_unit = float(NUM_FRAMES - 1)
    np.testing.assert_allclose(times[:, 0], pts.times * num_frames_unit, atol=1e-5)
    np.testing.assert_allclose(tscales[:, 0], pts.tscales * num_frames_unit, rtol=1e-6)
    np.testing.assert_allclose(radii[:, 0], pts.radii * num_frames_unit, rtol=1e-6)
    dyn = pts.is_dynamic
    np.testing.assert_allclose(tscales[dyn, 0], 1.0, rtol=1e-6)  # one frame
    # stored v = measured × f with f(1 frame, r) = 1 + (1 + r)² in frames (vs f = 2 in normalized time)
    measured_per_frame = pts.velocities[dyn] / 2.0 / num_frames_unit
    f_frames = 1.0 + (1.0 + radii[dyn, 0:1]) ** 2
    np.testing.assert_allclose(velocities[dyn], measured_per_frame * f_frames, rtol=1e-4, atol=1e-6)


def _must_not_triangulate(*args, **kwargs):
    raise AssertionError("triangulation ran although the cache should have been used")


def test_cache_reused_and_invalidated(synthetic, result, monkeypatch):
    pts, _ = result
    path = cache_file(synthetic.frames, quiet())
    assert path.is_file() and path.parent == synthetic.frames.data_dir / ".splat4d_cache"
    assert [p.name for p in path.parent.iterdir() if p.suffix == ".tmp"] == []  # atomic write, no leftovers
    monkeypatch.setattr(frames_mod, "triangulate_frame", _must_not_triangulate)
    again = velocity_aware_init(synthetic.frames, quiet())
    for name in ("means", "colors", "velocities", "times", "tscales", "radii", "is_dynamic"):
        np.testing.assert_array_equal(getattr(again, name), getattr(pts, name))
    # temporal initial values are applied after the cache: no recomputation either
    longer = velocity_aware_init(synthetic.frames, quiet(dynamic_lifespan_frames=5.0))
    np.testing.assert_allclose(longer.tscales[longer.is_dynamic], 1.0)
    # a geometry setting changes the key: recomputed
    assert cache_file(synthetic.frames, quiet(masks=MaskConfig(flow_threshold=2.0))) != path
    with pytest.raises(AssertionError, match="cache should have been used"):
        velocity_aware_init(synthetic.frames, quiet(masks=MaskConfig(flow_threshold=2.0)))
    # an unreadable cache file is recomputed, not trusted
    original = path.read_bytes()
    path.write_bytes(b"not a cache entry")
    with pytest.raises(AssertionError, match="cache should have been used"):
        velocity_aware_init(synthetic.frames, quiet())
    path.write_bytes(original)
    # use_cache=False never reads it
    with pytest.raises(AssertionError, match="cache should have been used"):
        velocity_aware_init(synthetic.frames, quiet(use_cache=False))


def test_user_masks_are_used(synthetic, result, tmp_path):
    pts_flow, _ = result
    frames = synthetic.frames_in(tmp_path)
    # masks/<camera>/<frame>.png named after the images' stems: here the exact GT masks
    for f in range(NUM_FRAMES):
        for c, name in enumerate(frames.camera_names):
            p = tmp_path / "masks" / name / f"{Path(frames.image_paths[f][c]).stem}.png"
            p.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(p), synthetic.gt[f, c].dynamic_mask.astype(np.uint8) * 255)
    pts = velocity_aware_init(frames, quiet())
    # every camera covered by the user's masks: no plate is computed for the change masks
    assert frames_mod.FrameWorker(frames, quiet(), tmp_path / "work", 0).changes.plates == {}
    accuracy, dyn_precision, _ = split_accuracy(synthetic, pts)
    assert accuracy > 0.95 and dyn_precision > 0.95
    assert accuracy > split_accuracy(synthetic, pts_flow)[0]
    # all-black user masks: nothing is dynamic (the masks, not the flow, decide)
    for p in (tmp_path / "masks").rglob("*.png"):
        cv2.imwrite(str(p), np.zeros((H, W), np.uint8))
    none_dynamic = velocity_aware_init(frames, quiet())
    assert none_dynamic is not None and not none_dynamic.is_dynamic.any()
    assert np.all(none_dynamic.velocities == 0)
    # use_user_masks=False ignores them
    assert cache_file(frames, quiet(masks=MaskConfig(use_user_masks=False))) != cache_file(frames, quiet())


def test_frame_stride(synthetic, tmp_path):
    assert frames_mod.triangulated_frames(6, 2) == [0, 2, 4, 5]
    assert frames_mod.triangulated_frames(5, 2) == [0, 2, 4]
    pts = velocity_aware_init(synthetic.frames_in(tmp_path), quiet(triangulation=TriangulationConfig(frame_stride=3)))
    assert pts is not None and pts.is_dynamic.any()
    # dynamic points only at the triangulated frames 0, 3, 5; σt = the median interval (2.5 frames)
    in_frames = float(NUM_FRAMES - 1)
    assert set(np.round(pts.times[pts.is_dynamic] * in_frames).astype(int).tolist()) <= {0, 3, 5}
    np.testing.assert_allclose(pts.tscales[pts.is_dynamic] * in_frames, 2.5, rtol=1e-6)
    np.testing.assert_allclose(pts.tscales[~pts.is_dynamic] * in_frames, 15.0, rtol=1e-6)


def test_rig_pairs_match_nearest_cameras(synthetic):
    w2c = synthetic.frames.w2c  # six cameras along an arc, in arc order
    assert rig_pairs(w2c, 0) == rig_pairs(w2c, 5) == [(i, j) for i in range(6) for j in range(i + 1, 6)]
    assert rig_pairs(w2c, 1) == [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5)]
    # two nearest: both arc neighbours inside; the end cameras reach two along the arc
    assert rig_pairs(w2c, 2) == [(0, 1), (0, 2), (1, 2), (2, 3), (3, 4), (3, 5), (4, 5)]


def test_frame_stride_defaults_to_a_cap_on_triangulated_frames():
    assert frames_mod.frame_stride(6, TriangulationConfig()) == 1
    assert frames_mod.frame_stride(300, TriangulationConfig()) == 3
    assert len(frames_mod.triangulated_frames(300, 3)) == 101
    assert frames_mod.frame_stride(300, TriangulationConfig(frame_stride=2)) == 2
    assert frames_mod.frame_stride(300, TriangulationConfig(max_triangulated_frames=50)) == 6


def test_frame_workers_give_the_in_process_result(synthetic, tmp_path):
    """Frames processed by forked workers: the same geometry as in this process, with per-stage timings."""
    frames = synthetic.frames_in(tmp_path)
    parallel = compute_geometry(frames, quiet(num_workers=2))
    serial = compute_geometry(frames, quiet(num_workers=1))
    assert parallel.stats["frame_workers"] == 2 and serial.stats["frame_workers"] == 1
    for name in ("means", "colors", "velocities", "times", "is_dynamic"):
        np.testing.assert_array_equal(getattr(parallel, name), getattr(serial, name))
    stages = ("images", "masks", "features", "matching", "triangulation", "split", "velocities", "background")
    assert all(parallel.stats[f"seconds_{stage}"] > 0 for stage in stages)
    assert frames_mod.num_frame_workers(quiet(num_workers=3), num_jobs=2) == 2


def test_too_few_points_returns_none_with_warning(synthetic, result, tmp_path, monkeypatch):
    monkeypatch.setattr(frames_mod, "triangulate_frame", _must_not_triangulate)
    with pytest.warns(VelocityInitWarning, match="falling back to random initialization"):
        assert velocity_aware_init(synthetic.frames, quiet(min_points=10**9)) is None
    monkeypatch.undo()
    # textureless images: nothing to triangulate at all
    paths = []
    for f in range(2):
        row = []
        for c in range(3):
            p = tmp_path / "images" / f"c{c}" / f"{f}.png"
            p.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(p), np.full((H, W, 3), 128, np.uint8))
            row.append(p)
        paths.append(row)
    blank = MultiViewFrames(
        image_paths=paths,
        Ks=synthetic.frames.Ks[:3],
        w2c=synthetic.frames.w2c[:3],
        times=np.array([0.0, 1.0]),
        camera_names=["c0", "c1", "c2"],
        data_dir=tmp_path,
    )
    with pytest.warns(VelocityInitWarning, match="only 0 points"):
        assert velocity_aware_init(blank, quiet()) is None


def test_input_validation(synthetic, tmp_path):
    frames = synthetic.frames_in(tmp_path)
    with pytest.raises(ValueError, match="strictly increasing"):
        velocity_aware_init(replace(frames, times=frames.times[::-1].copy()), quiet())
    bad_K = frames.Ks.copy()
    bad_K[:, :2, 2] *= 4  # intrinsics of 4× larger images
    with pytest.raises(ValueError, match="principal point"):
        velocity_aware_init(replace(frames, Ks=bad_K), quiet(use_cache=False))


def test_config_fields_are_documented():
    import ast
    import inspect

    for config in (VelocityInitConfig, MaskConfig, TriangulationConfig, VelocityConfig, MergeConfig):
        body = ast.parse(inspect.getsource(config)).body[0].body
        for i, node in enumerate(body):
            if isinstance(node, ast.AnnAssign):
                nxt = body[i + 1] if i + 1 < len(body) else None
                assert isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant), node.target.id


def test_freetimegs_init_keeps_every_point_at_its_frame(synthetic, result):
    """masks.static_split False (FreeTimeGS's init): no static points; every triangulated point keeps
    its frame's time and gets a velocity, about 0 on the static surfaces that most points lie on."""
    split, _ = result
    no_split = quiet(masks=MaskConfig(static_split=False))
    pts = velocity_aware_init(synthetic.frames, no_split)
    assert frames_mod.FrameWorker(synthetic.frames, no_split, Path("unused"), 0).changes.plates == {}  # no masks
    assert pts.is_dynamic.all()  # no background shell in quiet(): it would be the only static points
    frame_times = np.linspace(0, 1, NUM_FRAMES)
    assert np.abs(pts.times[:, None] - frame_times[None]).min(axis=1).max() < 1e-6
    assert len(np.unique(np.round(pts.times * (NUM_FRAMES - 1)))) == NUM_FRAMES
    assert len(pts.means) > split.is_dynamic.sum() + (~split.is_dynamic).sum() // 2  # static ones not merged
    np.testing.assert_allclose(pts.tscales, 1.0 / (NUM_FRAMES - 1), rtol=1e-6)
    speed = np.linalg.norm(pts.velocities, axis=1)
    moving = np.linalg.norm(split.velocities[split.is_dynamic], axis=1)
    assert np.median(speed) < 0.2 * np.median(moving)
