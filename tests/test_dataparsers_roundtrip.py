"""Round trip for every format: write a tiny synthetic scene, parse it, and compare with the
generator's ground truth (projections of known 3D points, times, splits, image content)."""

import dataclasses
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from nerfstudio.data.datasets.base_dataset import InputDataset
from nerfstudio_projection import project_nerfstudio, to_nerfstudio

from dataparsers.easyvolcap import EasyVolcapDataParserConfig, ENeRFOutdoorDataParserConfig
from dataparsers.multiview import MultiViewAutoDataParserConfig, detect_layout
from dataparsers.neural3dv import Neural3DVDataParserConfig
from dataparsers.selfcap import SelfCapDataParserConfig
from dataparsers.synthetic.ground_truth import GroundTruth, load_ground_truth
from dataparsers.synthetic.writers import SynthesisConfig, write_scene

TINY = SynthesisConfig(num_cameras=4, num_frames=6, width=64, height=48)
DISTORTED = dataclasses.replace(TINY, distortion=(-0.06, 0.01, 0.0005, -0.0005, 0.0), principal_offset=(1.5, -1.0))
# format -> (what to write, how to parse it, the auto-detected layout)
CASES = {
    "neural3dv": (TINY, Neural3DVDataParserConfig(), "neural3dv"),
    "enerf": (DISTORTED, ENeRFOutdoorDataParserConfig(test_cameras=("02",)), "enerf_outdoor"),
    "selfcap": (
        dataclasses.replace(DISTORTED, max_sync_offset=0.004),
        SelfCapDataParserConfig(test_cameras=("0001",)),
        "selfcap",
    ),
    "easyvolcap": (DISTORTED, EasyVolcapDataParserConfig(downscale=1.5), "easyvolcap"),
}


@pytest.fixture(scope="module", params=list(CASES))
def case(request, tmp_path_factory):
    fmt = request.param
    synth, parser_config, layout = CASES[fmt]
    root = write_scene(fmt, tmp_path_factory.mktemp(fmt) / "scene", synth)
    config = dataclasses.replace(parser_config, data=root)
    parser = config.setup()
    return {
        "fmt": fmt,
        "root": root,
        "config": config,
        "layout": layout,
        "gt": load_ground_truth(root),
        "train": parser.get_dataparser_outputs("train"),
        "test": parser.get_dataparser_outputs("test"),
    }


def ground_truth_points(gt: GroundTruth, name: str, frame: int, depth: np.ndarray):
    """3D points seen at a grid of pixel centres (from the depth map) and the object centres,
    with the pixels where the generator's undistorted pinhole camera puts them."""
    cam = gt.cameras[name]
    rows, cols = np.meshgrid(np.arange(1, cam.height, 5), np.arange(2, cam.width, 5), indexing="ij")
    uv = np.stack([cols.ravel() + 0.5, rows.ravel() + 0.5], axis=1)
    rays = np.linalg.inv(cam.K) @ np.concatenate([uv, np.ones((len(uv), 1))], axis=1).T
    p_cam = (rays * depth[rows.ravel(), cols.ravel()]).T
    c2w = np.linalg.inv(cam.w2c)
    surface = p_cam @ c2w[:3, :3].T + c2w[:3, 3]
    centres = gt.object_poses[frame, :, :3, 3]
    c = centres @ cam.w2c[:3, :3].T + cam.w2c[:3, 3]
    centre_uv = (c @ cam.K.T)[:, :2] / c[:, 2:3]
    return np.concatenate([surface, centres]), np.concatenate([uv, centre_uv])


def test_projections_of_ground_truth_points(case):
    gt = case["gt"]
    depths = {name: gt.camera_frames(name)["depth"] for name in gt.cameras}
    worst = 0.0
    for split in ("train", "test"):
        outputs = case[split]
        for i, (name, frame) in enumerate(zip(outputs.metadata["camera_names"], outputs.metadata["frame_indices"])):
            cam = gt.cameras[name]
            points, uv = ground_truth_points(gt, name, frame, depths[name][frame])
            sx = float(outputs.cameras.width[i]) / cam.width
            sy = float(outputs.cameras.height[i]) / cam.height
            got = project_nerfstudio(outputs, i, to_nerfstudio(outputs, points))
            worst = max(worst, float(np.abs(got - uv * [sx, sy]).max()))
    assert worst < 0.5, f"{case['fmt']}: worst reprojection error {worst:.3g} px"
    assert worst < 1e-2  # in fact only float32 rounding separates them


