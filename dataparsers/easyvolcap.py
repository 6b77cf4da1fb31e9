"""EasyVolcap image layout: ``images/<camera>/<frame>.jpg`` with ``intri.yml`` / ``extri.yml``
at the scene root (see :mod:`dataparsers.easyvolcap_calibration`). ENeRF-Outdoor is this
layout with two-digit camera folders and six-digit frame names, 60 fps.

Frames are paired across cameras by sorted file name; every camera must have the same frame
names in the selected range. Distorted images are undistorted (keeping K) into the frame cache.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Type

from PIL import Image

from dataparsers.easyvolcap_calibration import (
    Calibration,
    read_calibration,
    require_calibrated,
    require_calibrated_size,
)
from dataparsers.errors import DatasetFormatError
from dataparsers.multiview_base import CameraStream, MultiViewDataParser, MultiViewDataParserConfig, check_equal_counts
from splat4d.geometry import opencv_w2c_to_opengl_c2w

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
ENERF_CAMERA = re.compile(r"\d\d")
ENERF_FRAME = re.compile(r"\d{6}\.jpg")


@dataclass
class EasyVolcapDataParserConfig(MultiViewDataParserConfig):
    """EasyVolcap layout: <data>/images/<camera>/<frame>.jpg + <data>/intri.yml + <data>/extri.yml."""

    _target: Type = field(default_factory=lambda: EasyVolcapDataParser)
    fps: float = 30.0
    """Frame rate of the image sequences (the layout does not record it)."""


@dataclass
class ENeRFOutdoorDataParserConfig(EasyVolcapDataParserConfig):
    """ENeRF-Outdoor (actor1_4, actor2_3, actor5_6): 18 cameras, 1920×1080, 60 fps,
    <data>/images/NN/NNNNNN.jpg + <data>/intri.yml + <data>/extri.yml."""

    fps: float = 60.0
    """Frame rate of the capture."""
    frame_count: Optional[int] = 300
    """Number of frames used (the usual protocol: the first 300)."""
    test_cameras: Tuple[str, ...] = ("08",)
    """Held-out cameras."""


class EasyVolcapDataParser(MultiViewDataParser):
    config: EasyVolcapDataParserConfig

    def load_streams(self) -> Tuple[List[CameraStream], float]:
        root = self.require_data_folder()
        images = root / "images"
        if not images.is_dir():
            raise DatasetFormatError(
                images, "is missing (EasyVolcap layout: images/<camera>/<frame>.jpg + intri.yml, extri.yml)"
            )
        folders = sorted(p.name for p in images.iterdir() if p.is_dir())
        if not folders:
            raise DatasetFormatError(images, "has no camera folders")
        calibration = read_calibration(root / "intri.yml", root / "extri.yml")
        require_calibrated(root / "extri.yml", calibration, folders, "images/")
        selected = self.selected_cameras(folders, images)
        frames = {c: image_files(images / c)[self.frame_slice()] for c in selected}
        check_equal_counts({images / c: len(files) for c, files in frames.items()})
        check_same_frame_names(images, frames)
        streams = [self._stream(c, frames[c], calibration[c], root / "intri.yml") for c in selected]
        return streams, self.config.fps

    def _stream(self, name: str, files: List[Path], calib: Calibration, intri_path: Path) -> CameraStream:
        try:
            with Image.open(files[0]) as first:
                size = first.size
        except OSError as err:
            raise DatasetFormatError(files[0], f"cannot be read as an image ({err})") from err
        require_calibrated_size(intri_path, name, calib, size, files[0])
        return self.image_stream(
            name,
            files,
            self.config.frame_start,
            size,
            calib.K,
            calib.distortion,
            opencv_w2c_to_opengl_c2w(calib.w2c),
            self.config.fps,
        )


def image_files(folder: Path) -> List[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def check_same_frame_names(images: Path, frames: Dict[str, List[Path]]) -> None:
    """Every camera folder must have the same frame file names (by stem) as the first."""
    reference, *others = frames
    for camera in others:
        for a, b in zip(frames[reference], frames[camera]):
            if a.stem != b.stem:
                raise DatasetFormatError(
                    images / camera,
                    f"has frame {b.name} where images/{reference} has {a.name}: frames must match across cameras",
                )


def is_enerf_outdoor_layout(root: Path) -> bool:
    """Two-digit camera folders holding six-digit .jpg frames, as in ENeRF-Outdoor."""
    folders = [p for p in (root / "images").iterdir() if p.is_dir()]
    return bool(folders) and all(
        ENERF_CAMERA.fullmatch(f.name) and all(ENERF_FRAME.fullmatch(p.name) for p in image_files(f)) for f in folders
    )
