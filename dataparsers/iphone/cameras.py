"""Per-frame cameras of an iPhone scene: DyCheck's camera/<frame>.json files and Shape of Motion's
refined COLMAP model (read and written with pycolmap). Both give intrinsics at 1x resolution and an
OpenCV world -> camera pose; DyCheck's pixel convention is ours (centres at +0.5)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Sequence

import numpy as np
import pycolmap

from dataparsers.camera_conventions import require_finite, require_rotation
from dataparsers.colmap_sfm import colmap_intrinsics, image_w2c
from dataparsers.errors import DatasetFormatError
from dataparsers.iphone.colmap_files import require_complete_model
from dataparsers.iphone.scene_files import listed, read_json, require_fields
from splat4d.geometry import camera_centres

CAMERA_FIELDS = (
    "orientation",
    "position",
    "focal_length",
    "principal_point",
    "skew",
    "pixel_aspect_ratio",
    "radial_distortion",
    "tangential_distortion",
    "image_size",
)


@dataclass
class FrameCamera:
    """One frame's camera at 1x resolution."""

    K: np.ndarray  # [3, 3]
    w2c: np.ndarray  # [4, 4] world -> camera, OpenCV axes
    width: int
    height: int
    distortion: np.ndarray  # [5] OpenCV (k1, k2, p1, p2, k3)

    @property
    def center(self) -> np.ndarray:
        return camera_centres(self.w2c)


def w2c_matrix(rotation: np.ndarray, center: np.ndarray) -> np.ndarray:
    w2c = np.eye(4)
    w2c[:3, :3] = rotation
    w2c[:3, 3] = -rotation @ center
    return w2c


def read_camera_json(path: Path) -> FrameCamera:
    record = read_json(path)
    require_fields(path, record, CAMERA_FIELDS)
    try:
        return camera_from_record(path, record)
    except DatasetFormatError:
        raise
    except (TypeError, ValueError) as err:
        raise DatasetFormatError(path, f"has a malformed camera field ({err})") from err


def camera_from_record(path: Path, record: Dict[str, Any]) -> FrameCamera:
    rotation = require_rotation(path, "orientation", np.asarray(record["orientation"], dtype=np.float64))
    position = require_finite(path, "position", record["position"])
    focal = float(record["focal_length"])
    cx, cy = require_finite(path, "principal_point", record["principal_point"])
    if abs(float(record["skew"])) > 1e-9:
        raise DatasetFormatError(path, f"has skew {record['skew']}; only skew 0 is supported")
    k1, k2, k3 = require_finite(path, "radial_distortion", record["radial_distortion"])
    p1, p2 = require_finite(path, "tangential_distortion", record["tangential_distortion"])
    width, height = (int(v) for v in record["image_size"])
    K = np.array([[focal, 0.0, cx], [0.0, focal * float(record["pixel_aspect_ratio"]), cy], [0.0, 0.0, 1.0]])
    return FrameCamera(K, w2c_matrix(rotation, position), width, height, np.array([k1, k2, p1, p2, k3]))


def camera_json(cam: FrameCamera) -> Dict[str, Any]:
    """DyCheck's camera/<frame>.json record of ``cam`` (fx, fy as focal_length and aspect ratio)."""
    k1, k2, p1, p2, k3 = (float(v) for v in cam.distortion)
    return {
        "orientation": cam.w2c[:3, :3].tolist(),
        "position": cam.center.tolist(),
        "focal_length": float(cam.K[0, 0]),
        "principal_point": [float(cam.K[0, 2]), float(cam.K[1, 2])],
        "skew": 0.0,
        "pixel_aspect_ratio": float(cam.K[1, 1] / cam.K[0, 0]),
        "radial_distortion": [k1, k2, k3],
        "tangential_distortion": [p1, p2],
        "image_size": [cam.width, cam.height],
    }


def read_colmap_cameras(sparse_dir: Path, frames: Sequence[str]) -> Dict[str, FrameCamera]:
    """Cameras of the images named ``<frame>.png`` in a COLMAP model (COLMAP units)."""
    require_complete_model(sparse_dir)
    try:
        model = pycolmap.Reconstruction(str(sparse_dir))
    except Exception as err:  # pycolmap raises plain exceptions for unreadable models
        raise DatasetFormatError(sparse_dir, f"cannot be read as a COLMAP model ({err})") from err
    by_name = {image.name: image for image in model.images.values()}
    missing = [f for f in frames if f"{f}.png" not in by_name]
    if missing:
        raise DatasetFormatError(sparse_dir, f"has no registered image for frames {listed(missing)}")
    cameras = {}
    for frame in frames:
        image = by_name[f"{frame}.png"]
        camera = model.cameras[image.camera_id]
        try:
            K, distortion = colmap_intrinsics(camera)
        except ValueError as err:
            raise DatasetFormatError(sparse_dir, f"{image.name}: {err}") from err
        cameras[frame] = FrameCamera(K, image_w2c(image), camera.width, camera.height, distortion)
    return cameras


def write_colmap_cameras(sparse_dir: Path, cameras: Dict[str, FrameCamera]) -> None:
    """A COLMAP model with one OPENCV camera and one image ``<frame>.png`` per frame (no points)."""
    model = pycolmap.Reconstruction()
    for image_id, (frame, cam) in enumerate(cameras.items(), start=1):
        k1, k2, p1, p2, k3 = cam.distortion
        if k3:
            raise ValueError(f"COLMAP's OPENCV model has no k3 (frame {frame} has k3 = {k3})")
        params = [cam.K[0, 0], cam.K[1, 1], cam.K[0, 2], cam.K[1, 2], k1, k2, p1, p2]
        model.add_camera_with_trivial_rig(
            pycolmap.Camera(model="OPENCV", width=cam.width, height=cam.height, params=params, camera_id=image_id)
        )
        image = pycolmap.Image(name=f"{frame}.png", camera_id=image_id, image_id=image_id)
        model.add_image_with_trivial_frame(image, pycolmap.Rigid3d(cam.w2c[:3]))
    sparse_dir.mkdir(parents=True, exist_ok=True)
    model.write(str(sparse_dir))
