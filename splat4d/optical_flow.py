"""Dense optical flow by OpenCV's Farnebäck method, with its settings documented once."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class FarnebackSettings:
    """Farnebäck optical flow parameters (OpenCV's names)."""

    pyramid_scale: float = 0.5
    """Image scale between pyramid levels."""
    levels: int = 4
    """Pyramid levels (more follow larger motions)."""
    window: int = 15
    """Averaging window in pixels (larger: smoother, more robust; smaller: sharper motion boundaries)."""
    iterations: int = 5
    """Iterations per pyramid level."""
    poly_n: int = 5
    """Pixel neighbourhood of the polynomial expansion."""
    poly_sigma: float = 1.1
    """Gaussian width of the polynomial expansion."""


def farneback_flow(gray_from: np.ndarray, gray_to: np.ndarray, settings: FarnebackSettings) -> np.ndarray:
    """float32 [H, W, 2] displacement of each pixel of the uint8 image ``gray_from`` into ``gray_to``."""
    s = settings
    return cv2.calcOpticalFlowFarneback(
        gray_from, gray_to, None, s.pyramid_scale, s.levels, s.window, s.iterations, s.poly_n, s.poly_sigma, 0
    )
