"""The Neural3DV-like benchmark scene family: transient objects and their events, the forward-facing
rig, fractal textures with natural-image statistics, the ground truth written beside a scene, and
the video metrics computed from it."""

import numpy as np
import pytest

from dataparsers.synthetic.ground_truth import load_ground_truth
from dataparsers.synthetic.textures import fractal_noise
from dataparsers.synthetic.transient_scene import TransientObject, forward_facing_rig, transient_scene
from dataparsers.synthetic.writers import SynthesisConfig, write_scene
from splat4d import video_metrics


@pytest.fixture(scope="module")
def scene():
    return transient_scene(num_frames=30, fps=30.0, seed=3)


def by_name(scene, name: str) -> int:
    return [obj.name for obj in scene.objects].index(name)


def test_events_are_exactly_the_frames_where_a_transient_changes(scene):
    events = scene.transient_events()
    flame, box = by_name(scene, "flame"), by_name(scene, "popping_box")
    flame_obj = scene.objects[flame]
    for f in range(1, 30):
        u, u_prev = scene.normalized_time(f), scene.normalized_time(f - 1)
        changed = (
            scene.is_visible(flame, f) != scene.is_visible(flame, f - 1)
            or scene.is_visible(box, f) != scene.is_visible(box, f - 1)
            or flame_obj.level_at(u) != flame_obj.level_at(u_prev)
        )
        assert (f in events) == changed
    assert len(events) >= 8  # flame jumps, goes out and back, the box pops in and out twice
    box_frames = [f for f in range(30) if scene.is_visible(box, f)]
    assert 0 < len(box_frames) < 20 and np.any(np.diff(box_frames) > 1)  # two separate windows


def test_flame_brightness_jumps_in_the_rendered_images(scene):
    cam = forward_facing_rig(64, 48)[0]
    flame = by_name(scene, "flame")
    obj: TransientObject = scene.objects[flame]
    f0 = next(f for f in scene.transient_events() if scene.is_visible(flame, f) and scene.is_visible(flame, f - 1))
    before, after = scene.render(cam, f0 - 1, supersample=1), scene.render(cam, f0, supersample=1)
    mask = (before.object_id == flame) & (after.object_id == flame)
    assert mask.sum() > 3
    ratio = after.rgb[mask].mean() / before.rgb[mask].mean()
    expected = obj.level_at(scene.normalized_time(f0)) / obj.level_at(scene.normalized_time(f0 - 1))
    assert abs(ratio - expected) < 0.15 * max(expected, 1.0)


def test_forward_facing_rig_has_the_held_out_camera_in_the_centre():
    cams = forward_facing_rig(160, 120)
    assert len(cams) == 21
    centres = np.array([c.center for c in cams])
    np.testing.assert_allclose(centres[0], centres.mean(axis=0), atol=1e-9)
    forward = np.array([c.c2w[:3, 2] for c in cams])
    assert (forward @ forward[0]).min() > np.cos(np.radians(15))  # forward-facing: all within 15°


def test_fractal_texture_has_a_falling_power_spectrum():
    n = 128
    x, y = np.meshgrid(np.arange(n) / n * 4.0, np.arange(n) / n * 4.0)
    img = fractal_noise(np.stack([x.ravel(), y.ravel(), np.zeros(n * n)], axis=1), 1.0).reshape(n, n)
    power = np.abs(np.fft.fft2(img - img.mean())) ** 2
    freq = np.hypot(*np.meshgrid(np.fft.fftfreq(n), np.fft.fftfreq(n)))
    low, high = power[(freq > 0.01) & (freq < 0.04)].mean(), power[(freq > 0.16) & (freq < 0.32)].mean()
    assert low > 100 * high  # natural-image-like: far more energy at coarse scales, not white noise
    assert 0.0 <= img.min() and img.max() <= 1.0 and img.std() > 0.03


def test_written_scene_carries_family_and_events(tmp_path):
    cfg = SynthesisConfig(family="transient", num_cameras=9, num_frames=6, width=40, height=30, supersample=1)
    write_scene("neural3dv", tmp_path / "s", cfg)
    truth = load_ground_truth(tmp_path / "s")
    rebuilt = truth.scene()
    assert truth.family == "transient" and truth.transient_events == rebuilt.transient_events()
    assert len(truth.cameras) == 9 and (tmp_path / "s" / "cam08.mp4").exists()
    with pytest.raises(ValueError, match="odd number of columns"):
        write_scene("neural3dv", tmp_path / "t", SynthesisConfig(family="transient", num_cameras=12))


def test_video_metrics_on_hand_made_videos():
    gt = np.zeros((6, 4, 5, 3))
    pred = gt.copy()
    pred[2, 0, 0] = 0.1  # one wrong dynamic pixel at frame 2
    dynamic = np.zeros((6, 4, 5), bool)
    dynamic[:, 0, 0] = True
    assert abs(video_metrics.masked_psnr(pred, gt, dynamic) - 10 * np.log10(6 / 0.01)) < 1e-9
    assert video_metrics.event_window([0, 5], 6, radius=2) == [0, 1, 2, 3, 4, 5]
    assert video_metrics.event_window([3], 6, radius=1) == [2, 3, 4]
    assert video_metrics.window_psnr(pred, gt, [0, 1]) == 100.0  # clamped MSE floor
    ids = -np.ones((6, 4, 5), int)
    ids[4, 1, 1] = 0
    static = video_metrics.always_static(ids)
    assert not static[1, 1] and static.sum() == 19
    flicker_video = gt.copy()
    flicker_video[::2, 2, 2] = 1.0  # one static pixel alternating 0 / 1: std 0.5
    assert abs(video_metrics.static_flicker(flicker_video, static) - 0.5 * 255 / 19) < 1e-9


def test_event_region_psnr_sees_a_ghost_that_full_frames_hide(scene):
    assert [scene.objects[k].name for k in scene.transient_object_ids()] == ["flame", "popping_box"]
    gt = np.zeros((10, 20, 20, 3))
    ids = -np.ones((10, 20, 20), int)
    ids[:5, 2:4, 2:4] = 1  # a transient object vanishes at frame 5
    pred = gt.copy()
    pred[5, 2:4, 2:4] = 0.5  # the render keeps a ghost for one frame
    region = video_metrics.event_region_psnr(pred, gt, ids, [1], [5], radius=2)
    full = video_metrics.window_psnr(pred, gt, video_metrics.event_window([5], 10))
    # the region is the 4 pixels over frames 3..7: MSE = 0.25 · 4 / 20
    assert abs(region - 10 * np.log10(20 / (0.25 * 4))) < 1e-9 and full > region + 10
