"""The analytic renderer, the camera rig and the ground truth written beside synthetic scenes."""

import time

import numpy as np
import pytest

from dataparsers.synthetic.ground_truth import load_ground_truth
from dataparsers.synthetic.rig import RigConfig, camera_rig
from dataparsers.synthetic.scene import PinholeCamera, default_scene
from dataparsers.synthetic.writers import SynthesisConfig, write_scene


@pytest.fixture(scope="module")
def scene():
    return default_scene(num_frames=30, fps=30.0, seed=0)


@pytest.fixture(scope="module")
def cams():
    return camera_rig(RigConfig(num_cameras=5, width=96, height=72))


def unproject(cam: PinholeCamera, uv: np.ndarray, depth: np.ndarray) -> np.ndarray:
    """World points at z-depth ``depth`` behind pixels ``uv`` (written from the pinhole model)."""
    x = (uv[:, 0] - cam.K[0, 2]) / cam.K[0, 0]
    y = (uv[:, 1] - cam.K[1, 2]) / cam.K[1, 1]
    p_cam = np.stack([x, y, np.ones_like(x)], axis=1) * depth[:, None]
    c2w = np.linalg.inv(cam.w2c)
    return p_cam @ c2w[:3, :3].T + c2w[:3, 3]


def test_render_outputs_and_speed(scene):
    cam = camera_rig(RigConfig(num_cameras=1, width=160, height=120))[0]
    scene.render(cam, 0.0)
    start = time.perf_counter()
    for frame in range(5):
        out = scene.render(cam, frame * 7.0, supersample=2)
    per_frame = (time.perf_counter() - start) / 5
    assert per_frame < 0.25, f"160×120 supersample 2 took {per_frame:.3f} s"
    assert out.rgb.shape == (120, 160, 3) and out.rgb.dtype == np.float32
    assert 0.0 <= out.rgb.min() and out.rgb.max() <= 1.0
    assert out.depth.shape == (120, 160) and out.depth.dtype == np.float32 and np.isfinite(out.depth).all()
    assert out.object_id.dtype == np.int16 and out.dynamic_mask.dtype == bool
    assert np.array_equal(out.dynamic_mask, out.object_id >= 0)
    assert set(np.unique(out.object_id)) >= {-1, 0, 1}


def test_objects_move_rotate_and_one_blinks(scene):
    p0, p1 = scene.object_pose(0, 0.0), scene.object_pose(0, 29.0)
    assert np.linalg.norm(p1[:3, 3] - p0[:3, 3]) > 1.0  # translates
    assert not np.allclose(p0[:3, :3], p1[:3, :3])  # rotates
    r = scene.object_pose(1, 12.3)[:3, :3]
    np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-12)
    visible = [scene.is_visible(2, f) for f in range(30)]
    assert not visible[0] and any(visible) and not visible[-1]
    # frames are continuous: a fractional frame lies between its neighbours
    mid = scene.object_pose(0, 10.5)[:3, 3]
    np.testing.assert_allclose(
        mid, 0.5 * (scene.object_pose(0, 10)[:3, 3] + scene.object_pose(0, 11)[:3, 3]), atol=1e-9
    )


def test_blinking_object_is_rendered_only_while_visible(scene, cams):
    ids = {f: scene.render(cams[0], f).object_id for f in (0, 15, 29)}
    assert scene.is_visible(2, 15) and (ids[15] == 2).any()
    assert not (ids[0] == 2).any() and not (ids[29] == 2).any()


def test_depth_is_camera_z_of_the_surface(scene, cams):
    """The depth map unprojects onto the analytic sphere surface."""
    cam, frame = cams[0], 4.0
    out = scene.render(cam, frame)
    rows, cols = np.nonzero(out.object_id == 0)
    uv = np.stack([cols + 0.5, rows + 0.5], axis=1)
    points = unproject(cam, uv, out.depth[rows, cols].astype(np.float64))
    radius = scene.objects[0].shape.radius
    dist = np.linalg.norm(points - scene.object_pose(0, frame)[:3, 3], axis=1)
    np.testing.assert_allclose(dist, radius, atol=1e-5)
    np.testing.assert_allclose(points[:, 2].min(), 0.0, atol=0.5)  # the ball rolls on the ground


