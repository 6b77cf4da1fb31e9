"""EasyVolcap camera calibration: ``intri.yml`` and ``extri.yml`` in OpenCV FileStorage format.

intri.yml: ``names`` (list of camera names) and per camera ``K_<cam>`` (3×3), optional
``H_<cam>`` / ``W_<cam>`` (image size), ``D_<cam>`` or ``dist_<cam>`` (OpenCV k1 k2 p1 p2 k3;
zeros when absent).
extri.yml: ``names`` and per camera ``Rot_<cam>`` (3×3) or ``R_<cam>`` (Rodrigues 3×1) and
``T_<cam>`` (3×1): x_cam = R·x_world + T, OpenCV camera axes (x right, y down, z forward).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Tuple

import cv2
import numpy as np

from dataparsers.camera_conventions import require_finite, require_rotation
from dataparsers.errors import DatasetFormatError


@dataclass
class Calibration:
    K: np.ndarray  # [3, 3]
    distortion: np.ndarray  # [5]
    w2c: np.ndarray  # [4, 4], OpenCV axes
    width: Optional[int] = None
    height: Optional[int] = None


def read_calibration(intri_path: Path, extri_path: Path) -> Dict[str, Calibration]:
    """Every camera named in extri.yml, with its intrinsics from intri.yml."""
    intri, extri = _open(intri_path), _open(extri_path)
    try:
        intri_names, extri_names = _names(intri, intri_path), _names(extri, extri_path)
        missing = [n for n in extri_names if n not in intri_names]
        if missing:
            raise DatasetFormatError(intri_path, f"cameras {missing} of {extri_path.name} are missing from it")
        return {name: _camera(intri, intri_path, extri, extri_path, name) for name in extri_names}
    finally:
        intri.release()
        extri.release()


def require_calibrated(
    extri_path: Path, calibration: Dict[str, Calibration], cameras: Iterable[str], where: str
) -> None:
    """A DatasetFormatError naming extri.yml if any of ``cameras`` (found in ``where``) lacks calibration."""
    missing = [c for c in cameras if c not in calibration]
    if missing:
        raise DatasetFormatError(extri_path, f"has no camera {missing} (found in {where})")


def require_calibrated_size(
    intri_path: Path, name: str, calib: Calibration, size: Tuple[int, int], source: Path
) -> None:
    """A DatasetFormatError naming intri.yml if its H_/W_ disagree with the (W, H) of ``source``."""
    if calib.width is not None and calib.height is not None and (calib.width, calib.height) != tuple(size):
        raise DatasetFormatError(
            intri_path, f"says camera {name} is {calib.width}×{calib.height} but {source} is {size[0]}×{size[1]}"
        )


def write_calibration(intri_path: Path, extri_path: Path, cameras: Dict[str, Calibration]) -> None:
    """Write both files the way EasyVolcap does (R_ and Rot_ both present)."""
    intri = cv2.FileStorage(str(intri_path), cv2.FILE_STORAGE_WRITE)
    extri = cv2.FileStorage(str(extri_path), cv2.FILE_STORAGE_WRITE)
    for fs in (intri, extri):
        fs.startWriteStruct("names", cv2.FileNode_SEQ)
        for name in cameras:
            fs.write("", name)
        fs.endWriteStruct()
    for name, cam in cameras.items():
        intri.write(f"K_{name}", np.asarray(cam.K, dtype=np.float64))
        if cam.height is not None and cam.width is not None:
            intri.write(f"H_{name}", int(cam.height))
            intri.write(f"W_{name}", int(cam.width))
        intri.write(f"D_{name}", np.asarray(cam.distortion, dtype=np.float64).reshape(5, 1))
        extri.write(f"R_{name}", cv2.Rodrigues(cam.w2c[:3, :3])[0])
        extri.write(f"Rot_{name}", np.asarray(cam.w2c[:3, :3], dtype=np.float64))
        extri.write(f"T_{name}", np.asarray(cam.w2c[:3, 3:4], dtype=np.float64))
    intri.release()
    extri.release()


def _open(path: Path) -> cv2.FileStorage:
    if not path.is_file():
        raise DatasetFormatError(path, "is missing")
    try:
        fs = cv2.FileStorage(str(path), cv2.FILE_STORAGE_READ)
    except (cv2.error, SystemError) as err:  # OpenCV's parse errors can surface wrapped in SystemError
        cause = err if isinstance(err, cv2.error) else err.__cause__
        where = re.search(r"\((\d+)\): (.+)$", getattr(cause, "func", "") or "")  # "<file>(<line>): <problem>"
        detail = f"line {where[1]}: {where[2]}" if where else str(cause or err).strip()
        raise DatasetFormatError(path, f"is not a readable OpenCV FileStorage YAML file ({detail})") from err
    if not fs.isOpened():
        raise DatasetFormatError(path, "cannot be opened as an OpenCV FileStorage file")
    return fs


def _names(fs: cv2.FileStorage, path: Path) -> List[str]:
    node = fs.getNode("names")
    if node.empty() or not node.isSeq():
        raise DatasetFormatError(path, "has no 'names' list of cameras")
    names = []
    for i in range(node.size()):
        item = node.at(i)
        names.append(item.string() if item.isString() else str(int(item.real())))
    return names


def _matrix(fs: cv2.FileStorage, path: Path, key: str, required: bool = True) -> Optional[np.ndarray]:
    node = fs.getNode(key)
    if node.empty() or node.isNone():
        if required:
            raise DatasetFormatError(path, f"has no '{key}'")
        return None
    value = node.mat() if node.isMap() else np.array([node.real()])
    if value is None:
        raise DatasetFormatError(path, f"'{key}' is not a matrix")
    return require_finite(path, f"'{key}'", value)


def _camera(
    intri: cv2.FileStorage, intri_path: Path, extri: cv2.FileStorage, extri_path: Path, name: str
) -> Calibration:
    K = _matrix(intri, intri_path, f"K_{name}")
    if K.shape != (3, 3):
        raise DatasetFormatError(intri_path, f"'K_{name}' has shape {K.shape}, expected 3×3")
    dist = _matrix(intri, intri_path, f"D_{name}", required=False)
    if dist is None:
        dist = _matrix(intri, intri_path, f"dist_{name}", required=False)
    dist = np.zeros(5) if dist is None else dist.reshape(-1)
    if dist.size != 5:
        raise DatasetFormatError(intri_path, f"distortion of camera {name} has {dist.size} coefficients, expected 5")
    height = _matrix(intri, intri_path, f"H_{name}", required=False)
    width = _matrix(intri, intri_path, f"W_{name}", required=False)
    rot, rot_key = _matrix(extri, extri_path, f"Rot_{name}", required=False), f"Rot_{name}"
    if rot is None:
        rot_key = f"R_{name}"
        rvec = _matrix(extri, extri_path, f"R_{name}").reshape(-1)
        if rvec.size != 3:
            raise DatasetFormatError(extri_path, f"'R_{name}' has {rvec.size} values, expected a Rodrigues 3-vector")
        rot = cv2.Rodrigues(rvec)[0]
    rot = require_rotation(extri_path, f"'{rot_key}'", rot)
    trans = _matrix(extri, extri_path, f"T_{name}").reshape(-1)
    if trans.size != 3:
        raise DatasetFormatError(extri_path, f"'T_{name}' has {trans.size} values, expected 3")
    w2c = np.eye(4)
    w2c[:3, :3], w2c[:3, 3] = rot, trans
    return Calibration(
        K=K,
        distortion=dist,
        w2c=w2c,
        width=None if width is None else int(width[0]),
        height=None if height is None else int(height[0]),
    )
