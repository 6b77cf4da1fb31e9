"""Neural3DV specifics: the LLFF pose convention, camera ids with gaps, exclusion, frame ranges,
and frame-accurate video decoding."""

import dataclasses
import shutil

import av
import numpy as np
import pytest

from dataparsers.neural3dv import Neural3DVDataParserConfig
from dataparsers.synthetic.ground_truth import load_ground_truth
from dataparsers.synthetic.writers import SynthesisConfig, encode_mp4, write_scene
from dataparsers.video import decode_frames

RAW = dict(orientation_method="none", center_method="none", auto_scale_poses=False)  # no normalization


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    return write_scene(
        "neural3dv",
        tmp_path_factory.mktemp("n3dv") / "scene",
        SynthesisConfig(num_cameras=4, num_frames=6, width=64, height=48),
    )


def original_c2w(outputs, i: int) -> np.ndarray:
    """Camera i's camera-to-world with the documented normalization x' = s·(R x + t) undone."""
    T = outputs.dataparser_transform.double().numpy()
    c2w = outputs.cameras.camera_to_worlds[i].double().numpy()
    rot = T[:, :3].T @ c2w[:, :3]
    centre = T[:, :3].T @ (c2w[:, 3] / outputs.dataparser_scale - T[:, 3])
    return np.concatenate([rot, centre[:, None]], axis=1)


def test_llff_conversion_matches_an_independent_reading(scene):
    """Read poses_bounds.npy from the format's definition and compare with the parser (after
    undoing its normalization) and with the generator's OpenCV cameras."""
    arr = np.load(scene / "poses_bounds.npy")
    gt = load_ground_truth(scene)
    outputs = Neural3DVDataParserConfig(data=scene, test_cameras=("cam00",)).setup().get_dataparser_outputs("train")
    names = outputs.metadata["camera_names"]
    for k, name in enumerate(sorted(gt.cameras)):
        block = arr[k, :15].reshape(3, 5)
        down, right, backwards, centre = block[:, 0], block[:, 1], block[:, 2], block[:, 3]
        height, width, focal = block[:, 4]
        near, far = arr[k, 15:]
        # the generator's camera (OpenCV world->camera): rows of R are right, down, forward
        R = gt.cameras[name].w2c[:3, :3]
        np.testing.assert_allclose(np.stack([right, down, -backwards]), R, atol=1e-9)
        np.testing.assert_allclose(centre, gt.cameras[name].center, atol=1e-9)
        assert (height, width) == (48, 64) and focal == pytest.approx(gt.cameras[name].K[0, 0])
        assert 0 < near < far
        if name == "cam00":
            continue  # held out
        i = names.index(name)
        expected = np.stack([right, -down, backwards, centre], axis=1)  # OpenGL: right, up, backwards
        np.testing.assert_allclose(original_c2w(outputs, i), expected, atol=1e-5)
        sx = float(outputs.cameras.width[i]) / width  # downscale 2 by default
        assert float(outputs.cameras.fx[i]) == pytest.approx(focal * sx)
        assert float(outputs.cameras.fy[i]) == pytest.approx(focal * sx)
        assert float(outputs.cameras.cx[i]) == pytest.approx(width * sx / 2)
        assert float(outputs.cameras.cy[i]) == pytest.approx(height * sx / 2)


