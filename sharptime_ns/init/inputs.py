"""What the initialization is given (multi-view frames) and the checks on it."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import List, Sequence

import numpy as np


class VelocityInitWarning(UserWarning):
    """Issued when the velocity-aware initialization falls back (too few points) or degrades."""


@dataclass
class MultiViewFrames:
    """Synchronized calibrated multi-view video, as the initialization needs it.

    Images must be undistorted (pinhole). Pixel convention of ``Ks``: OpenCV/COLMAP/nerfstudio,
    pixel (i, j) centred at (j + 0.5, i + 0.5), i.e. cx = W/2 for a centred principal point.
    Frames are ordered by time; adjacent entries are adjacent frames.
    """

    image_paths: List[List[Path]]  # [num_frames][num_cameras] image files (RGB, any format cv2 reads)
    Ks: np.ndarray  # [num_cameras, 3, 3] intrinsics in pixels, for the images as stored
    w2c: np.ndarray  # [num_cameras, 4, 4] world->camera, OpenCV axes (x right, y down, z forward)
    times: np.ndarray  # [num_frames] normalized times in [0, 1]
    camera_names: List[str]
    data_dir: Path  # where masks/ may live and where the cache goes


def validate(frames: MultiViewFrames) -> None:
    """A ValueError when the frames' shapes or times are inconsistent."""
    num_frames = len(frames.image_paths)
    if num_frames == 0:
        raise ValueError("MultiViewFrames has no frames")
    num_cams = len(frames.camera_names)
    if any(len(row) != num_cams for row in frames.image_paths):
        raise ValueError("every frame needs one image per camera (image_paths is [num_frames][num_cameras])")
    if np.shape(frames.Ks) != (num_cams, 3, 3) or np.shape(frames.w2c) != (num_cams, 4, 4):
        raise ValueError(f"Ks must be [{num_cams}, 3, 3] and w2c [{num_cams}, 4, 4]")
    if len(frames.times) != num_frames:
        raise ValueError("times must have one entry per frame")
    if num_frames > 1 and np.any(np.diff(np.asarray(frames.times, np.float64)) <= 0):
        raise ValueError("frame times must be strictly increasing")


def check_intrinsics(Ks: np.ndarray, images: List[np.ndarray], names: Sequence[str]) -> None:
    """A ValueError when a principal point lies outside its image (intrinsics of another
    resolution); a warning for a skew, which the PINHOLE model ignores."""
    for K, img, name in zip(Ks, images, names, strict=True):
        h, w = img.shape[:2]
        if not (0 < K[0, 2] < w and 0 < K[1, 2] < h):
            raise ValueError(
                f"camera {name}: principal point ({K[0, 2]:.1f}, {K[1, 2]:.1f}) is outside its {w}x{h} image; "
                "Ks must be the intrinsics of the images as stored (check downscale factors)"
            )
        if abs(K[0, 1]) > 1e-6 * K[0, 0]:
            warnings.warn(
                f"camera {name}: intrinsics skew is ignored (PINHOLE model)", VelocityInitWarning, stacklevel=2
            )
