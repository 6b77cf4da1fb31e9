"""The images the initialization reads: RGB as stored and grayscale at the optical-flow resolution."""

from __future__ import annotations

from typing import Dict, Sequence, Tuple

import cv2
import numpy as np

from dataparsers.images import read_rgb
from sharptime_ns.init.inputs import MultiViewFrames


def flow_resolution(width: int, height: int, max_side: int) -> Tuple[int, int]:
    """(w, h) the flow is computed at: the image downscaled so that its longer side ≤ max_side."""
    scale = min(1.0, max_side / max(width, height)) if max_side > 0 else 1.0
    return max(1, int(round(width * scale))), max(1, int(round(height * scale)))


def to_flow_size(image: np.ndarray, max_side: int) -> np.ndarray:
    """``image`` (gray or RGB) downscaled to the flow resolution (unchanged when already there)."""
    w, h = flow_resolution(image.shape[1], image.shape[0], max_side)
    if (w, h) != (image.shape[1], image.shape[0]):
        image = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)
    return image


def to_flow_gray(rgb: np.ndarray, max_side: int) -> np.ndarray:
    """Grayscale uint8 image at flow resolution."""
    return to_flow_size(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), max_side)


class ImageCache:
    """RGB + flow-resolution grayscale images, keeping only a few frames in memory."""

    def __init__(self, frames: MultiViewFrames, flow_max_side: int) -> None:
        self.frames = frames
        self.flow_max_side = flow_max_side
        self.rgb: Dict[Tuple[int, int], np.ndarray] = {}
        self.gray: Dict[Tuple[int, int], np.ndarray] = {}

    def get_rgb(self, frame: int, cam: int) -> np.ndarray:
        key = (frame, cam)
        if key not in self.rgb:
            self.rgb[key] = read_rgb(self.frames.image_paths[frame][cam])
        return self.rgb[key]

    def get_gray(self, frame: int, cam: int) -> np.ndarray:
        key = (frame, cam)
        if key not in self.gray:
            self.gray[key] = to_flow_gray(self.get_rgb(frame, cam), self.flow_max_side)
        return self.gray[key]

    def keep_only(self, frames: Sequence[int]) -> None:
        keep = set(frames)
        for d in (self.rgb, self.gray):
            for key in [k for k in d if k[0] not in keep]:
                del d[key]
