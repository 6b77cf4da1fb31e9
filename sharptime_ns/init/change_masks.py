"""Dynamic masks from the change against each camera's static plate: what changes without moving.

Optical flow sees motion but not a flame that brightens, nor an object that pops in or out
between two frames (flow towards the frame before it finds nothing to follow). A camera's plate is
the per-pixel temporal median of frames sampled across its video, which keeps what is static most
of the time; a pixel of frame k is dynamic when its colour differs from the plate by more than
``change_threshold`` (max over RGB, after a 3-pixel box blur at the flow resolution).
"""

from __future__ import annotations

from typing import Dict, Optional

import cv2
import numpy as np

from dataparsers.images import read_rgb
from sharptime_ns.init.config import MaskConfig
from sharptime_ns.init.flow_masks import scaled_kernel
from sharptime_ns.init.images import to_flow_size
from sharptime_ns.init.inputs import MultiViewFrames


def to_flow_rgb(rgb: np.ndarray, max_side: int) -> np.ndarray:
    """uint8 RGB at the flow resolution, box-blurred over 3 pixels (the change test's input)."""
    return cv2.blur(to_flow_size(rgb, max_side), (3, 3))


def plate_frames(num_frames: int, count: int) -> np.ndarray:
    """``count`` frame indices evenly spread over the video (all of them when it is shorter)."""
    return np.unique(np.linspace(0, num_frames - 1, min(count, num_frames)).round().astype(int))


class ChangeMasker:
    """Per camera, the plate (computed on first use); ``mask(rgb, cam)`` marks the changed pixels."""

    def __init__(self, frames: MultiViewFrames, config: MaskConfig) -> None:
        self.frames, self.config = frames, config
        self.plates: Dict[int, np.ndarray] = {}

    def plate(self, cam: int) -> np.ndarray:
        if cam not in self.plates:
            indices = plate_frames(len(self.frames.image_paths), self.config.change_plate_frames)
            samples = [
                to_flow_rgb(read_rgb(self.frames.image_paths[k][cam]), self.config.flow_max_side) for k in indices
            ]
            self.plates[cam] = np.median(np.stack(samples), axis=0).astype(np.int16)
        return self.plates[cam]

    def mask(self, rgb: np.ndarray, cam: int) -> Optional[np.ndarray]:
        """bool [h, w] at the flow resolution, or None when the test is off (threshold 0)."""
        c = self.config
        if c.change_threshold <= 0:
            return None
        diff = np.abs(to_flow_rgb(rgb, c.flow_max_side).astype(np.int16) - self.plate(cam)).max(axis=-1)
        mask = (diff > c.change_threshold).astype(np.uint8)
        scale = mask.shape[1] / rgb.shape[1]
        for op, size in ((cv2.MORPH_OPEN, c.morph_open), (cv2.MORPH_DILATE, c.mask_dilate)):
            k = scaled_kernel(size, scale)
            if k is not None:
                mask = cv2.morphologyEx(mask, op, k)
        return mask.astype(bool)
