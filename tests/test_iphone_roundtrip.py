"""Round trip: a synthetic monocular scene written in the DyCheck iPhone layout, read back by the
``iphone`` dataparser (and by nerfstudio's own ``dycheck`` parser for comparison)."""

import json
import shutil

import numpy as np
import pytest
import torch
from nerfstudio.data.dataparsers.dycheck_dataparser import DycheckDataParserConfig
from nerfstudio_projection import project_nerfstudio, to_nerfstudio

from dataparsers.iphone.dataparser import IPhoneDataParserConfig
from dataparsers.iphone.dataset import IPhoneDataset
from dataparsers.iphone.layout import IPhoneLayout
from dataparsers.synthetic.ground_truth import load_ground_truth
from dataparsers.synthetic.monocular_priors import pinhole_project

NUM_FRAMES = 8  # frames of the monocular_scene fixture (conftest.py)


@pytest.fixture(scope="module")
def tracks_3d(monocular_scene):
    with np.load(IPhoneLayout(monocular_scene).ground_truth_dir / "tracks_3d.npz") as data:
        return {key: data[key] for key in data.files}


def parse(scene, split="train", **options):
    return IPhoneDataParserConfig(data=scene, **options).setup().get_dataparser_outputs(split)


def project(outputs, index, points_world):
    """Pixels [P, 2] of world points through the parsed camera ``index``."""
    return project_nerfstudio(outputs, index, to_nerfstudio(outputs, points_world))


@pytest.mark.parametrize("cameras", ["original", "refined"])
@pytest.mark.parametrize("factor", [1, 2])
def test_ground_truth_points_project_within_half_a_pixel(monocular_scene, tracks_3d, cameras, factor):
    truth = load_ground_truth(monocular_scene)
    train = parse(monocular_scene, cameras=cameras, factor=factor)
    names = train.metadata["frame_names"]
    for q in range(NUM_FRAMES):  # query points land on the pixel they were rendered at
        sel = tracks_3d["query_index"] == q
        err = project(train, q, tracks_3d["positions"][sel, q]) - tracks_3d["query_uv"][sel] / factor
        assert np.abs(err).max() < 0.5 and np.abs(err).max() < 1e-3
    for t, name in enumerate(names):  # every visible point, in every frame
        points = tracks_3d["positions"][tracks_3d["visible"][:, t], t]
        expected = pinhole_project(truth.cameras[name], points)[0] / factor
        assert np.abs(project(train, t, points) - expected).max() < 1e-3
    val = parse(monocular_scene, "val", cameras=cameras, factor=factor)
    for k, name in enumerate(val.metadata["frame_names"]):
        points = tracks_3d["positions"][:, int(val.metadata["time_ids"][k])]
        expected = pinhole_project(truth.cameras[name], points)[0] / factor
        assert np.abs(project(val, k, points) - expected).max() < 1e-3


def test_times_and_metadata(monocular_scene):
    train = parse(monocular_scene)
    assert torch.equal(train.metadata["time_ids"], torch.arange(NUM_FRAMES))
    torch.testing.assert_close(train.cameras.times[:, 0], torch.arange(NUM_FRAMES) / (NUM_FRAMES - 1.0))
    assert train.metadata["num_time_steps"] == NUM_FRAMES and train.metadata["fps"] == 30.0
    assert train.metadata["missing_priors"] == [] and train.metadata["depth_source"] == "aligned_depth_anything_colmap"
    assert train.metadata["metric_scale"] == pytest.approx(1.0 / train.dataparser_scale)
    assert train.metadata["near"] < train.metadata["far"]
    assert train.metadata["dataset_type"] is IPhoneDataset


def test_val_split_is_held_out(monocular_scene):
    train, val, test = parse(monocular_scene), parse(monocular_scene, "val"), parse(monocular_scene, "test")
    assert not set(train.image_filenames) & set(val.image_filenames)
    assert val.image_filenames == test.image_filenames
    assert set(val.metadata["camera_ids"].tolist()) == {1, 2} and set(train.metadata["camera_ids"].tolist()) == {0}
    assert len(val.image_filenames) == 2 * NUM_FRAMES
    for camera_id in (1, 2):  # the validation cameras are static
        c2w = val.cameras.camera_to_worlds[val.metadata["camera_ids"] == camera_id]
        torch.testing.assert_close(c2w, c2w[:1].expand_as(c2w))
    assert val.metadata["tracks"] is None and val.metadata["keypoints"] is None


