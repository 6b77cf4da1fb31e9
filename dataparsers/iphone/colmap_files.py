"""A structural check of a binary COLMAP model before pycolmap reads it.

pycolmap reads past the end of a cut ``.bin`` file without noticing: a cut image name or a count
read from garbage can make it loop for ever (a ``frames.bin`` cut at 30 % hangs pycolmap 4.2).
So every binary file present is walked record by record (counts and sizes only, layouts of
COLMAP's ``ReadRigsBinary`` … ``ReadPoints3DBinary``, little-endian) and must end exactly at its
last record; otherwise a DatasetFormatError names the file. Text models are left to pycolmap.
"""

from __future__ import annotations

import struct
from functools import lru_cache
from pathlib import Path
from typing import Callable, Dict

import pycolmap

from dataparsers.errors import DatasetFormatError

POSE_BYTES = 7 * 8  # quaternion w x y z + translation x y z, doubles
SENSOR_BYTES = 4 + 4  # sensor type (int) + id (uint32)


class _CutShort(Exception):
    pass


class _Records:
    """A cursor over a file's bytes that refuses to read past the end."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def skip(self, size: int) -> None:
        if self.pos + size > len(self.data):
            raise _CutShort
        self.pos += size

    def read(self, fmt: str) -> int:
        size = struct.calcsize(fmt)
        self.skip(size)
        return struct.unpack_from(fmt, self.data, self.pos - size)[0]

    def name(self) -> None:
        end = self.data.find(b"\0", self.pos)
        if end < 0:
            raise _CutShort
        self.pos = end + 1

    def count(self) -> int:
        return self.read("<Q")


@lru_cache(maxsize=None)
def _num_params(model_id: int) -> int:
    create = getattr(pycolmap.Camera, "create_from_model_id", None) or pycolmap.Camera.create
    return len(create(0, pycolmap.CameraModelId(model_id), 1.0, 1, 1).params)


def _cameras(r: _Records) -> None:
    for _ in range(r.count()):
        r.skip(4)  # camera id
        model_id = r.read("<i")
        r.skip(8 + 8)  # width, height
        try:
            params = _num_params(model_id)
        except ValueError as err:
            raise ValueError(f"has unknown camera model id {model_id}") from err
        r.skip(8 * params)


def _rigs(r: _Records) -> None:
    for _ in range(r.count()):
        r.skip(4)  # rig id
        num_sensors = r.read("<I")
        if num_sensors > 0:
            r.skip(SENSOR_BYTES)  # reference sensor
        for _ in range(max(num_sensors - 1, 0)):
            r.skip(SENSOR_BYTES)
            if r.read("<B"):
                r.skip(POSE_BYTES)


def _frames(r: _Records) -> None:
    for _ in range(r.count()):
        r.skip(4 + 4 + POSE_BYTES)  # frame id, rig id, rig from world
        r.skip(r.read("<I") * (SENSOR_BYTES + 8))  # data ids


def _images(r: _Records) -> None:
    for _ in range(r.count()):
        r.skip(4 + POSE_BYTES + 4)  # image id, camera from world, camera id
        r.name()
        r.skip(r.count() * (8 + 8 + 8))  # points2D: x, y, point3D id


def _points3d(r: _Records) -> None:
    for _ in range(r.count()):
        r.skip(8 + 3 * 8 + 3 + 8)  # id, xyz, rgb, error
        r.skip(r.count() * (4 + 4))  # track: image id, point2D index


WALKERS: Dict[str, Callable[[_Records], None]] = {
    "rigs.bin": _rigs,
    "cameras.bin": _cameras,
    "frames.bin": _frames,
    "images.bin": _images,
    "points3D.bin": _points3d,
}


def require_complete_model(sparse_dir: Path) -> None:
    """A DatasetFormatError naming the first binary model file that is cut short or has trailing bytes."""
    for name, walk in WALKERS.items():
        path = sparse_dir / name
        if not path.is_file():
            continue
        records = _Records(path.read_bytes())
        try:
            walk(records)
        except _CutShort:
            raise DatasetFormatError(path, "ends inside a record: the COLMAP model file is cut short") from None
        except ValueError as err:
            raise DatasetFormatError(path, str(err)) from err
        if records.pos != len(records.data):
            extra = len(records.data) - records.pos
            raise DatasetFormatError(path, f"has {extra} bytes after its last record: not a COLMAP {name} file")
