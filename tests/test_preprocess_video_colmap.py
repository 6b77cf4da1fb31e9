"""``splat4d-preprocess-video --poses colmap --depth-model`` end to end on a synthetic hand-held
clip with known cameras and depth: poses within 0.5° and 1 % of the trajectory's size after a
similarity alignment (frames SfM skipped interpolated), motion masks that find the moving objects,
depth in the reconstruction's units, the iphone dataparser reading the result, cached stages."""

import time

import cv2
import numpy as np
import pytest
from tiny_depth_anything import save_fitted_model

from dataparsers.iphone import video_estimates
from dataparsers.iphone.cameras import read_camera_json
from dataparsers.iphone.dataparser import IPhoneDataParserConfig
from dataparsers.iphone.epipolar_masks import EpipolarMaskSettings
from dataparsers.iphone.layout import ALIGNED_DEPTH_PREFIX, LIDAR, IPhoneLayout, frame_name
from dataparsers.iphone.optical_flow import FlowSettings
from dataparsers.iphone.preprocess_video import PreprocessVideo, preprocess
from dataparsers.iphone.video_sfm import VideoSfmError, VideoSfmSettings, sfm_frames, static_masks
from dataparsers.synthetic.ground_truth import SCENES
from dataparsers.synthetic.monocular import MonocularConfig, handheld_cameras
from dataparsers.synthetic.pose_alignment import pose_errors, umeyama
from dataparsers.synthetic.writers import encode_mp4

NUM_FRAMES, WIDTH, HEIGHT = 24, 320, 240
SFM_IMAGES = 16  # of 24 frames: 8 frames get interpolated poses
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """The synthetic scene filmed by the hand-held camera: mp4, cameras, renders, a depth model."""
    root = tmp_path_factory.mktemp("colmap_video")
    cfg = MonocularConfig(num_frames=NUM_FRAMES, width=WIDTH, height=HEIGHT)
    scene, cameras = SCENES["default"](NUM_FRAMES, cfg.fps, cfg.seed), handheld_cameras(cfg)
    renders = [scene.render(cam, t, cfg.supersample) for t, cam in enumerate(cameras)]
    frames = [np.round(r.rgb * 255).astype(np.uint8) for r in renders]
    encode_mp4(root / "clip.mp4", frames, cfg.fps, crf=10)
    save_fitted_model(root / "depth_model", frames, [1.0 / r.depth for r in renders])
    return root, cameras, renders


def command(root, out="scene", **options):
    return PreprocessVideo(
        video=root / "clip.mp4",
        poses="colmap",
        depth_model=str(root / "depth_model"),
        out=root / out,
        val_every=4,
        track_stride=16,
        sfm=VideoSfmSettings(num_threads=2, max_images=SFM_IMAGES),
        overwrite=True,
        **options,
    )


@pytest.fixture(scope="module")
def built(clip):
    root = clip[0]
    start = time.perf_counter()
    out = preprocess(command(root))
    print(f"preprocess --poses colmap --depth-model: {time.perf_counter() - start:.1f} s")
    return out


def estimated_w2c(out):
    layout = IPhoneLayout(out)
    return {t: read_camera_json(layout.camera_file(frame_name(0, t))).w2c for t in range(NUM_FRAMES)}


def test_poses_against_truth(clip, built):
    """SfM frames within 0.5° and 1 % of the trajectory's size (similarity fitted on them); with the
    interpolated frames (slerp over 2-frame gaps of a shaking camera) within 1° and 2 %."""
    _, cameras, _ = clip
    estimated, true = estimated_w2c(built), {t: cam.w2c for t, cam in enumerate(cameras)}
    sfm = sfm_frames(NUM_FRAMES, SFM_IMAGES).tolist()
    for frames, max_rotation, max_centre in ((sfm, 0.5, 0.01), (range(NUM_FRAMES), 1.0, 0.02)):
        errors = pose_errors({t: estimated[t] for t in frames}, {t: true[t] for t in frames})
        rotation = np.array(list(errors.rotation_deg.values()))
        centre = np.array(list(errors.centre_fraction.values()))
        print(
            f"{len(frames)} frames: rotation error max {rotation.max():.3f}° median {np.median(rotation):.3f}°; "
            f"centre error max {100 * centre.max():.3f} % median {100 * np.median(centre):.3f} % of the trajectory"
        )
        assert rotation.max() < max_rotation and centre.max() < max_centre
    K = read_camera_json(IPhoneLayout(built).camera_file(frame_name(0, 0))).K
    assert K[0, 0] == pytest.approx(cameras[0].K[0, 0], rel=0.02)


def test_depth_is_in_the_reconstructions_units(clip, built):
    _, cameras, renders = clip
    w2c = estimated_w2c(built)
    true_w2c = [cam.w2c for cam in cameras]
    centres = [np.array([-m[:3, :3].T @ m[:3, 3] for m in poses]) for poses in (list(w2c.values()), true_w2c)]
    scale = umeyama(centres[0], centres[1])[0]  # estimated → true units
    folder = IPhoneLayout(built).depth_dir(ALIGNED_DEPTH_PREFIX)
    errors = []
    for t in range(0, NUM_FRAMES, 3):
        disparity = np.load(folder / f"{frame_name(0, t)}.npy")
        static = ~renders[t].dynamic_mask & (disparity > 0) & (renders[t].depth < 10.0)
        errors.append(np.abs(scale / disparity[static] - renders[t].depth[static]) / renders[t].depth[static])
    median = float(np.median(np.concatenate(errors)))
    print(f"aligned depth: median relative error {median:.3f} on static pixels")
    assert median < 0.2


