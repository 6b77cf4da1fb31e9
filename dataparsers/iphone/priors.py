"""Per-image priors of one split (depth, motion masks, covisible masks): finding their files, and
loading one image's priors on demand, converted to the parser's conventions.

A prior folder is used for a split when it has a file for at least one of the split's frames; it
must then have one for every frame of the split, and every file in it must belong to a frame of
the scene (else a DatasetFormatError: the names do not match the rgb frames).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Set, Tuple

import cv2
import numpy as np
import torch

from dataparsers.errors import DatasetFormatError
from dataparsers.iphone.scene_files import listed
from splat4d.npy import load_npy


class DepthWarning(UserWarning):
    """Depth maps had NaN/inf values (masked as unknown)."""


def per_frame_files(folder: Path, suffix: str, frames: Sequence[str], known: Set[str]) -> Optional[List[Path]]:
    """``folder/<frame><suffix>`` for every frame of ``frames``, or None when the folder has none of them."""
    if not folder.is_dir():
        return None
    stems = {p.name[: -len(suffix)] for p in folder.iterdir() if p.name.endswith(suffix)}
    unknown = sorted(stems - known)
    if unknown:
        raise DatasetFormatError(
            folder,
            f"has files for frames that are not in the scene (rgb frames are named like "
            f"{next(iter(known))}): {listed(unknown)}",
        )
    missing = [f for f in frames if f not in stems]
    if len(missing) == len(frames):
        return None
    if missing:
        have = len(frames) - len(missing)
        raise DatasetFormatError(
            folder,
            f"has no {suffix} file for frames {listed(missing)} ({have} of this split's {len(frames)} frames have one)",
        )
    return [folder / f"{f}{suffix}" for f in frames]


def read_mask(path: Path, size: Tuple[int, int]) -> np.ndarray:
    """Mask image as float32 [H, W] in [0, 1] at ``size`` (W, H); colour masks use their brightest channel."""
    mask = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if mask is None:
        raise DatasetFormatError(path, "cannot be read as an image")
    if mask.ndim == 3:
        mask = mask[..., :3].max(axis=2)
    mask = mask.astype(np.float32) / np.iinfo(mask.dtype).max
    if (mask.shape[1], mask.shape[0]) != tuple(size):
        mask = cv2.resize(mask, size, interpolation=cv2.INTER_AREA)
    return mask


@dataclass
class DepthPrior:
    """Depth (or disparity) files of a split, converted to z-depth in the parser's world units."""

    files: List[Path]
    disparity: bool
    """The files hold disparity 1/z (aligned Depth Anything) rather than z (lidar)."""
    to_world: float
    """Multiplies a depth in the files' units to give nerfstudio units."""
    min_disparity: float
    """Disparities at or below this are unknown depth."""
    warned: bool = field(default=False, compare=False)

    def load(self, index: int, full_size: Tuple[int, int], size: Tuple[int, int]) -> np.ndarray:
        """float32 [H, W] z-depth at ``size`` (W, H) from a file of ``full_size``; 0 = unknown."""
        path = self.files[index]
        try:
            raw = load_npy(path)
        except (OSError, ValueError) as err:
            raise DatasetFormatError(path, f"cannot be read as a .npy array ({err})") from err
        if raw.ndim == 3 and raw.shape[2] == 1:
            raw = raw[..., 0]
        if raw.ndim != 2 or (raw.shape[1], raw.shape[0]) != tuple(full_size):
            raise DatasetFormatError(
                path,
                f"has shape {raw.shape}; expected [{full_size[1]}, {full_size[0]}] "
                f"(or [{full_size[1]}, {full_size[0]}, 1]) like the 1x image",
            )
        raw = raw.astype(np.float32)
        bad = ~np.isfinite(raw)
        if bad.any():
            if not self.warned:
                warnings.warn(
                    f"{path}: {int(bad.sum())} NaN/inf depth values masked as unknown (further depth maps "
                    f"with NaN/inf are masked without a warning)",
                    DepthWarning,
                    stacklevel=2,
                )
                self.warned = True
            raw[bad] = 0.0
        if self.disparity:
            valid = raw > self.min_disparity
            depth = np.where(valid, 1.0 / np.where(valid, raw, 1.0), 0.0)
        else:
            depth = np.where(raw > 0, raw, 0.0)
        depth = (depth * self.to_world).astype(np.float32)
        if (depth.shape[1], depth.shape[0]) != tuple(size):
            depth = cv2.resize(depth, size, interpolation=cv2.INTER_NEAREST)
        return depth


@dataclass
class FramePriors:
    """Prior files of every image of one split (None: that prior is missing for the split)."""

    full_sizes: List[Tuple[int, int]]
    """(W, H) of each image at 1x, the resolution of the prior files."""
    depth: Optional[DepthPrior]
    motion_masks: Optional[List[Path]]
    covisible_masks: Optional[List[Path]]

    def load(self, index: int, size: Tuple[int, int]) -> Dict[str, torch.Tensor]:
        """Batch fields of image ``index`` at ``size`` (W, H); see IPhoneDataset for their meaning."""
        out = {}
        if self.depth is not None:
            out["depth_image"] = torch.from_numpy(self.depth.load(index, self.full_sizes[index], size))[..., None]
        if self.motion_masks is not None:
            out["motion_mask"] = torch.from_numpy(read_mask(self.motion_masks[index], size))[..., None]
        if self.covisible_masks is not None:
            out["covisible_mask"] = torch.from_numpy(read_mask(self.covisible_masks[index], size) > 0.5)[..., None]
        return out
