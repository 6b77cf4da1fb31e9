"""``splat4d-preprocess-video`` on a video rendered from a synthetic monocular scene, read back by
the ``iphone`` dataparser and checked against the scene's ground truth."""

import numpy as np
import pytest

from dataparsers.errors import DatasetFormatError
from dataparsers.iphone.cameras import read_camera_json
from dataparsers.iphone.dataparser import IPhoneDataParserConfig
from dataparsers.iphone.dataset import IPhoneDataset
from dataparsers.iphone.layout import IPhoneLayout, frame_name
from dataparsers.iphone.optical_flow import FlowSettings
from dataparsers.iphone.preprocess_video import PreprocessVideo, preprocess
from dataparsers.synthetic.ground_truth import load_ground_truth
from dataparsers.synthetic.monocular import MonocularConfig, write_monocular_scene
from dataparsers.synthetic.monocular_priors import pinhole_project
from dataparsers.synthetic.writers import encode_mp4

NUM_FRAMES = 24


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """A synthetic scene, and its training camera as a user would bring it: video, poses, depth."""
    root = tmp_path_factory.mktemp("video")
    scene = write_monocular_scene(root / "scene", MonocularConfig(num_frames=NUM_FRAMES))
    truth = load_ground_truth(scene)
    frames = truth.camera_frames("0")
    encode_mp4(root / "clip.mp4", list(frames["rgb"]), 30.0, crf=0)
    names = [frame_name(0, t) for t in range(NUM_FRAMES)]
    cams = [read_camera_json(IPhoneLayout(scene).camera_file(n)) for n in names]
    np.savez(root / "poses.npz", w2c=np.stack([c.w2c for c in cams]), K=cams[0].K)
    (root / "depth").mkdir()
    for t, depth in enumerate(frames["depth"]):  # like a sensor: no depth for the far background
        np.save(root / "depth" / f"{t:04d}.npy", np.where(depth < 6.0, depth, 0.0).astype(np.float32))
    return root, truth, frames


def command(root, **options):
    return PreprocessVideo(
        video=root / "clip.mp4",
        poses=root / "poses.npz",
        depth=root / "depth",
        out=root / "custom",
        val_every=4,
        track_stride=4,
        flow=FlowSettings(window=9),
        overwrite=True,
        **options,
    )


def test_preprocessed_video_parses_with_sensible_priors(inputs):
    root, truth, frames = inputs
    out = preprocess(command(root))
    parser = IPhoneDataParserConfig(data=out).setup()
    train, val = parser.get_dataparser_outputs("train"), parser.get_dataparser_outputs("val")
    assert val.metadata["time_ids"].tolist() == [3, 7, 11, 15, 19, 23]
    assert train.metadata["time_ids"].tolist() == [t for t in range(NUM_FRAMES) if t % 4 != 3]
    assert train.metadata["missing_priors"] == ["keypoints"]  # camera/*.json are metric: no scale.npy needed
    assert train.metadata["metric_scale"] == pytest.approx(1.0 / train.dataparser_scale)
    assert train.metadata["depth_source"] == "lidar"

    data = IPhoneDataset(train)[2]
    truth_mask = frames["dynamic_mask"][2]
    predicted = data["motion_mask"][..., 0].numpy() > 0.5
    assert (predicted & truth_mask).sum() / (predicted | truth_mask).sum() > 0.4
    np.testing.assert_allclose(
        data["depth_image"][..., 0].numpy() / train.dataparser_scale,
        np.where(frames["depth"][2] < 6.0, frames["depth"][2], 0.0),
        rtol=1e-5,
    )

    tracks, names = train.metadata["tracks"], train.metadata["frame_names"]
    query = tracks.load(4, 4)
    assert query.visible.all() and np.allclose(query.xy.numpy() % 4, 0.5)  # the query grid, pixel centres
    errors = []
    for q in range(len(names) - 1):  # one step along the video: flow is accurate to about a pixel
        qt, tt = int(train.metadata["time_ids"][q]), int(train.metadata["time_ids"][q + 1])
        uv = tracks.load(q, q).xy.numpy().astype(np.float64)
        rows, cols = np.floor(uv[:, 1]).astype(int), np.floor(uv[:, 0]).astype(int)
        origin, dirs = truth.cameras[names[q]].pixel_rays(uv)
        points = origin + dirs * frames["depth"][qt][rows, cols, None]
        moved = truth.scene().track_points(points, frames["object_id"][qt][rows, cols].astype(int), qt, [tt])[0]
        pair = tracks.load(q, q + 1)
        err = np.linalg.norm(pair.xy.numpy() - pinhole_project(truth.cameras[names[q + 1]], moved)[0], axis=1)
        errors.append(err[pair.visible.numpy()])
    assert np.median(np.concatenate(errors)) < 1.5


def test_poses_that_do_not_cover_the_frames(inputs):
    root, _, _ = inputs
    with np.load(root / "poses.npz") as data:
        np.savez(root / "short_poses.npz", w2c=data["w2c"][:5], K=data["K"])
    cmd = command(root)
    cmd.poses = root / "short_poses.npz"
    with pytest.raises(DatasetFormatError, match=r"short_poses\.npz: w2c has shape \(5, 4, 4\).*frame 23 is used"):
        preprocess(cmd)