def test_camera_centres_agree_with_nerfstudio_dycheck(monocular_scene, tmp_path):
    copy = shutil.copytree(
        monocular_scene, tmp_path / "scene"
    )  # nerfstudio's parser writes processed_depth/ into the scene
    theirs = DycheckDataParserConfig(data=copy).setup().get_dataparser_outputs("train")
    ours = parse(copy, cameras="original")
    truth = load_ground_truth(monocular_scene)
    centres = np.stack([truth.cameras[n].center for n in ours.metadata["frame_names"]])
    # nerfstudio's dycheck: p = M · (c − center) · scale · sf with sf = scene_box_bound / 4 / (scale · far)
    # and M: (x, y, z) -> (x, −z, y)
    scene_json = json.loads((copy / "scene.json").read_text())
    sf = 1.5 / 4 / (scene_json["scale"] * scene_json["far"])
    M = np.array([[1.0, 0, 0], [0, 0, -1], [0, 1, 0]])
    theirs_c2w = theirs.cameras.camera_to_worlds.double().numpy()
    theirs_raw = theirs_c2w[:, :, 3] @ M / (scene_json["scale"] * sf) + np.array(scene_json["center"])
    # ours: x_ns = s · (R x + t)
    transform = ours.dataparser_transform.double().numpy()
    ours_c2w = ours.cameras.camera_to_worlds.double().numpy()
    ours_raw = (ours_c2w[:, :, 3] / ours.dataparser_scale - transform[:, 3]) @ transform[:, :3]
    np.testing.assert_allclose(theirs_raw, centres, atol=1e-4)
    np.testing.assert_allclose(ours_raw, centres, atol=1e-4)
    # orientations agree too: M^T · R_theirs = R^T · R_ours (both OpenGL camera axes)
    np.testing.assert_allclose(M.T @ theirs_c2w[:, :, :3], transform[:, :3].T @ ours_c2w[:, :, :3], atol=1e-5)


def iou(a, b):
    return (a & b).sum() / max((a | b).sum(), 1)


def test_image_mask_depth_and_motion_mask(monocular_scene):
    truth = load_ground_truth(monocular_scene).camera_frames("0")
    for depth_option in ("auto", "lidar"):
        outputs = parse(monocular_scene, depth=depth_option)
        data = IPhoneDataset(outputs)[3]
        assert data["image"].shape == (72, 96, 3) and data["mask"].dtype == torch.bool
        assert not data["mask"][:2].any() and data["mask"][2:-2, 2:-2].all()  # the 2-pixel invalid border
        predicted = data["depth_image"][..., 0].numpy() / outputs.dataparser_scale  # back to metres
        gt = truth["depth"][3]
        known = predicted > 0
        ratio = predicted[known] / gt[known]
        if depth_option == "auto":  # aligned disparity (COLMAP units): inverted, scaled by scale.npy, ±5% scale error
            assert known.mean() > 0.99 and 0.85 < np.median(ratio) < 1.18
            assert np.corrcoef(predicted[known], gt[known])[0, 1] > 0.9
        else:  # lidar: metres, range-limited, 1% noise
            assert 0.5 < known.mean() < 0.99 and abs(np.median(ratio) - 1) < 0.02
            assert (predicted[gt > 7] == 0).mean() > 0.9
        assert iou(data["motion_mask"][..., 0].numpy() > 0.5, truth["dynamic_mask"][3]) > 0.6


def test_tracks_load_lazily_with_the_right_conventions(monocular_scene, tracks_3d):
    truth = load_ground_truth(monocular_scene)
    for factor in (1, 2):
        outputs = parse(monocular_scene, factor=factor)
        tracks = outputs.metadata["tracks"]
        names = outputs.metadata["frame_names"]
        assert len(tracks) == NUM_FRAMES and not any(isinstance(v, np.ndarray) for v in vars(tracks).values())
        agree, errors = [], []
        for q, t in [(0, 0), (1, 5), (6, 2), (3, 4), (7, 0)]:
            pair = tracks.load(q, t)
            sel = tracks_3d["query_index"] == q
            assert pair.xy.shape == (sel.sum(), 2) and pair.occlusion_logit.shape == (sel.sum(),)
            if q == t:
                np.testing.assert_allclose(pair.xy.numpy(), tracks_3d["query_uv"][sel] / factor, atol=1e-4)
                assert pair.visible.all()
                continue
            expected = pinhole_project(truth.cameras[names[t]], tracks_3d["positions"][sel, t])[0] / factor
            gt_visible = tracks_3d["visible"][sel, t]
            confident = (pair.visible | pair.invisible).numpy()
            agree.append((pair.visible.numpy() == gt_visible)[confident])
            errors.append(np.linalg.norm(pair.xy.numpy() - expected, axis=1)[pair.visible.numpy()] * factor)
        assert np.concatenate(agree).mean() > 0.9
        assert np.percentile(np.concatenate(errors), 95) < 1.0  # 0.3 px jitter at 1x
        pairs = tracks.sample_pairs(5, torch.Generator().manual_seed(0), query=2)
        assert pairs.shape == (5, 2) and (pairs[:, 0] == 2).all() and len(set(pairs[:, 1].tolist())) == 5


def test_val_priors_and_keypoints(monocular_scene):
    val = parse(monocular_scene, "val")
    assert val.metadata["missing_priors"] == ["depth"]  # the validation cameras have no depth maps
    data = IPhoneDataset(val)[0]
    assert "depth_image" not in data and data["covisible_mask"].dtype == torch.bool
    assert 0.3 < data["covisible_mask"].float().mean() < 1.0
    truth = load_ground_truth(monocular_scene).camera_frames("0")
    keypoints = parse(monocular_scene, factor=2).metadata["keypoints"]
    assert keypoints.points.shape == (5, 9, 3)
    for index, rows in zip(keypoints.image_indices.tolist(), keypoints.points.numpy()):
        seen = rows[rows[:, 2] > 0, :2] * 2  # factor-2 pixels -> 1x
        cols, lines = np.floor(seen[:, 0]).astype(int), np.floor(seen[:, 1]).astype(int)
        assert len(seen) and (truth["object_id"][index][lines, cols] >= 0).all()