def test_users_depth_is_fitted_to_the_reconstruction(clip, built):
    """--poses colmap with the user's (metric, partial) depth: the maps are fitted to the SfM points
    like the model's (the SfM stage comes from the cache) and written in the lidar slot."""
    root, cameras, renders = clip
    (root / "depth").mkdir(exist_ok=True)
    for t, render in enumerate(renders):  # like a sensor: no depth for the far background
        np.save(root / "depth" / f"{t:04d}.npy", np.where(render.depth < 6.0, render.depth, 0.0).astype(np.float32))
    cmd = command(root, out="user_depth", depth=root / "depth")
    cmd.depth_model = None
    out = preprocess(cmd)
    w2c = estimated_w2c(out)
    centres = [
        np.array([-m[:3, :3].T @ m[:3, 3] for m in poses]) for poses in (list(w2c.values()), [c.w2c for c in cameras])
    ]
    scale = umeyama(centres[0], centres[1])[0]
    errors = []
    for t in (0, 11, 23):
        depth = np.load(IPhoneLayout(out).depth_dir(LIDAR) / f"{frame_name(0, t)}.npy")[..., 0]
        known = renders[t].depth < 6.0
        np.testing.assert_array_equal(depth > 0, known)
        errors.append(np.abs(scale * depth[known] / renders[t].depth[known] - 1.0))
    errors = np.concatenate(errors)
    print(f"user's depth fitted: relative error median {np.median(errors):.4f} max {errors.max():.4f}")
    assert np.median(errors) < 0.02 and errors.max() < 0.05  # SfM's own noise (scale, per-frame fit)


def test_output_loads_with_the_iphone_dataparser(built):
    parser = IPhoneDataParserConfig(data=built).setup()
    train, val = parser.get_dataparser_outputs("train"), parser.get_dataparser_outputs("val")
    assert train.metadata["time_ids"].tolist() == [t for t in range(NUM_FRAMES) if t % 4 != 3]
    assert val.metadata["time_ids"].tolist() == [3, 7, 11, 15, 19, 23]
    assert train.metadata["depth_source"] == ALIGNED_DEPTH_PREFIX


def test_motion_masks_find_the_moving_objects(clip):
    _, _, renders = clip
    frames = [np.round(r.rgb * 255).astype(np.uint8) for r in renders]
    subset = np.arange(0, NUM_FRAMES, 4)
    masks = static_masks(frames, subset, FlowSettings(), EpipolarMaskSettings(dilate=0), lambda: None)
    truth = np.stack([renders[t].dynamic_mask for t in subset])
    recall, false_alarm = (masks & truth).sum() / truth.sum(), (masks & ~truth).sum() / (~truth).sum()
    print(f"motion masks: {recall:.2f} of moving pixels found, {false_alarm:.3f} of static pixels flagged")
    assert recall > 0.5 and false_alarm < 0.12


def test_rerun_resumes_from_the_cache(clip, built, monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("a cached stage was recomputed")

    monkeypatch.setattr(video_estimates, "reconstruct", fail)
    monkeypatch.setattr(video_estimates, "static_masks", fail)
    monkeypatch.setattr(video_estimates, "load_depth_model", fail)
    again = preprocess(command(clip[0], out="again"))
    for t, w2c in estimated_w2c(again).items():
        np.testing.assert_array_equal(w2c, estimated_w2c(built)[t])


def test_featureless_video_is_reported(clip, tmp_path):
    (tmp_path / "frames").mkdir()
    for k in range(6):
        cv2.imwrite(str(tmp_path / "frames" / f"{k}.png"), np.full((48, 64, 3), 128, np.uint8))
    model = str(clip[0] / "depth_model")
    cmd = PreprocessVideo(
        video=tmp_path / "frames", poses="colmap", depth_model=model, out=tmp_path / "out", fps=30.0, cache=False
    )
    cmd.sfm.num_threads = 2
    with pytest.raises(VideoSfmError, match="could not start a reconstruction from 6 frames"):
        preprocess(cmd)


def test_depth_model_needs_colmap_poses_and_no_other_depth(tmp_path):
    cmd = PreprocessVideo(video=tmp_path, poses=tmp_path / "poses.npz", depth_model="m", out=tmp_path / "out")
    with pytest.raises(ValueError, match="--depth-model .* needs --poses colmap"):
        preprocess(cmd)
    cmd = PreprocessVideo(video=tmp_path, poses="colmap", depth_model="m", depth=tmp_path, out=tmp_path / "out")
    with pytest.raises(ValueError, match="give exactly one of --depth, --disparity and --depth-model"):
        preprocess(cmd)
