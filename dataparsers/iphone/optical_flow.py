"""Offline stand-ins for Shape of Motion's learned priors, from OpenCV optical flow:

- motion masks: a pixel moves when its optical flow to the next frame differs from the flow the
  camera motion alone would cause (the "rigid flow", from its depth and the two poses);
- 2D tracks in TAPIR's file format: query points on a grid inside the query frame's motion mask,
  chained frame to frame through the flow in both directions, with a forward-backward check.

Track logits (both: higher = worse), written once here:
    visible, chain intact                 occlusion −4, expected distance −4
    forward-backward check fails or the   occlusion +4, expected distance −4 (confidently occluded)
    point leaves the image
    any later frame (the chain is broken) occlusion  0, expected distance +4 (no confidence)

Pixel coordinates are ours (centres at +0.5); flow fields are indexed by pixel.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence, Tuple

import cv2
import numpy as np

from splat4d.geometry import apply_transform, project
from splat4d.optical_flow import FarnebackSettings, farneback_flow

VISIBLE, OCCLUDED, LOST = (-4.0, -4.0), (4.0, -4.0), (0.0, 4.0)  # (occlusion, expected-distance) logits


@dataclass(frozen=True)
class FlowSettings(FarnebackSettings):
    """Farnebäck optical flow parameters and the track checks built on it."""

    forward_backward_threshold: float = 1.0
    """A track step is occluded when going forward then back misses the start by more than this (pixels)."""
    max_drift: float = 2.0
    """A track is broken once its forward-backward errors add up to more than this (pixels)."""


def dense_flow(rgb_from: np.ndarray, rgb_to: np.ndarray, settings: FlowSettings) -> np.ndarray:
    """float32 [H, W, 2] displacement of each pixel of ``rgb_from`` into ``rgb_to``."""
    a, b = (cv2.cvtColor(img, cv2.COLOR_RGB2GRAY) for img in (rgb_from, rgb_to))
    return farneback_flow(a, b, settings)


def sample(field: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """Bilinear samples [P, C] of a per-pixel field [H, W, C] at pixel coordinates uv [P, 2]."""
    maps = (uv - 0.5).astype(np.float32).reshape(-1, 1, 2)
    out = cv2.remap(field, maps, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return out.reshape(len(uv), -1)


def pixel_grid(width: int, height: int, stride: int = 1) -> Tuple[np.ndarray, np.ndarray]:
    """(rows, cols) integer indices of a grid with ``stride`` spacing, each [h, w]."""
    return np.mgrid[0:height:stride, 0:width:stride]


def rigid_flow(
    depth: np.ndarray, K_from: np.ndarray, w2c_from: np.ndarray, K_to: np.ndarray, w2c_to: np.ndarray
) -> np.ndarray:
    """[H, W, 2] flow of a static scene with z-depth ``depth`` [H, W] between two cameras of the
    same image size (NaN where the depth is unknown or the pixel leaves the image)."""
    height, width = depth.shape
    rows, cols = pixel_grid(width, height)
    uv = np.stack([cols + 0.5, rows + 0.5], axis=-1).reshape(-1, 2)
    z = depth.reshape(-1).astype(np.float64)
    cam = np.concatenate([(uv - K_from[:2, 2]) / np.diag(K_from)[:2], np.ones((len(uv), 1))], axis=1) * z[:, None]
    world = (cam - w2c_from[:3, 3]) @ w2c_from[:3, :3]
    uv_to, z_to = project(apply_transform(w2c_to, world), K_to)
    inside = (uv_to[:, 0] >= 0) & (uv_to[:, 0] < width) & (uv_to[:, 1] >= 0) & (uv_to[:, 1] < height)
    flow = np.where(((z > 0) & (z_to > 0) & inside)[:, None], uv_to - uv, np.nan)
    return flow.reshape(height, width, 2).astype(np.float32)


def motion_mask(flow: np.ndarray, rigid: np.ndarray, threshold: float) -> np.ndarray:
    """bool [H, W]: flow disagrees with the rigid flow by more than ``threshold`` pixels (known
    depth only), cleaned of specks and holes by a morphological opening and closing."""
    residual = np.linalg.norm(flow - rigid, axis=-1)
    return clean_mask(np.nan_to_num(residual, nan=0.0) > threshold)


def clean_mask(moving: np.ndarray) -> np.ndarray:
    """bool [H, W] ``moving`` without specks (3×3 opening) and holes (closing, twice)."""
    kernel = np.ones((3, 3), np.uint8)
    moving = cv2.morphologyEx(moving.astype(np.uint8), cv2.MORPH_OPEN, kernel)
    return cv2.morphologyEx(moving, cv2.MORPH_CLOSE, kernel, iterations=2).astype(bool)


def query_points(mask: np.ndarray, stride: int) -> np.ndarray:
    """Pixel centres [P, 2] of a ``stride`` grid inside ``mask`` (Shape of Motion's query points)."""
    rows, cols = pixel_grid(mask.shape[1], mask.shape[0], stride)
    keep = mask[rows, cols]
    return np.stack([cols[keep] + 0.5, rows[keep] + 0.5], axis=1).astype(np.float64)


def chain_tracks(
    points: np.ndarray,
    query: int,
    forward: Sequence[np.ndarray],
    backward: Sequence[np.ndarray],
    size: Tuple[int, int],
    settings: FlowSettings,
) -> np.ndarray:
    """[F, P, 4] tracks (u, v, occlusion logit, expected-distance logit) of ``points`` [P, 2] of
    frame ``query`` in every frame, through ``forward[t]`` (flow t → t+1) and ``backward[t]``
    (flow t+1 → t); logits as in the module docstring."""
    num_frames = len(forward) + 1
    out = np.zeros((num_frames, len(points), 4))
    out[query, :, :2] = points
    out[query, :, 2:] = VISIBLE
    for step, there, back in ((1, forward, backward), (-1, backward, forward)):
        uv = points.copy()
        broken = np.zeros(len(points), dtype=bool)
        drift = np.zeros(len(points))
        t = query
        while 0 <= t + step < num_frames:
            pair = t if step > 0 else t - 1  # flows between frames t and t + step are stored at index min(t, t + step)
            moved = uv + sample(there[pair], uv)
            error = np.linalg.norm(moved + sample(back[pair], moved) - uv, axis=1)
            inside = (moved[:, 0] >= 0) & (moved[:, 0] < size[0]) & (moved[:, 1] >= 0) & (moved[:, 1] < size[1])
            drift += error
            occluded = ~inside | (error > settings.forward_backward_threshold) | (drift > settings.max_drift)
            t += step
            out[t, :, :2] = moved
            out[t, :, 2:] = np.where(occluded[:, None], OCCLUDED, VISIBLE)
            out[t, broken, 2:] = LOST
            broken |= occluded
            uv = moved
    return out
