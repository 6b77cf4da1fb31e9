"""DyCheck's annotated keypoints of training frames (keypoint/2x/train/<frame>.json), used to
evaluate long-range correspondence (PCK-T). Small, so they are read at parse time."""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Set

import numpy as np
import torch

from dataparsers.errors import DatasetFormatError
from dataparsers.iphone.layout import IPhoneLayout
from dataparsers.iphone.scene_files import listed, read_json


@dataclass(frozen=True)
class Keypoints:
    """The same N keypoints annotated on K training frames."""

    frame_names: List[str]
    image_indices: torch.Tensor  # [K] int64 training image indices
    points: (
        torch.Tensor
    )  # [K, N, 3] float32 (x, y, visible): pixels of the parser's images (centres +0.5), visible ∈ {0, 1}


def read_keypoints(layout: IPhoneLayout, frames: List[str], factor: int) -> Optional[Keypoints]:
    """Keypoints of the training ``frames`` read at resolution ``factor``, None if there are none."""
    folder = layout.keypoint_dir
    if not folder.is_dir():
        return None
    index = {name: k for k, name in enumerate(frames)}
    files = sorted(folder.glob("*.json"))
    unknown: Set[str] = {p.stem for p in files} - set(index)
    if unknown:
        raise DatasetFormatError(
            folder, f"has keypoints of frames that are not training frames: {listed(sorted(unknown))}"
        )
    points = []
    for path in files:
        rows = np.asarray(read_json(path), dtype=np.float64)
        if rows.ndim != 2 or rows.shape[1] != 3 or not np.all(np.isfinite(rows)):
            raise DatasetFormatError(path, f"should hold finite [[x, y, visible], ...] rows, found shape {rows.shape}")
        if points and rows.shape != points[0].shape:
            raise DatasetFormatError(path, f"has {len(rows)} keypoints but {files[0].name} has {len(points[0])}")
        points.append(rows)
    if not points:
        return None
    stacked = np.stack(points)
    stacked[..., :2] *= 2.0 / factor
    return Keypoints(
        frame_names=[p.stem for p in files],
        image_indices=torch.tensor([index[p.stem] for p in files], dtype=torch.int64),
        points=torch.from_numpy(stacked.astype(np.float32)),
    )