def test_splits_times_and_metadata(case):
    gt, config = case["gt"], case["config"]
    names = list(gt.cameras)
    test_names = set(config.test_cameras) or {names[0]}
    for split, expected in (("train", [n for n in names if n not in test_names]), ("test", sorted(test_names))):
        outputs = case[split]
        meta = outputs.metadata
        assert sorted(set(meta["camera_names"])) == expected
        assert len(outputs.image_filenames) == len(expected) * gt.num_frames == len(outputs.cameras)
        assert meta["num_frames"] == gt.num_frames and meta["fps"] == pytest.approx(gt.fps)
        assert all(Path(f).is_file() for f in outputs.image_filenames)
        # normalized time = scene time mapped so the earliest frame of any camera is 0, the latest 1
        all_frames = np.concatenate(list(gt.scene_frames.values()))
        shown = np.array([gt.scene_frames[n][f] for n, f in zip(meta["camera_names"], meta["frame_indices"])])
        expected_t = (shown - all_frames.min()) / (all_frames.max() - all_frames.min())
        np.testing.assert_allclose(outputs.cameras.times[:, 0].numpy(), expected_t, atol=1e-6)
        assert meta["duration_s"] == pytest.approx((all_frames.max() - all_frames.min()) / gt.fps)
    both = case["train"].cameras.times
    assert float(both.min()) >= 0.0 and float(both.max()) <= 1.0
    assert case["train"].dataparser_scale == case["test"].dataparser_scale
    assert torch.equal(case["train"].dataparser_transform, case["test"].dataparser_transform)


def psnr(a: np.ndarray, b: np.ndarray, margin: int = 3) -> float:
    """PSNR without a border of ``margin`` pixels (undistortion leaves border pixels without a source)."""
    inner = (slice(margin, -margin), slice(margin, -margin))
    return float(-10 * np.log10(np.mean((a[inner] - b[inner]) ** 2)))


def shifted(image: np.ndarray, dx: float, dy: float) -> np.ndarray:
    M = np.float32([[1, 0, dx], [0, 1, dy]])
    return cv2.warpAffine(
        image, M, (image.shape[1], image.shape[0]), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
    )


def test_images_match_ground_truth(case):
    """Each image shows its own frame, aligned with the ground truth to well under half a pixel
    (compression, undistortion and resizing blur aside)."""
    gt, outputs = case["gt"], case["train"]
    dataset = InputDataset(outputs)
    name = outputs.metadata["camera_names"][0]
    rgb = gt.camera_frames(name)["rgb"]
    for i in range(gt.num_frames):
        image = dataset[i]["image"].numpy().astype(np.float64)
        frame = outputs.metadata["frame_indices"][i]
        size = (image.shape[1], image.shape[0])
        truth = [cv2.resize(rgb[f], size, interpolation=cv2.INTER_AREA) / 255.0 for f in range(gt.num_frames)]
        own = psnr(image, truth[frame])
        assert own > 25.0, f"{case['fmt']} frame {frame}: PSNR {own:.1f} dB against its ground truth"
        for f in (frame - 1, frame + 1):
            if 0 <= f < gt.num_frames:
                assert psnr(image, truth[f]) < own - 3.0
        for dx, dy in ((0.5, 0), (-0.5, 0), (0, 0.5), (0, -0.5)):
            assert psnr(image, shifted(truth[frame], dx, dy)) < own


def test_auto_detection_gives_the_same_outputs(case):
    assert detect_layout(case["root"]) == case["layout"]
    auto = MultiViewAutoDataParserConfig(data=case["root"])
    auto = dataclasses.replace(auto, **{case["layout"]: case["config"]})
    outputs = auto.setup()._generate_dataparser_outputs("train")
    assert outputs.image_filenames == case["train"].image_filenames
    assert torch.equal(outputs.cameras.camera_to_worlds, case["train"].cameras.camera_to_worlds)


def test_lazy_datamanager_trains_from_the_parser(tmp_path):
    """What ns-train does: the shared lazy datamanager reads our outputs and yields timed cameras."""
    from splat4d.datamanager import LazyImageDatamanagerConfig

    root = write_scene("enerf", tmp_path / "scene", TINY)
    parser = MultiViewAutoDataParserConfig(data=root, enerf_outdoor=ENeRFOutdoorDataParserConfig(test_cameras=("01",)))
    manager = LazyImageDatamanagerConfig(dataparser=parser, cache_images="cpu").setup(device="cpu")
    camera, batch = manager.next_train(0)
    assert camera.times is not None and 0.0 <= float(camera.times) <= 1.0
    assert batch["image"].shape == (int(camera.height), int(camera.width), 3)
    camera, batch = manager.next_eval(0)
    assert batch["image"].shape[:2] == (int(camera.height), int(camera.width))
