"""``--depth-model`` pieces with known answers: loading a (tiny, built here) Depth Anything model
through the product's loader, the message when weights are missing, the robust scale/shift fit of
relative disparity to SfM points, and pose interpolation between registered frames."""

import huggingface_hub.constants
import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation
from tiny_depth_anything import save_tiny_model, tiny_processor

from dataparsers.iphone.cameras import w2c_matrix
from dataparsers.iphone.depth_alignment import (
    AlignmentSettings,
    DepthAlignmentError,
    align_disparity,
    fit_scale_shift,
)
from dataparsers.iphone.depth_model import DepthModelError, load_depth_model, predict_disparity
from dataparsers.iphone.pose_interpolation import interpolate_poses
from dataparsers.iphone.video_sfm import VideoSfm


def test_tiny_model_loads_through_the_product_path(tmp_path):
    reference = save_tiny_model(tmp_path / "tiny", seed=3)
    model, processor = load_depth_model(str(tmp_path / "tiny"))
    frames = [np.random.default_rng(k).integers(0, 256, (45, 61, 3), dtype=np.uint8) for k in range(2)]
    predicted = predict_disparity(model, processor, frames)
    assert predicted.shape == (2, 45, 61) and predicted.dtype == np.float32
    # the saved weights were loaded (not re-initialised): the model built in memory agrees
    pixels = tiny_processor()(images=frames[1], return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        expected = reference(pixel_values=pixels).predicted_depth[:, None]
    expected = torch.nn.functional.interpolate(expected, size=(45, 61), mode="bicubic", align_corners=False)
    np.testing.assert_allclose(predicted[1], expected[0, 0].numpy(), rtol=1e-4, atol=1e-5)


def test_repository_id_found_in_the_hugging_face_cache(tmp_path, monkeypatch):
    """A repository id is loaded from the cache layout ``hf download`` (without --local-dir) leaves."""
    repo = tmp_path / "hub" / "models--splat4d-tests--tiny"
    save_tiny_model(repo / "snapshots" / "0123abc")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0123abc")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.chdir(tmp_path)
    model, _ = load_depth_model("splat4d-tests/tiny")
    assert model.config.model_type == "depth_anything"


def test_missing_weights_name_the_model_where_and_how_to_fetch(tmp_path, monkeypatch):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DepthModelError) as err:
        load_depth_model("splat4d-tests/no-such-depth-model")
    message = str(err.value)
    assert "'splat4d-tests/no-such-depth-model' is not on this machine" in message
    assert f"no folder {tmp_path / 'splat4d-tests/no-such-depth-model'} and no repository" in message
    assert f"in the Hugging Face cache {tmp_path / 'hub'}" in message
    assert "hf download splat4d-tests/no-such-depth-model --local-dir models/no-such-depth-model" in message

    (tmp_path / "models").mkdir()  # a path into an existing folder: fetch the default model there
    with pytest.raises(DepthModelError, match=r"hf download depth-anything/Depth-Anything-V2-Small-hf "):
        load_depth_model("models/missing")
    (tmp_path / "models" / "empty").mkdir()
    with pytest.raises(DepthModelError, match=r"empty: has no config.json, so it is not a downloaded model folder"):
        load_depth_model("models/empty")


def test_metric_model_is_refused(tmp_path):
    save_tiny_model(tmp_path / "metric", depth_estimation_type="metric")
    with pytest.raises(DepthModelError, match="estimating metric; a relative Depth Anything model is needed"):
        load_depth_model(str(tmp_path / "metric"))


def test_scale_and_shift_recovered_despite_outliers():
    rng = np.random.default_rng(0)
    predicted = rng.uniform(0.5, 3.0, 400)
    target = 0.37 * predicted + 0.05
    outliers = rng.random(400) < 0.3
    target[outliers] *= rng.uniform(1.5, 3.0, outliers.sum())  # moving things, bad matches
    fit = fit_scale_shift(predicted, target, AlignmentSettings())
    assert fit.scale == pytest.approx(0.37, rel=1e-9) and fit.shift == pytest.approx(0.05, rel=1e-8)
    np.testing.assert_array_equal(fit.inliers, ~outliers)


