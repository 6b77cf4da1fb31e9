"""EasyVolcap / EasyMocap camera calibration: ``intri.yml`` and ``extri.yml`` in OpenCV FileStorage
YAML, as EasyMocap, EasyVolcap and the datasets built with them (ENeRF-Outdoor, SelfCap) write it.

intri.yml: ``names`` (list of camera names) and per camera ``K_<cam>`` (3×3), optional
``H_<cam>`` / ``W_<cam>`` (image size, integer or real; 0 or −1 means not recorded) and
``D_<cam>`` or ``dist_<cam>`` (OpenCV k1 k2 p1 p2 [k3] as a row or column; k3 = 0 when only
four are given, zeros when absent).
extri.yml: ``names`` and per camera ``R_<cam>`` (Rodrigues 3-vector) and/or ``Rot_<cam>`` (3×3),
and ``T_<cam>`` (3×1): x_cam = R·x_world + T, OpenCV camera axes (x right, y down, z forward).

How this reader resolves what the format leaves open, following the format's own readers
(``read_camera`` in EasyMocap's ``easymocap/mytools/camera_utils.py`` and in EasyVolcap's
``easyvolcap/utils/easy_utils.py``):

- Rotation: ``R_`` wins. Both readers build the rotation from the Rodrigues vector when it is
  there; EasyMocap never reads ``Rot_``, EasyVolcap reads it only when ``R_`` is absent. Their
  writers print ``Rot_`` with 6 or 10 decimals, and other tools with 3, so a ``Rot_`` can be
  ~5e-4 off orthonormal. A Rodrigues vector is a rotation at any precision. When ``Rot_`` is
  used, a matrix within ``ROTATION_TOLERANCE`` of a rotation (max |R·Rᵀ − I|) is replaced by
  the nearest rotation, with a logged note when it was visibly off; a matrix further off, or a
  reflection, is refused. When both keys are present and disagree, a note says ``R_`` is used.
- Distortion: ``D_`` before ``dist_`` (EasyVolcap's order; EasyMocap writes only ``dist_``).
- Cameras: those named in extri.yml; each must also be in intri.yml.
- Refused, as DatasetFormatError naming the file and key: anything OpenCV cannot parse, a key
  that is not the matrix or number it should be (a file cut off mid-entry leaves such keys),
  non-finite values, matrices of the wrong size, non-positive focal lengths, and an optional key
  (H_, W_, D_/dist_, R_, Rot_) present for some cameras of a file but not others (a file cut
  short, or edited by hand).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, Optional, Sequence, Tuple

import cv2
import numpy as np
from nerfstudio.utils.rich_utils import CONSOLE

from dataparsers.camera_conventions import nearest_rotation, rotation_deviation
from dataparsers.errors import DatasetFormatError
from dataparsers.opencv_storage import StorageFile

ROTATION_TOLERANCE = 1e-2
"""Largest max |R·Rᵀ − I| of a ``Rot_`` accepted as a rotation printed with few decimals."""
VISIBLY_OFF = 1e-5
"""A ``Rot_`` further than this from a rotation is re-orthonormalised with a logged note."""


@dataclass
class Calibration:
    K: np.ndarray  # [3, 3]
    distortion: np.ndarray  # [5]
    w2c: np.ndarray  # [4, 4], OpenCV axes
    width: Optional[int] = None
    height: Optional[int] = None


def read_calibration(intri_path: Path, extri_path: Path) -> Dict[str, Calibration]:
    """Every camera named in extri.yml, with its intrinsics from intri.yml (see the module docstring)."""
    with StorageFile(intri_path) as intri, StorageFile(extri_path) as extri:
        intri_names, extri_names = intri.names(), extri.names()
        missing = [n for n in extri_names if n not in intri_names]
        if missing:
            raise DatasetFormatError(intri_path, f"cameras {missing} of {extri_path.name} are missing from it")
        require_same_keys(intri, intri_names, (("H_",), ("W_",), ("D_", "dist_")))
        require_same_keys(extri, extri_names, (("R_",), ("Rot_",)))
        rotations = ExtrinsicRotations(extri)
        cameras = {
            name: Calibration(
                K=intrinsics(intri, name),
                distortion=distortion(intri, name),
                w2c=world_to_camera(extri, name, rotations),
                width=image_size(intri, f"W_{name}"),
                height=image_size(intri, f"H_{name}"),
            )
            for name in extri_names
        }
        rotations.report()
        return cameras


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


def require_same_keys(storage: StorageFile, names: Sequence[str], families: Iterable[Tuple[str, ...]]) -> None:
    """A DatasetFormatError if a camera lacks an optional key (any prefix of a family) that others have."""
    for prefixes in families:
        having = [n for n in names if any(storage.has(f"{p}{n}") for p in prefixes)]
        if having and len(having) < len(names):
            lacking = [n for n in names if n not in having]
            key = "/".join(f"{p}<camera>" for p in prefixes)
            raise DatasetFormatError(
                storage.path,
                f"has {key} for cameras {having} but not for {lacking}: every camera must have the same keys; "
                "is the file complete?",
            )


def required_matrix(storage: StorageFile, key: str, shape: Tuple[int, ...]) -> np.ndarray:
    """The matrix at ``key`` with ``shape`` (a row or column vector when ``shape`` is (n,))."""
    value = storage.matrix(key)
    if value is None:
        raise DatasetFormatError(storage.path, f"has no '{key}'")
    return shaped(storage, key, value, shape)


def shaped(storage: StorageFile, key: str, value: np.ndarray, shape: Tuple[int, ...]) -> np.ndarray:
    vector = len(shape) == 1 and value.ndim == 2 and 1 in value.shape
    if (value.reshape(-1) if vector else value).shape != shape:
        expected = f"a {shape[0]}-vector" if len(shape) == 1 else "×".join(map(str, shape))
        raise DatasetFormatError(storage.path, f"'{key}' has shape {value.shape}, expected {expected}")
    return value.reshape(shape)


def intrinsics(intri: StorageFile, name: str) -> np.ndarray:
    K = required_matrix(intri, f"K_{name}", (3, 3))
    if not (K[0, 0] > 0 and K[1, 1] > 0) or not np.allclose(K[2], [0.0, 0.0, 1.0]):
        raise DatasetFormatError(
            intri.path, f"'K_{name}' is not an intrinsic matrix (positive fx, fy and last row 0 0 1): {K.tolist()}"
        )
    return K


def distortion(intri: StorageFile, name: str) -> np.ndarray:
    """OpenCV (k1, k2, p1, p2, k3) of ``D_`` or ``dist_`` (4 or 5 values), zeros when neither is present."""
    for key in (f"D_{name}", f"dist_{name}"):
        value = intri.matrix(key)
        if value is not None:
            if value.ndim != 2 or 1 not in value.shape or value.size not in (4, 5):
                raise DatasetFormatError(
                    intri.path,
                    f"'{key}' has shape {value.shape}, expected 4 or 5 OpenCV distortion coefficients "
                    "(k1 k2 p1 p2 [k3]) in a row or column",
                )
            return np.concatenate([value.reshape(-1), np.zeros(5 - value.size)])
    return np.zeros(5)


def image_size(intri: StorageFile, key: str) -> Optional[int]:
    """H_ / W_ in pixels, None when absent or not recorded (0 or −1, as EasyMocap / EasyVolcap write it)."""
    value = intri.number(key)
    if value is None or value in (0.0, -1.0):
        return None
    if value < 0 or value != int(value):
        raise DatasetFormatError(intri.path, f"'{key}' is {value:g}, not an image size in pixels")
    return int(value)


def world_to_camera(extri: StorageFile, name: str, rotations: "ExtrinsicRotations") -> np.ndarray:
    w2c = np.eye(4)
    w2c[:3, :3] = rotations.rotation(name)
    w2c[:3, 3] = required_matrix(extri, f"T_{name}", (3,))
    return w2c


class ExtrinsicRotations:
    """Rotations of extri.yml, ``R_`` first (see the module docstring); collects the notes to log."""

    def __init__(self, extri: StorageFile) -> None:
        self.extri = extri
        self.reorthonormalised: Dict[str, float] = {}  # camera -> max |R·Rᵀ − I| of its Rot_
        self.disagreeing: Dict[str, float] = {}  # camera -> largest entry difference of Rot_ and rotation(R_)

    def rotation(self, name: str) -> np.ndarray:
        rvec, matrix = self.extri.matrix(f"R_{name}"), self.extri.matrix(f"Rot_{name}")
        if matrix is not None:
            matrix = shaped(self.extri, f"Rot_{name}", matrix, (3, 3))
        if rvec is not None:
            rotation = cv2.Rodrigues(shaped(self.extri, f"R_{name}", rvec, (3,)))[0]
            if matrix is not None and np.abs(matrix - rotation).max() > ROTATION_TOLERANCE:
                self.disagreeing[name] = float(np.abs(matrix - rotation).max())
            return rotation
        if matrix is None:
            raise DatasetFormatError(
                self.extri.path, f"has neither 'R_{name}' (Rodrigues vector) nor 'Rot_{name}' (rotation matrix)"
            )
        deviation = rotation_deviation(matrix)
        if deviation > ROTATION_TOLERANCE or np.linalg.det(matrix) <= 0:
            raise DatasetFormatError(
                self.extri.path,
                f"'Rot_{name}' is not a rotation matrix (max |R·Rᵀ − I| = {deviation:.2g}, "
                f"det = {np.linalg.det(matrix):.3g}): {matrix.tolist()}",
            )
        if deviation > VISIBLY_OFF:
            self.reorthonormalised[name] = deviation
        return nearest_rotation(matrix)

    def report(self) -> None:
        path = self.extri.path
        if self.reorthonormalised:
            CONSOLE.print(
                f"{path}: Rot_ of cameras {list(self.reorthonormalised)} is up to "
                f"{max(self.reorthonormalised.values()):.1e} from orthonormal (printed with few "
                "decimals); using the nearest rotation"
            )
        if self.disagreeing:
            CONSOLE.print(
                f"[yellow]{path}: Rot_ of cameras {list(self.disagreeing)} differs from the rotation of "
                f"their R_ by up to {max(self.disagreeing.values()):.2g} in an entry; using R_ (the "
                "Rodrigues vector), as EasyMocap and EasyVolcap do"
            )
