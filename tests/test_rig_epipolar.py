"""The epipolar sync refinement (dataparsers/rig/epipolar.py) on exact projections of moving
3D points into two known cameras: the shift between their clocks to a hundredth of a frame,
mismatched tracks ignored, and no answer where points move only along the epipolar lines."""

import cv2
import numpy as np
import pytest

from dataparsers.easyvolcap_calibration import Calibration
from dataparsers.rig.epipolar import fundamental_matrix, pair_delay, undistorted_pixels
from dataparsers.rig.sync import PairLag, least_squares_errors, least_squares_shifts
from dataparsers.synthetic.rig import RigConfig, camera_rig

FPS = 30.0


def cameras():
    rig = camera_rig(RigConfig(num_cameras=6, width=160, height=120))
    return [Calibration(c.K, np.zeros(5), c.w2c, 160, 120) for c in (rig[0], rig[3])]


def positions(seconds: np.ndarray, starts: np.ndarray, velocities: np.ndarray) -> np.ndarray:
    """[M, T, 3] points moving with varying speed (a stop-and-go tempo) at world ``seconds``."""
    tempo = seconds + 0.08 * np.sin(2 * np.pi * 2.3 * seconds)
    return starts[:, None] + velocities[:, None] * tempo[..., None]


def project(calib: Calibration, xyz: np.ndarray) -> np.ndarray:
    """OpenCV pixel coordinates (pixel centres at integers), as a tracker reports them."""
    cam = xyz @ calib.w2c[:3, :3].T + calib.w2c[:3, 3]
    uv = cam @ calib.K.T
    return uv[..., :2] / uv[..., 2:] - 0.5


def tracks(shift_frames: float, count: int = 30, seed: int = 0, common=(0.0, 0.0, 0.0)):
    """Exact tracks of ``count`` points moving in random directions (plus a ``common`` velocity)."""
    rng = np.random.default_rng(seed)
    starts = rng.uniform(-0.5, 0.5, (count, 3)) + np.array([0.0, 0.0, 0.4])
    velocities = rng.normal(size=(count, 3)) * (0.6 if not any(common) else 0.1) + np.array(common)
    a_frames = np.arange(20, 29)
    b_first = int(np.round(20 - shift_frames)) - 1
    b_frames = np.arange(b_first, b_first + 11)
    cam_a, cam_b = cameras()
    a = project(cam_a, positions(np.broadcast_to(a_frames / FPS, (count, 9)), starts, velocities))
    b = project(cam_b, positions(np.broadcast_to(b_frames / FPS + shift_frames / FPS, (count, 11)), starts, velocities))
    firsts = (np.full(count, a_frames[0]), np.full(count, b_frames[0]))
    return (undistorted_pixels(a, cam_a), undistorted_pixels(b, cam_b)), firsts, fundamental_matrix(cam_a, cam_b)


@pytest.mark.parametrize("shift", [-2.63, 0.0, 0.41, 2.95])
def test_pair_delay_recovers_a_known_shift(shift):
    (a, b), (first_a, first_b), F = tracks(shift)
    for coarse_error in (-0.45, 0.3):
        coarse = (shift + coarse_error) / FPS
        delay = pair_delay(a, first_a, b, first_b, F, FPS, coarse)
        assert abs(delay.shift * FPS - shift) < 0.01, (delay, shift)
        assert delay.tracks == len(a) and delay.std_frames < 0.01
        assert abs(delay.correction + coarse_error) < 0.01


def test_pair_delay_ignores_mismatched_tracks():
    (a, b), (first_a, first_b), F = tracks(1.3, count=40, seed=1)
    b = b.copy()
    b[:10] = b[np.random.default_rng(2).permutation(10) + 10]  # a quarter matched to the wrong point
    delay = pair_delay(a, first_a, b, first_b, F, FPS, 1.0 / FPS)
    assert abs(delay.shift * FPS - 1.3) < 0.02 and delay.tracks >= 28


def test_points_moving_along_epipolar_lines_do_not_determine_the_shift():
    """Points moving straight away from camera A stay on one epipolar line in B at every time."""
    cam_a, cam_b = cameras()
    centre_a = -cam_a.w2c[:3, :3].T @ cam_a.w2c[:3, 3]
    rng = np.random.default_rng(3)
    starts = rng.uniform(-0.3, 0.3, (20, 3))
    frames = np.arange(20, 29)
    seconds = np.broadcast_to(frames / FPS, (20, 9))
    xyz = positions(seconds, starts, (starts - centre_a) * 0.5)  # along the rays of A
    a = undistorted_pixels(project(cam_a, xyz), cam_a)
    b_frames = np.arange(19, 30)
    b = undistorted_pixels(
        project(cam_b, positions(np.broadcast_to(b_frames / FPS, (20, 11)), starts, (starts - centre_a) * 0.5)), cam_b
    )
    delay = pair_delay(a, np.full(20, 20), b, np.full(20, 19), fundamental_matrix(cam_a, cam_b), FPS, 0.0)
    assert delay is None or delay.std_frames > 1.0


def test_bias_field_absorbs_a_calibration_error():
    """B's calibrated rotation 0.2° off moves every epipolar line by about half a pixel: with the
    points all moving one way the shift is off by a tenth of a frame and more unless the
    residuals are freed of an affine field."""
    (a, b), (first_a, first_b), _ = tracks(0.7, count=60, seed=4, common=(0.8, 0.0, 0.0))  # all one way
    cam_a, cam_b = cameras()
    tilted = cam_b.w2c.copy()
    tilted[:3, :3] = cv2.Rodrigues(np.array([np.deg2rad(0.2), 0.0, 0.0]))[0] @ tilted[:3, :3]
    F = fundamental_matrix(cam_a, Calibration(cam_b.K, np.zeros(5), tilted, 160, 120))
    plain = pair_delay(a, first_a, b, first_b, F, FPS, 0.7 / FPS)
    freed = pair_delay(a, first_a, b, first_b, F, FPS, 0.7 / FPS, bias_field=True)
    assert abs(plain.shift * FPS - 0.7) > 0.05
    assert abs(freed.shift * FPS - 0.7) < 0.01, freed


def test_least_squares_errors_of_chained_pairs():
    pairs = [PairLag(("a", "b"), 0.1, 1 / 0.02), PairLag(("b", "c"), 0.2, 1 / 0.02)]
    errors = least_squares_errors(["a", "b", "c", "d"], pairs, "a")
    assert errors["a"] == pytest.approx(0, abs=1e-6) and errors["b"] == pytest.approx(0.02)
    assert errors["c"] == pytest.approx(0.02 * np.sqrt(2)) and errors["d"] == float("inf")
    assert least_squares_shifts(["a", "b", "c"], pairs, "a") == pytest.approx({"a": 0.0, "b": 0.1, "c": 0.3})
