"""Reading and writing RGB image files (OpenCV stores BGR)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from dataparsers.errors import DatasetFormatError


def read_rgb(path: Path) -> np.ndarray:
    """uint8 [H, W, 3] RGB image (alpha dropped), or a DatasetFormatError naming the file."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise DatasetFormatError(path, "cannot be read as an image")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def write_rgb(path: Path, rgb: np.ndarray, params: Sequence[int] = ()) -> None:
    """Write a uint8 [H, W, 3] RGB image (format from the suffix, OpenCV ``params``); OSError if it cannot."""
    if not cv2.imwrite(str(path), np.ascontiguousarray(rgb[..., ::-1]), list(params)):
        raise OSError(f"could not write {path}")
