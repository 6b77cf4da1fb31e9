"""Bad input to the ``iphone`` dataparser: clear errors naming the file and the problem."""

import json
import shutil
import warnings

import numpy as np
import pytest

from dataparsers.errors import DatasetFormatError
from dataparsers.iphone.dataparser import IPhoneDataParserConfig
from dataparsers.iphone.dataset import IPhoneDataset
from dataparsers.iphone.layout import IPhoneLayout
from dataparsers.iphone.priors import DepthWarning
from dataparsers.synthetic.monocular import MonocularConfig, write_monocular_scene


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    config = MonocularConfig(num_frames=5, width=64, height=48)
    return write_monocular_scene(tmp_path_factory.mktemp("iphone") / "scene", config)


@pytest.fixture
def layout(pristine, tmp_path):
    return IPhoneLayout(shutil.copytree(pristine, tmp_path / "scene"))


def parse(layout, split="train", **options):
    return IPhoneDataParserConfig(data=layout.root, **options).setup().get_dataparser_outputs(split)


@pytest.mark.parametrize("split", ["train", "val"])
def test_missing_split_file(layout, split):
    layout.split_file(split).unlink()
    with pytest.raises(DatasetFormatError, match=rf"splits/{split}\.json: is missing.*never evaluates on training"):
        parse(layout, split)


def test_empty_val_split_never_falls_back_to_train(layout):
    layout.split_file("val").write_text(json.dumps({"frame_names": [], "time_ids": [], "camera_ids": []}))
    with pytest.raises(DatasetFormatError, match=r"val\.json: lists no frames"):
        parse(layout, "val")


def test_camera_json_lacking_a_field(layout):
    path = layout.camera_file("0_00002")
    record = json.loads(path.read_text())
    del record["focal_length"]
    path.write_text(json.dumps(record))
    with pytest.raises(DatasetFormatError, match=r"camera/0_00002\.json: lacks field focal_length"):
        parse(layout, cameras="original")


def test_track_files_of_the_wrong_shape(layout):
    pair = layout.track_file("0_00001", "0_00003")
    np.save(pair, np.load(pair)[:, :3])
    tracks = parse(layout).metadata["tracks"]  # pairs are read lazily ...
    tracks.load(1, 2)
    with pytest.raises(
        DatasetFormatError, match=r"0_00001_0_00003\.npy: has shape \(\d+, 3\); 2D track files hold \[P, 4\]"
    ):
        tracks.load(1, 3)  # ... and checked when read
    query = layout.track_file("0_00002", "0_00002")
    np.save(query, np.load(query)[None])
    with pytest.raises(DatasetFormatError, match=r"0_00002_0_00002\.npy: has shape \(1, \d+, 4\)"):
        parse(layout)  # query files are checked up front (header only)


def test_missing_track_pair(layout):
    layout.track_file("0_00004", "0_00000").unlink()
    with pytest.raises(
        DatasetFormatError, match=r"2d_tracks/1x: lacks track files for 1 of the 25 .*0_00004_0_00000\.npy"
    ):
        parse(layout)


def test_depth_with_nan_and_inf_is_masked_with_one_warning(layout):
    for name, count in (("0_00001", 3), ("0_00002", 5)):
        path = layout.depth_dir("lidar") / f"{name}.npy"
        depth = np.load(path)
        depth.reshape(-1)[:count] = [np.nan, np.inf, -np.inf, np.nan, np.nan][:count]
        np.save(path, depth)
    dataset = IPhoneDataset(parse(layout, depth="lidar"))
    with pytest.warns(DepthWarning, match=r"depth/1x/0_00001\.npy: 3 NaN/inf depth values masked"):
        data = dataset[1]
    assert (data["depth_image"].reshape(-1)[:3] == 0).all() and data["depth_image"].isfinite().all()
    with warnings.catch_warnings():
        warnings.simplefilter("error", DepthWarning)  # warned once: the next file is masked silently
        assert dataset[2]["depth_image"].isfinite().all()


def test_prior_named_unlike_the_rgb_frames(layout):
    mask = layout.motion_mask_dir / "0_00003.png"
    mask.rename(layout.motion_mask_dir / "frame_00003.png")
    with pytest.raises(
        DatasetFormatError, match=r"track_anything/1x: has files for frames that are not in the scene.*frame_00003"
    ):
        parse(layout)


def test_prior_missing_for_some_frames(layout):
    (layout.depth_dir("aligned_depth_anything_colmap") / "0_00003.npy").unlink()
    with pytest.raises(
        DatasetFormatError, match=r"aligned_depth_anything_colmap/1x: has no \.npy file for frames 0_00003"
    ):
        parse(layout)


def test_missing_rgb_frame(layout):
    layout.rgb_file(2, "1_00004").unlink()
    with pytest.raises(DatasetFormatError, match=r"rgb/2x: has no image for frames 1_00004\.png"):
        parse(layout, "val", factor=2)


def test_split_frames_unknown_to_metadata(layout):
    split = json.loads(layout.split_file("train").read_text())
    split["frame_names"][0] = "0_99999"
    layout.split_file("train").write_text(json.dumps(split))
    with pytest.raises(
        DatasetFormatError, match=r"train\.json: names frames that metadata\.json does not list: 0_99999"
    ):
        parse(layout)


def test_missing_priors_are_reported_not_fatal(layout):
    for folder in (
        layout.tracks_dir,
        layout.motion_mask_dir,
        layout.depth_dir("lidar"),
        layout.depth_dir("aligned_depth_anything_colmap"),
        layout.keypoint_dir,
    ):
        shutil.rmtree(folder)
    layout.metric_scale_file.unlink()
    outputs = parse(layout)
    assert outputs.metadata["missing_priors"] == ["metric_scale", "depth", "motion_mask", "tracks", "keypoints"]
    assert outputs.metadata["metric_scale"] is None  # refined COLMAP cameras without scale.npy: COLMAP units
    assert set(IPhoneDataset(outputs)[0]) == {"image_idx", "image", "mask"}


def test_metric_cameras_without_scale_file_are_not_reported_missing_a_metric_scale(layout, capsys):
    shutil.rmtree(layout.root / "flow3d_preprocessed" / "colmap")  # DyCheck's metric camera/*.json, no scale.npy
    outputs = parse(layout)
    assert outputs.metadata["metric_scale"] == pytest.approx(1.0 / outputs.dataparser_scale)
    assert "metric_scale" not in outputs.metadata["missing_priors"]
    assert "no metric_scale" not in capsys.readouterr().out


def test_metric_depth_with_colmap_cameras_needs_the_metric_scale(layout):
    layout.metric_scale_file.unlink()
    problem = r"colmap/scale\.npy: is needed to use the metres depth of .*depth/1x with colmap cameras"
    with pytest.raises(DatasetFormatError, match=problem):
        parse(layout, depth="lidar")
    colmap_depth = "aligned_depth_anything_colmap"  # COLMAP units, like the cameras: usable
    assert parse(layout, depth=colmap_depth).metadata["depth_source"] == colmap_depth