def test_hand_written_poses_bounds(tmp_path):
    """A camera at (0, 0, 5) whose LLFF columns are down = −y, right = +x, backwards = +z is
    nerfstudio's identity orientation."""
    frames = [np.full((24, 32, 3), 40 * n, dtype=np.uint8) for n in range(3)]
    rows = []
    for k, centre in enumerate([(0.0, 0.0, 5.0), (1.0, 0.0, 5.0)]):
        encode_mp4(tmp_path / f"cam{k:02d}.mp4", frames, 30.0, 0)
        block = np.array(
            [[0.0, 1.0, 0.0, centre[0], 24.0], [-1.0, 0.0, 0.0, centre[1], 32.0], [0.0, 0.0, 1.0, centre[2], 30.0]]
        )
        rows.append(np.concatenate([block.reshape(-1), [1.0, 10.0]]))
    np.save(tmp_path / "poses_bounds.npy", np.array(rows))
    config = Neural3DVDataParserConfig(data=tmp_path, downscale=1.0, **RAW)
    test = config.setup().get_dataparser_outputs("test")
    np.testing.assert_allclose(test.cameras.camera_to_worlds[0].numpy(), [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 5]])
    assert float(test.cameras.fx[0]) == 30.0 and float(test.cameras.cx[0]) == 16.0 and float(test.cameras.cy[0]) == 12.0
    np.testing.assert_allclose(test.cameras.times[:, 0].numpy(), [0.0, 0.5, 1.0])


def test_camera_ids_with_gaps_and_exclusion(scene, tmp_path):
    root = tmp_path / "gaps"
    shutil.copytree(scene, root)
    (root / "cam02.mp4").unlink()
    arr = np.load(root / "poses_bounds.npy")
    np.save(root / "poses_bounds.npy", np.delete(arr, 2, axis=0))
    gt = load_ground_truth(scene)
    train = Neural3DVDataParserConfig(data=root, **RAW).setup().get_dataparser_outputs("train")
    assert sorted(set(train.metadata["camera_names"])) == ["cam01", "cam03"]
    i = train.metadata["camera_names"].index("cam03")  # the row after the gap belongs to cam03
    centre = train.cameras.camera_to_worlds[i, :, 3].double().numpy()
    np.testing.assert_allclose(centre, gt.cameras["cam03"].center, atol=1e-5)
    excluded = Neural3DVDataParserConfig(data=root, exclude_cameras=("cam01",), **RAW).setup()
    assert set(excluded.get_dataparser_outputs("train").metadata["camera_names"]) == {"cam03"}
    assert set(excluded.get_dataparser_outputs("test").metadata["camera_names"]) == {"cam00"}


def test_frame_range_and_downscale(scene, tmp_path):
    config = Neural3DVDataParserConfig(data=scene, frame_start=2, frame_count=3, downscale=4.0, cache_dir=tmp_path)
    test = config.setup().get_dataparser_outputs("test")
    assert test.metadata["frame_indices"] == [2, 3, 4] and test.metadata["num_frames"] == 3
    np.testing.assert_allclose(test.cameras.times[:, 0].numpy(), [0.0, 0.5, 1.0])
    assert int(test.cameras.width[0]) == 16 and int(test.cameras.height[0]) == 12
    assert all(p.parent.parent == tmp_path for p in test.image_filenames)


def test_decoding_a_range_seeks_to_the_right_frame(tmp_path):
    video = tmp_path / "ramp.mp4"
    encode_mp4(video, [np.full((16, 16, 3), 8 * n, dtype=np.uint8) for n in range(30)], 30.0, 0)  # keyframes every 12
    with av.open(str(video)) as container:
        keyframes = [p.pts for p in container.demux(video=0) if p.is_keyframe]
    assert len(keyframes) >= 2  # so that a start of 14 seeks past the first keyframe
    for start, count in ((14, 3), (0, 2), (28, 5), (12, None)):
        got = list(decode_frames(video, start, count))
        end = 30 if count is None else min(30, start + count)
        assert [i for i, _ in got] == list(range(start, end))
        levels = np.array([frame.mean() for _, frame in got])
        np.testing.assert_allclose(levels, [8 * n for n in range(start, end)], atol=2)  # colour conversion rounding
    assert list(decode_frames(video, 40, 2)) == []


def test_more_frames_requested_than_the_videos_have(scene):
    outputs = (
        dataclasses.replace(Neural3DVDataParserConfig(), data=scene, frame_count=300)
        .setup()
        .get_dataparser_outputs("test")
    )
    assert outputs.metadata["num_frames"] == 6  # all cameras end together: use what there is