def test_track_points_follow_the_surface(scene, cams):
    """Surface points tracked to another frame project onto the same object at the tracked depth."""
    cam, f0, f1 = cams[0], 3.0, 9.0
    a = scene.render(cam, f0)
    rows, cols = np.nonzero(a.object_id >= 0)
    uv = np.stack([cols + 0.5, rows + 0.5], axis=1)
    points = unproject(cam, uv, a.depth[rows, cols].astype(np.float64))
    ids = a.object_id[rows, cols].astype(np.int64)
    static_uv = np.array([[5.5, 70.5]])
    static_pt = unproject(cam, static_uv, a.depth[70:71, 5].astype(np.float64))
    tracks = scene.track_points(np.concatenate([points, static_pt]), np.append(ids, -1), f0, np.array([f0, f1]))
    assert tracks.shape == (2, len(points) + 1, 3)
    np.testing.assert_allclose(tracks[0], np.concatenate([points, static_pt]), atol=1e-9)
    np.testing.assert_allclose(tracks[1, -1], static_pt[0])  # static points stay put
    b = scene.render(cam, f1)
    uv1, z1 = cam.project(tracks[1, :-1])
    inside = (uv1[:, 0] >= 0) & (uv1[:, 0] < cam.width) & (uv1[:, 1] >= 0) & (uv1[:, 1] < cam.height)
    px = np.floor(uv1[inside]).astype(int)
    hit_same = b.object_id[px[:, 1], px[:, 0]] == ids[inside]
    visible = hit_same & (np.abs(b.depth[px[:, 1], px[:, 0]] - z1[inside]) < 0.05)
    assert visible.mean() > 0.6  # the rest turned away or became occluded


def test_rig_faces_the_target_and_puts_camera_0_at_the_centre():
    cfg = RigConfig(num_cameras=7, width=64, height=48)
    cams = camera_rig(cfg)
    azimuths = [np.degrees(np.arctan2(c.center[1], c.center[0])) for c in cams]
    assert np.isclose(azimuths[0], -90.0) and np.ptp(azimuths) == pytest.approx(cfg.arc_deg)
    heights = sorted(round(c.center[2], 6) for c in cams)
    assert heights[0] != heights[-1]  # two rings: not coplanar
    for cam in cams:
        uv, z = cam.project(np.array(cfg.target)[None])
        np.testing.assert_allclose(uv[0], [32.0, 24.0], atol=1e-9)
        assert z[0] == pytest.approx(cfg.radius)


def test_distorted_camera_rays_invert_projection(cams):
    cam = PinholeCamera(
        cams[1].K, cams[1].w2c, cams[1].width, cams[1].height, np.array([-0.08, 0.01, 0.001, -0.002, 0.0])
    )
    uv = np.array([[0.5, 0.5], [10.25, 60.75], [95.5, 71.5]])
    origin, dirs = cam.pixel_rays(uv)
    back, z = cam.project(origin + dirs * 3.0)
    np.testing.assert_allclose(back, uv, atol=1e-6)
    np.testing.assert_allclose(z, 3.0)


def test_written_ground_truth_matches_the_scene(tmp_path):
    cfg = SynthesisConfig(num_cameras=3, num_frames=4, width=48, height=36)
    root = write_scene("easyvolcap", tmp_path / "scene", cfg)
    assert not list(tmp_path.glob("*.partial-*"))
    gt = load_ground_truth(root)
    assert (
        gt.format == "easyvolcap"
        and gt.num_frames == 4
        and gt.fps == 30.0
        and list(gt.cameras) == ["cam00", "cam01", "cam02"]
    )
    scene = gt.scene()
    assert gt.object_poses.shape == (4, len(scene.objects), 4, 4) and gt.object_visible.shape == (4, len(scene.objects))
    np.testing.assert_allclose(gt.object_poses[2, 1], scene.object_pose(1, 2))
    arrays = gt.camera_frames("cam01")
    assert arrays["rgb"].shape == (4, 36, 48, 3) and arrays["rgb"].dtype == np.uint8
    again = scene.render(gt.cameras["cam01"], 3.0, cfg.supersample)
    np.testing.assert_array_equal(arrays["depth"][3], again.depth)
    np.testing.assert_array_equal(arrays["dynamic_mask"][3], again.dynamic_mask)
    with pytest.raises(FileExistsError):
        write_scene("easyvolcap", root, cfg)


def test_cli_writes_a_scene(tmp_path, monkeypatch):
    from dataparsers.synthetic import cli

    out = tmp_path / "synth"
    args = ["splat4d-synth", "--format", "selfcap", "--out", str(out), "--num-cameras", "2", "--num-frames", "3"]
    monkeypatch.setattr("sys.argv", args + ["--width", "32", "--height", "24", "--max-sync-offset", "0.01"])
    cli.main()
    assert sorted(p.name for p in (out / "videos").iterdir()) == ["0000.mp4", "0001.mp4"]
    assert (out / "optimized" / "sync.json").is_file() and load_ground_truth(out).fps == 60.0
