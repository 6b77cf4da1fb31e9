"""Reading image files."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from dataparsers.errors import DatasetFormatError


def read_rgb(path: Path) -> np.ndarray:
    """uint8 [H, W, 3] RGB image (alpha dropped), or a DatasetFormatError naming the file."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise DatasetFormatError(path, "cannot be read as an image")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
