"""Dynamic masks from optical flow (OpenCV DIS or Farnebäck) between consecutive frames of the
same camera, thresholded on its magnitude, cleaned morphologically, and kept only in regions whose
brightness actually changes (flow noise on textureless areas is dropped).

Masks are kept at the (possibly reduced) flow resolution; :func:`sharptime_ns.init.split.sample_mask`
looks them up with pixel coordinates of the stored image.
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

import cv2
import numpy as np

from sharptime_ns.init.config import MaskConfig
from sharptime_ns.init.images import ImageCache
from splat4d.optical_flow import farneback_flow


def scaled_kernel(size_px: int, scale: float) -> Optional[np.ndarray]:
    """Elliptic structuring element of ``size_px`` stored-image pixels at a resolution ``scale``
    times the stored one; None when it would be smaller than 2 pixels (no operation)."""
    k = int(round(size_px * scale))
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)) if k >= 2 else None


class FlowMasker:
    """Optical-flow magnitude between consecutive frames of one camera → cleaned dynamic mask."""

    def __init__(self, config: MaskConfig) -> None:
        self.config = config
        self._dis = None
        if config.flow_method == "dis":
            presets = {
                "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
                "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
                "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
            }
            self._dis = cv2.DISOpticalFlow_create(presets[config.dis_preset])
        elif config.flow_method != "farneback":
            raise ValueError(f"unknown flow_method {config.flow_method!r} (expected 'dis' or 'farneback')")

    def flow(self, gray_from: np.ndarray, gray_to: np.ndarray) -> np.ndarray:
        """Dense flow [h, w, 2] (pixels of the flow resolution) taking gray_from onto gray_to."""
        if self._dis is not None:
            return self._dis.calc(gray_from, gray_to, None)
        return farneback_flow(gray_from, gray_to, self.config.farneback)

    def evidence(self, gray_from: np.ndarray, gray_to: np.ndarray, full_width: int) -> Tuple[np.ndarray, np.ndarray]:
        """Motion evidence of gray_from's pixels towards gray_to, both [h, w] bool: *moving* (flow
        magnitude above ``flow_threshold`` pixels of the flow resolution) and *changed*
        (brightness change above ``photometric_threshold`` after a box blur of 5 stored pixels)."""
        c = self.config
        flow = self.flow(gray_from, gray_to)
        moving = np.linalg.norm(flow, axis=-1) > c.flow_threshold
        k = max(3, int(round(5 * gray_from.shape[1] / full_width)) | 1)
        changed = cv2.absdiff(cv2.blur(gray_from, (k, k)), cv2.blur(gray_to, (k, k))) > c.photometric_threshold
        return moving, changed

    def mask(self, evidence: Sequence[Tuple[np.ndarray, np.ndarray]], full_width: int) -> np.ndarray:
        """Dynamic mask [h, w] bool from the evidence towards the neighbouring frames.

        ``flow_combine = "min"`` keeps pixels that move towards *both* neighbours (tight: the
        smear into regions the object is about to cover or has just left is rejected);
        ``"max"`` keeps pixels moving towards either. First/last frames have one neighbour.
        After a morphological opening (noise) and closing (holes), connected regions smaller than
        ``min_mask_component`` of the image, or in which less than ``min_changed_fraction`` of the
        pixels change brightness, are dropped: flow in textureless noisy areas (a plain sky or
        wall) is no evidence of motion. The result is dilated by ``mask_dilate``. Morphology
        sizes are pixels of the stored image, converted to the flow resolution.
        """
        c = self.config
        if len(evidence) == 0:
            raise ValueError("need at least one neighbouring frame")
        moving = np.stack([m for m, _ in evidence])
        mask = (moving.all(axis=0) if c.flow_combine == "min" else moving.any(axis=0)).astype(np.uint8)
        changed = np.stack([ch for _, ch in evidence]).any(axis=0)
        scale = mask.shape[1] / full_width

        for op, size in ((cv2.MORPH_OPEN, c.morph_open), (cv2.MORPH_CLOSE, c.morph_close)):
            k = scaled_kernel(size, scale)
            if k is not None:
                mask = cv2.morphologyEx(mask, op, k)
        if mask.any() and (c.min_mask_component > 0 or c.min_changed_fraction > 0):
            n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
            area = stats[:, cv2.CC_STAT_AREA].astype(np.float64)
            changed_area = np.bincount(labels.reshape(-1), weights=changed.reshape(-1).astype(np.float64), minlength=n)
            keep = (area >= c.min_mask_component * mask.size) & (changed_area >= c.min_changed_fraction * area)
            keep[0] = False
            mask = keep[labels].astype(np.uint8)
        k = scaled_kernel(c.mask_dilate, scale)
        if k is not None:
            mask = cv2.dilate(mask, k)
        return mask.astype(bool)


def flow_mask(cache: ImageCache, masker: FlowMasker, k: int, cam: int, num_frames: int, width: int) -> np.ndarray:
    """Flow mask of frame ``k`` of camera ``cam`` from the evidence towards its neighbouring frames."""
    neighbours = [j for j in (k - 1, k + 1) if 0 <= j < num_frames]
    if not neighbours:  # a single frame: nothing moves
        return np.zeros(cache.get_gray(k, cam).shape, bool)
    evidence = [masker.evidence(cache.get_gray(k, cam), cache.get_gray(j, cam), width) for j in neighbours]
    return masker.mask(evidence, width)
