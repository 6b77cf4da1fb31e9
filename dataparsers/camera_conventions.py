"""Camera conventions shared by the parsers and the synthetic writers.

- OpenCV camera axes: x right, y down, z forward. nerfstudio (OpenGL): x right, y up, z back
  (the conversion: :mod:`splat4d.geometry`).
- Pixel (i, j) covers [j, j+1) × [i, i+1); its centre is (j + 0.5, i + 0.5). Resizing an image
  from W×H to W'×H' maps continuous pixel coordinates u' = u·W'/W, v' = v·H'/H, so the
  intrinsics scale row-wise by the same factors.
"""

from __future__ import annotations

from pathlib import Path
from typing import Tuple, Union

import numpy as np

from dataparsers.errors import DatasetFormatError


def resized_size(width: int, height: int, downscale: float) -> Tuple[int, int]:
    """Image size after dividing the resolution by ``downscale`` (rounded to whole pixels)."""
    return max(1, int(round(width / downscale))), max(1, int(round(height / downscale)))


def scale_intrinsics(K: np.ndarray, sx: float, sy: float) -> np.ndarray:
    """Intrinsics of the image resized by (sx, sy) (pixel-edge coordinates scale exactly)."""
    out = np.array(K, dtype=np.float64)
    out[0] *= sx
    out[1] *= sy
    return out


def require_finite(path: Union[str, Path], what: str, value: np.ndarray) -> np.ndarray:
    """``value`` as float64, or a DatasetFormatError naming ``path`` if it has NaN/inf."""
    arr = np.asarray(value, dtype=np.float64)
    if not np.all(np.isfinite(arr)):
        raise DatasetFormatError(path, f"{what} has non-finite values: {arr.tolist()}")
    return arr


def require_rotation(path: Union[str, Path], what: str, rot: np.ndarray) -> np.ndarray:
    """``rot`` if it is a proper 3×3 rotation (to 1e-4), else a DatasetFormatError."""
    rot = require_finite(path, what, rot)
    if rot.shape != (3, 3) or not np.allclose(rot @ rot.T, np.eye(3), atol=1e-4) or np.linalg.det(rot) < 0:
        raise DatasetFormatError(path, f"{what} is not a rotation matrix: {rot.tolist()}")
    return rot


def rotation_deviation(matrix: np.ndarray) -> float:
    """max |M·Mᵀ − I| of a 3×3 matrix: 0 for a rotation, ~1e-3 for one printed to 3 decimals."""
    return float(np.abs(matrix @ matrix.T - np.eye(3)).max())


def nearest_rotation(matrix: np.ndarray) -> np.ndarray:
    """The rotation closest to a 3×3 matrix in the Frobenius norm (U·Vᵀ of its SVD, det +1)."""
    u, _, vt = np.linalg.svd(matrix)
    if np.linalg.det(u @ vt) < 0:
        u[:, -1] *= -1
    return u @ vt
