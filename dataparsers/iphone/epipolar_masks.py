"""Motion masks without poses or depth, for structure-from-motion on the static scene: the
optical flow between two adjacent frames is fitted by the camera's motion alone (a fundamental
matrix by RANSAC; a homography when the camera barely translates), and a pixel moves when its
flow leaves that fit: its Sampson distance to the epipolar geometry (or its distance to the
homography's prediction) exceeds a threshold. Motion along an epipolar line goes unseen, so the
masks are dilated before they keep features away from moving things.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

import cv2
import numpy as np

from dataparsers.iphone.optical_flow import FlowSettings, clean_mask, dense_flow, pixel_grid


@dataclass(frozen=True)
class EpipolarMaskSettings:
    """How moving pixels are told from the camera's motion."""

    threshold: float = 1.0
    """A pixel moves when its flow misses the camera motion's fit by more than this (pixels)."""
    sample_stride: int = 4
    """Flow vectors on a grid with this spacing (pixels) are fitted."""
    dilate: int = 5
    """The moving region grows by this many pixels before it masks features."""
    min_parallax: float = 0.5
    """Below this median flow (pixels) of the static fit, the pair is fitted by a homography."""


def fit_camera_motion(flow: np.ndarray, settings: EpipolarMaskSettings) -> Tuple[str, np.ndarray, np.ndarray]:
    """("fundamental" or "homography", the 3×3 matrix, bool inliers of the sampled grid) of the
    camera motion that best explains ``flow`` [H, W, 2] (RANSAC, deterministic seed)."""
    src, dst = _grid_correspondences(flow, settings.sample_stride)
    cv2.setRNGSeed(0)
    F, inliers = cv2.findFundamentalMat(src, dst, cv2.FM_RANSAC, settings.threshold, 0.999, 5000)
    if F is not None and F.shape == (3, 3):
        keep = inliers.ravel().astype(bool)
        if np.median(np.linalg.norm(dst[keep] - src[keep], axis=1)) >= settings.min_parallax:
            return "fundamental", F, keep
    H, inliers = cv2.findHomography(src, dst, cv2.RANSAC, settings.threshold, maxIters=5000, confidence=0.999)
    if H is None:
        raise ValueError("no camera motion fits the optical flow between two adjacent frames (too few pixels)")
    return "homography", H, inliers.ravel().astype(bool)


def motion_residual(flow: np.ndarray, kind: str, matrix: np.ndarray) -> np.ndarray:
    """[H, W] distance (pixels) of every pixel's flow from the fitted camera motion: Sampson
    distance for a fundamental matrix, transfer error for a homography."""
    height, width = flow.shape[:2]
    rows, cols = pixel_grid(width, height)
    src = np.stack([cols + 0.5, rows + 0.5, np.ones_like(cols, dtype=np.float64)], axis=-1).reshape(-1, 3)
    dst = src.copy()
    dst[:, :2] += flow.reshape(-1, 2)
    if kind == "homography":
        mapped = src @ matrix.T
        residual = np.linalg.norm(mapped[:, :2] / mapped[:, 2:] - dst[:, :2], axis=1)
    else:
        Fx, Ftx = src @ matrix.T, dst @ matrix
        numerator = np.einsum("ij,ij->i", dst, Fx) ** 2
        residual = np.sqrt(numerator / (Fx[:, 0] ** 2 + Fx[:, 1] ** 2 + Ftx[:, 0] ** 2 + Ftx[:, 1] ** 2 + 1e-12))
    return residual.reshape(height, width)


def epipolar_motion_mask(
    rgb_from: np.ndarray, rgb_to: np.ndarray, flow_settings: FlowSettings, settings: EpipolarMaskSettings
) -> np.ndarray:
    """bool [H, W]: pixels of ``rgb_from`` whose motion into ``rgb_to`` the camera does not explain
    (cleaned of specks, then dilated by ``settings.dilate``)."""
    flow = dense_flow(rgb_from, rgb_to, flow_settings)
    kind, matrix, _ = fit_camera_motion(flow, settings)
    moving = clean_mask(motion_residual(flow, kind, matrix) > settings.threshold)
    if settings.dilate > 0:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * settings.dilate + 1,) * 2)
        moving = cv2.dilate(moving.astype(np.uint8), kernel).astype(bool)
    return moving


def _grid_correspondences(flow: np.ndarray, stride: int) -> Tuple[np.ndarray, np.ndarray]:
    height, width = flow.shape[:2]
    rows, cols = pixel_grid(width, height, stride)
    src = np.stack([cols + 0.5, rows + 0.5], axis=-1).reshape(-1, 2)
    dst = src + flow[rows, cols].reshape(-1, 2)
    inside = (dst[:, 0] >= 0) & (dst[:, 0] < width) & (dst[:, 1] >= 0) & (dst[:, 1] < height)
    return src[inside].astype(np.float32), dst[inside].astype(np.float32)