def test_alignment_refuses_too_few_or_contradicting_points():
    with pytest.raises(DepthAlignmentError, match="5 SfM points, at least 20 are needed"):
        fit_scale_shift(np.arange(1.0, 6.0), np.arange(1.0, 6.0), AlignmentSettings())
    predicted = np.linspace(1.0, 2.0, 50)
    with pytest.raises(DepthAlignmentError, match="agree with the predicted disparity"):
        fit_scale_shift(predicted, 3.0 - predicted, AlignmentSettings())  # disparity falling as it should rise


def plane_sfm(width=64, height=48):
    """A camera 2 units in front of a tilted plane, SfM points on it seen by frames 0 and 2 (frame
    1 is interpolated halfway, a pure sideways move): z-depth maps, relative disparity maps."""
    K = np.array([[50.0, 0.0, width / 2], [0.0, 50.0, height / 2], [0.0, 0.0, 1.0]])
    centres = [np.array([x, 0.0, 0.0]) for x in (-0.1, 0.0, 0.1)]
    w2c = np.stack([w2c_matrix(np.eye(3), c) for c in centres])
    normal, offset = np.array([0.0, 0.3, 1.0]), 2.0  # plane: normal · X = offset

    def depth_map(centre):
        v, u = np.mgrid[0:height, 0:width] + 0.5
        rays = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones_like(u)], axis=-1)
        return (offset - normal @ centre) / (rays @ normal)

    rng = np.random.default_rng(1)
    uv = rng.uniform([2, 2], [width - 2, height - 2], (60, 2))
    rays = np.concatenate([(uv - K[:2, 2]) / 50.0, np.ones((60, 1))], axis=1)
    points = centres[0] + rays * ((offset - normal @ centres[0]) / (rays @ normal))[:, None]
    in_frame_2 = points @ w2c[2][:3, :3].T + w2c[2][:3, 3]
    obs_uv = np.concatenate([uv, in_frame_2[:, :2] / in_frame_2[:, 2:] * 50.0 + K[:2, 2]])
    sfm = VideoSfm(
        w2c, K, np.zeros(5), np.array([True, False, True]), points,
        np.repeat([0, 2], 60), np.tile(np.arange(60), 2), obs_uv,
    )  # fmt: skip
    return sfm, [depth_map(c) for c in centres]


@pytest.mark.parametrize("frame", [0, 1])  # registered; interpolated (its neighbours' points, reprojected)
def test_relative_disparity_aligned_to_the_sfm_points(frame):
    sfm, depths = plane_sfm()
    relative = (1.0 / depths[frame] - 0.02) / 4.0  # the model's disparity: unknown scale and shift
    aligned, fit = align_disparity(relative, sfm, frame, AlignmentSettings())
    assert fit.scale == pytest.approx(4.0, rel=1e-3) and fit.shift == pytest.approx(0.02, abs=1e-4)
    np.testing.assert_allclose(aligned, 1.0 / depths[frame], rtol=1e-3)


def test_poses_interpolated_by_slerp_and_linear_centres():
    rotations = Rotation.from_euler("z", [[0.0], [40.0]], degrees=True).as_matrix()
    known = np.stack([w2c_matrix(rotations[0], np.zeros(3)), w2c_matrix(rotations[1], np.array([2.0, 0.0, 0.0]))])
    poses = interpolate_poses(np.array([10.0, 14.0]), known, np.array([10.0, 11.0, 14.0]))
    np.testing.assert_allclose(poses[[0, 2]], known, atol=1e-12)
    np.testing.assert_allclose(poses[1][:3, :3], Rotation.from_euler("z", 10.0, degrees=True).as_matrix(), atol=1e-12)
    np.testing.assert_allclose(-poses[1][:3, :3].T @ poses[1][:3, 3], [0.5, 0.0, 0.0], atol=1e-12)
    with pytest.raises(ValueError, match=r"times \[15.0\] lie outside the known poses' span \[10.0, 14.0\]"):
        interpolate_poses(np.array([10.0, 14.0]), known, np.array([15.0]))
