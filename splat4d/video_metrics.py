"""Metrics of a rendered video against its ground truth over time (numpy, 0–1 images [F, H, W, 3]).

- PSNR on dynamic pixels: one PSNR over every (frame, pixel) that the mask marks, pooled;
- PSNR around transient events: the mean per-frame PSNR over the frames within ``radius`` of an
  event (a frame at which something appears, vanishes or changes abruptly), and the same pooled
  over the transient's region only (every pixel a transient object covers in any frame of the
  event's window, so a ghost left where an object vanished counts as much as a late appearance);
- static flicker: the temporal standard deviation of each pixel that is static in the ground truth
  over the whole sequence, averaged over those pixels, on a 0–255 scale (0 for a still image).
"""

from __future__ import annotations

from typing import Iterable, List

import numpy as np
import torch

from splat4d import metrics


def psnr(pred: np.ndarray, gt: np.ndarray) -> float:
    """PSNR in dB of two arrays in [0, 1] (:func:`splat4d.metrics.psnr`, in float64)."""
    return float(metrics.psnr(torch.as_tensor(pred, dtype=torch.float64), torch.as_tensor(gt, dtype=torch.float64)))


def masked_psnr(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray) -> float:
    """PSNR over the pixels where ``mask`` [F, H, W] is set, pooled over frames; NaN if none is."""
    if not mask.any():
        return float("nan")
    return psnr(pred[mask], gt[mask])


def event_window(events: Iterable[int], num_frames: int, radius: int = 2) -> List[int]:
    """Frames within ``radius`` of any event frame, sorted, inside [0, num_frames)."""
    frames = {f + d for f in events for d in range(-radius, radius + 1)}
    return sorted(f for f in frames if 0 <= f < num_frames)


def window_psnr(pred: np.ndarray, gt: np.ndarray, frames: List[int]) -> float:
    """Mean per-frame PSNR over ``frames`` (NaN if there are none)."""
    if not frames:
        return float("nan")
    return float(np.mean([psnr(pred[f], gt[f]) for f in frames]))


def event_region_psnr(
    pred: np.ndarray,
    gt: np.ndarray,
    object_ids: np.ndarray,
    transient_ids: Iterable[int],
    events: Iterable[int],
    radius: int = 2,
) -> float:
    """PSNR pooled over, for each event, the frames within ``radius`` of it and the pixels that one of
    ``transient_ids`` covers in any of those frames (object ids [F, H, W]); NaN if there are none."""
    on_transient = np.isin(object_ids, list(transient_ids))
    preds, gts = [], []
    for frames in (event_window([e], len(pred), radius) for e in events):
        region = on_transient[frames].any(axis=0)
        preds.append(pred[frames][:, region].reshape(-1))
        gts.append(gt[frames][:, region].reshape(-1))
    if sum(p.size for p in preds) == 0:
        return float("nan")
    return psnr(np.concatenate(preds), np.concatenate(gts))


def always_static(object_ids: np.ndarray) -> np.ndarray:
    """[H, W] pixels that show static content (object id −1) in every frame of ids [F, H, W]."""
    return np.all(object_ids < 0, axis=0)


def static_flicker(video: np.ndarray, static: np.ndarray) -> float:
    """Mean over the ``static`` [H, W] pixels of their temporal standard deviation (0–255 scale,
    channels averaged) in ``video`` [F, H, W, 3]."""
    if not static.any():
        return float("nan")
    std = np.asarray(video, np.float64).std(axis=0).mean(axis=-1) * 255.0
    return float(std[static].mean())
