"""The background shell: points on the upper half of the far sphere that project back onto the
pixels whose colour they carry."""

import numpy as np

from dataparsers.synthetic.rig import RigConfig, camera_rig
from sharptime_ns.init.background import background_shell, world_up
from splat4d.geometry import camera_centres


def test_shell_points_lie_on_the_upper_sphere_and_reproject_to_their_pixels():
    cams = camera_rig(RigConfig(num_cameras=3, width=40, height=30))
    Ks = np.stack([c.K for c in cams])
    w2c = np.stack([c.w2c for c in cams])
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (30, 40, 3), dtype=np.uint8) for _ in cams]
    centre = np.array([0.0, 0.0, 0.4])
    assert np.allclose(camera_centres(w2c), [c.center for c in cams])
    assert np.allclose(world_up(w2c), [0, 0, 1])  # the rig is z-up, its cameras tilt down
    radius = 5.0 * np.linalg.norm(camera_centres(w2c) - centre, axis=1).max()

    xyz, rgb = background_shell(images, Ks, w2c, centre, distance=5.0, pixel_step=1.0, max_points=3000)
    assert 100 < len(xyz) < 3000 and xyz.dtype == np.float32 and rgb.dtype == np.uint8
    assert np.allclose(np.linalg.norm(xyz - centre, axis=1), radius, rtol=1e-5)
    assert (xyz[:, 2] > centre[2]).all()  # upper half only

    one_xyz, one_rgb = background_shell(images[1:2], Ks[1:2], w2c[1:2], centre, 5.0, 1.0, 1000)
    uv, depth = cams[1].project(one_xyz)
    assert (depth > 0).all() and len(one_xyz) > 50
    pixels = np.floor(uv).astype(int)
    assert np.array_equal(images[1][pixels[:, 1], pixels[:, 0]], one_rgb)


def test_pixel_step_sets_the_density_below_the_cap():
    cams = camera_rig(RigConfig(num_cameras=1, width=40, height=30))
    args = ([np.zeros((30, 40, 3), np.uint8)], cams[0].K[None], cams[0].w2c[None], np.array([0.0, 0.0, 0.4]), 5.0)
    dense, _ = background_shell(*args, pixel_step=1.0, max_points=10**6)
    sparse, _ = background_shell(*args, pixel_step=4.0, max_points=10**6)
    capped, _ = background_shell(*args, pixel_step=1.0, max_points=75)
    assert 10 < len(sparse) < len(dense) / 10 and len(capped) < 75


def test_up_of_parallel_cameras_is_their_level_up_axis():
    w2c = np.stack([np.eye(4)] * 3)
    w2c[:, 1, :3] = [0.0, -0.9, -0.3]  # tilted, not orthonormal: only the directions matter here
    w2c[:, 1, :3] /= np.linalg.norm(w2c[0, 1, :3])
    assert np.allclose(world_up(w2c), -w2c[0, 1, :3])


def test_no_points_requested():
    xyz, rgb = background_shell([], np.zeros((0, 3, 3)), np.zeros((0, 4, 4)), np.zeros(3), 10.0, 3.0, 100)
    assert xyz.shape == (0, 3) and rgb.shape == (0, 3)
