"""The plate-change masks of the velocity-aware init: what changes without moving (pop-ins, a flame)."""

import cv2
import numpy as np

from dataparsers.images import write_rgb
from sharptime_ns.init.change_masks import ChangeMasker, plate_frames
from sharptime_ns.init.config import MaskConfig
from sharptime_ns.init.flow_masks import FlowMasker, flow_mask
from sharptime_ns.init.images import ImageCache
from sharptime_ns.init.inputs import MultiViewFrames

W, H, FRAMES = 96, 72, 12
BOX = (slice(30, 46), slice(40, 60))  # rows, columns of the box that pops in at frames 5–7


def _frames(tmp_path) -> MultiViewFrames:
    rng = np.random.default_rng(0)
    background = cv2.GaussianBlur(rng.uniform(0, 255, (H, W, 3)).astype(np.float32), (0, 0), 2.0)
    background = np.clip((background - background.mean()) * 3 + 128, 0, 255).astype(np.uint8)
    paths = []
    for k in range(FRAMES):
        image = background.copy()
        if 5 <= k <= 7:
            image[BOX] = (220, 60, 40)
        image = np.clip(image + rng.normal(0, 1.5, image.shape), 0, 255).astype(np.uint8)  # sensor noise
        write_rgb(tmp_path / f"{k}.png", image)
        paths.append([tmp_path / f"{k}.png"])
    K = np.array([[80.0, 0, W / 2], [0, 80.0, H / 2], [0, 0, 1]])
    return MultiViewFrames(paths, K[None], np.eye(4)[None], np.linspace(0, 1, FRAMES), ["cam"], tmp_path)


def test_plate_change_marks_the_pop_in_that_flow_misses(tmp_path):
    frames = _frames(tmp_path)
    config = MaskConfig(flow_max_side=W)
    changes = ChangeMasker(frames, config)
    cache = ImageCache(frames, config.flow_max_side)
    box = np.zeros((H, W), bool)
    box[BOX] = True
    for k in range(FRAMES):
        mask = changes.mask(cache.get_rgb(k, 0), 0)
        assert mask.shape == (H, W)
        if 5 <= k <= 7:
            assert mask[box].mean() > 0.95, k
            assert mask[~box].mean() < 0.06, k  # the dilation around the box only
        else:
            assert not mask.any(), k
    # the flow mask misses most of the box on the frame it appears (nothing to follow from frame 4)
    flow = flow_mask(cache, FlowMasker(config), 5, 0, FRAMES, W)
    assert flow[box].mean() < 0.5
    assert ChangeMasker(frames, MaskConfig(change_threshold=0)).mask(cache.get_rgb(5, 0), 0) is None


def test_plate_frames_spread_over_the_video():
    assert plate_frames(300, 15).tolist() == np.linspace(0, 299, 15).round().astype(int).tolist()
    assert plate_frames(8, 15).tolist() == list(range(8))
