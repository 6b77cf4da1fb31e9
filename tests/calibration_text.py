"""intri.yml / extri.yml text the way the datasets' own tools print it (not via cv2.FileStorage):

- EasyMocap: ``%YAML:1.0`` header and CRLF line ends, quoted names, matrices with 6 decimals,
  ``dist_`` as a 1×5 row, no image size (its intrinsic calibration writes none; other tools add
  integer ``H_`` / ``W_``), and ``R_`` (Rodrigues), ``Rot_``, ``T_``; some tools print ``Rot_``
  with 3 decimals, which leaves it ~5e-4 off orthonormal.
- EasyVolcap: the same layout with 10 decimals, real ``H_`` / ``W_``, ``D_`` as a 5×1 column.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Literal, Sequence

import cv2
import numpy as np

from dataparsers.easyvolcap_calibration import Calibration

Style = Literal["easymocap", "easyvolcap"]


@dataclass(frozen=True)
class Printing:
    decimals: int = 6
    rot_decimals: int = 6
    extri_keys: Sequence[str] = ("R_", "Rot_", "T_")
    image_size: bool = True


def matrix_lines(key: str, value: np.ndarray, decimals: int) -> List[str]:
    rows, cols = value.shape
    data = ", ".join(f"{v:.{decimals}f}" for v in value.reshape(-1))
    return [f"{key}: !!opencv-matrix", f"  rows: {rows}", f"  cols: {cols}", "  dt: d", f"  data: [{data}]"]


def write_text(path: Path, lines: List[str]) -> None:
    path.write_bytes(("\r\n".join(["%YAML:1.0", "---", *lines]) + "\r\n").encode())


def write_tool_calibration(root: Path, cameras: Dict[str, Calibration], style: Style, printing: Printing) -> None:
    """``root``/intri.yml and ``root``/extri.yml of ``cameras`` printed in ``style``."""
    names = ["names:"] + [f'  - "{name}"' for name in cameras]
    intri, extri = list(names), list(names)
    for name, cam in cameras.items():
        intri += matrix_lines(f"K_{name}", cam.K, printing.decimals)
        if style == "easymocap":
            intri += matrix_lines(f"dist_{name}", cam.distortion.reshape(1, 5), printing.decimals)
            intri += [f"H_{name}: {cam.height}", f"W_{name}: {cam.width}"] if printing.image_size else []
        else:
            intri += [f"H_{name}: {cam.height:.10f}", f"W_{name}: {cam.width:.10f}"]
            intri += matrix_lines(f"D_{name}", cam.distortion.reshape(5, 1), printing.decimals)
        values = {
            "R_": (cv2.Rodrigues(cam.w2c[:3, :3])[0], printing.decimals),
            "Rot_": (cam.w2c[:3, :3], printing.rot_decimals),
            "T_": (cam.w2c[:3, 3:4], printing.decimals),
        }
        for key in printing.extri_keys:
            extri += matrix_lines(f"{key}{name}", *values[key])
    write_text(root / "intri.yml", intri)
    write_text(root / "extri.yml", extri)


EASYMOCAP = Printing(decimals=6, rot_decimals=3, image_size=False)
EASYVOLCAP = Printing(decimals=10, rot_decimals=10)
