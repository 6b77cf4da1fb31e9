"""How ``--poses colmap`` turns a reconstruction of some frames into poses of every frame: the
frames SfM skipped or could not register are interpolated, and too few registered frames or a
registered span short of the video's ends stop the run with a message saying what to do."""

import numpy as np
import pycolmap
import pytest
from scipy.spatial.transform import Rotation

from dataparsers.iphone.cameras import w2c_matrix
from dataparsers.iphone.video_sfm import VideoSfmError, video_poses

SUBSET = np.array([0, 5, 10, 15])  # the frames SfM saw, of 16


def reconstruction(registered_slots):
    """A model with one SIMPLE_RADIAL camera (80×60) and the SfM frames ``registered_slots``
    posed on a line, turning about y by 2° per video frame (no points)."""
    model = pycolmap.Reconstruction()
    camera = pycolmap.Camera(model="SIMPLE_RADIAL", width=80, height=60, params=[70.0, 40.0, 30.0, 0.01], camera_id=1)
    model.add_camera_with_trivial_rig(camera)
    for slot in registered_slots:
        t = SUBSET[slot]
        w2c = w2c_matrix(Rotation.from_euler("y", 2.0 * t, degrees=True).as_matrix(), np.array([0.1 * t, 0.0, 0.0]))
        image = pycolmap.Image(name=f"{slot:05d}.png", camera_id=1, image_id=int(slot) + 1)
        model.add_image_with_trivial_frame(image, pycolmap.Rigid3d(w2c[:3]))
    return model


def test_skipped_and_unregistered_frames_are_interpolated():
    sfm = video_poses(reconstruction([0, 1, 3]), SUBSET, 16, (160, 120), min_registered=0.5)
    assert sfm.registered.tolist() == [t in (0, 5, 15) for t in range(16)]
    for t in range(16):  # the motion is uniform, so interpolation is exact
        expected = w2c_matrix(Rotation.from_euler("y", 2.0 * t, degrees=True).as_matrix(), np.array([0.1 * t, 0, 0]))
        np.testing.assert_allclose(sfm.w2c[t], expected, atol=1e-9)
    np.testing.assert_allclose(sfm.K, [[140.0, 0.0, 80.0], [0.0, 140.0, 60.0], [0.0, 0.0, 1.0]])  # at 160×120
    assert sfm.distortion.tolist() == [0.01, 0.0, 0.0, 0.0, 0.0]


def test_too_few_registered_frames():
    with pytest.raises(VideoSfmError, match=r"registered only 1 of 4 frames \(at least 2 are needed"):
        video_poses(reconstruction([1]), SUBSET, 16, (160, 120), min_registered=0.5)


def test_poses_are_not_extrapolated():
    with pytest.raises(VideoSfmError, match=r"registered used frames 5 to 10 of 0 to 15 only.*keep frames 5 to 10"):
        video_poses(reconstruction([1, 2]), SUBSET, 16, (160, 120), min_registered=0.5)
