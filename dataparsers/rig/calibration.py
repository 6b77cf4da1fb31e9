"""Calibration of a static rig with pycolmap structure-from-motion.

Each camera contributes one image: the per-pixel temporal median of frames sampled across its
video, which keeps what is static and removes what moves (people, objects) so that it neither
produces matches nor needs a mask. The cameras never move, so one image per camera gives exactly
one pose per camera; intrinsics (OpenCV model by default) are shared by all cameras or one set
per camera. Features are affine-adapted SIFT with domain-size pooling (rig views differ by wide
baselines), matched exhaustively with guided matching, then incremental mapping. Intrinsics are
returned at each video's full resolution; the reprojection error of every camera is measured on
its own observations.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Sequence

import numpy as np
import pycolmap

from dataparsers.colmap_sfm import (
    SfmSettings,
    colmap_intrinsics,
    extract_features,
    image_w2c,
    incremental_mapping,
    matching_options,
    registered_images,
)
from dataparsers.easyvolcap_calibration import Calibration
from dataparsers.images import write_rgb
from splat4d.geometry import camera_centres


class CalibrationError(RuntimeError):
    """Structure-from-motion could not calibrate every camera."""


@dataclass
class CalibrationSettings(SfmSettings):
    """How the rig is calibrated (camera model, features, threads and seed: SfmSettings)."""

    shared_intrinsics: bool = True
    """All cameras are the same model at the same zoom and focus: one set of intrinsics for all.
    False gives every camera its own intrinsics (a mixed rig); with one image per camera that is
    only well conditioned with many cameras and strong texture (on an 8-camera 320×240 test rig
    the focal lengths drift by 10 % and more)."""


@dataclass
class CameraCalibration:
    calibration: Calibration
    """K and distortion at the video's resolution, w2c in the SfM frame (OpenCV axes)."""
    reprojection_error: float
    """Mean reprojection error of the camera's observations, in pixels at the SfM image's resolution."""
    num_points: int
    """3D points the camera observes."""


def median_plate(samples: np.ndarray) -> np.ndarray:
    """[H, W, 3] uint8 per-pixel temporal median of frames [S, H, W, 3]."""
    return np.median(samples, axis=0).round().astype(np.uint8)


def calibrate(
    plates: Dict[str, np.ndarray], video_sizes: Dict[str, tuple], work: Path, settings: CalibrationSettings
) -> Dict[str, CameraCalibration]:
    """Calibrate the cameras from their plates (RGB uint8, any resolution with the video's aspect);
    ``video_sizes`` are the (W, H) the intrinsics are returned for. COLMAP's files go to ``work``."""
    shutil.rmtree(work, ignore_errors=True)
    images = work / "images"
    images.mkdir(parents=True)
    for name, plate in plates.items():
        write_rgb(images / f"{name}.png", plate)
    database = work / "database.db"
    # rig views differ by wide baselines: affine-adapted, scale-pooled descriptors match better
    extract_features(database, images, settings, settings.shared_intrinsics, affine=True)
    pycolmap.match_exhaustive(
        database, matching_options=matching_options(settings, guided=True), device=pycolmap.Device.cpu
    )

    def few_views(mapping: pycolmap.IncrementalPipelineOptions) -> None:
        # a rig gives one image per camera, so accept registrations on fewer matches than COLMAP's
        # defaults (tuned for photo collections with many redundant views)
        mapping.mapper.abs_pose_min_num_inliers = 15
        mapping.mapper.abs_pose_min_inlier_ratio = 0.1
        mapping.mapper.init_min_num_inliers = 50

    model = incremental_mapping(database, images, work / "sparse", settings, few_views)
    if model is None:
        raise CalibrationError(
            f"structure-from-motion found no two cameras with enough matching static content "
            f"(cameras {sorted(plates)}); the views need to overlap and see textured, static surfaces"
        )
    registered = {name[: -len(".png")]: image for name, image in registered_images(model).items()}
    missing = sorted(set(plates) - set(registered))
    if missing:
        raise CalibrationError(
            f"structure-from-motion could not place cameras {missing} (placed {sorted(registered)}): "
            "they share too little static, textured content with the others"
        )
    return {name: _camera_calibration(model, registered[name], video_sizes[name]) for name in plates}


def _camera_calibration(
    model: pycolmap.Reconstruction, image: pycolmap.Image, video_size: Sequence[int]
) -> CameraCalibration:
    camera = model.cameras[image.camera_id]
    K, distortion = colmap_intrinsics(camera, (int(video_size[0]), int(video_size[1])))
    w2c = image_w2c(image)
    observed = [p for p in image.points2D if p.has_point3D()]
    errors: List[float] = []
    if observed:
        xyz = np.array([model.points3D[p.point3D_id].xyz for p in observed])
        in_camera = xyz @ w2c[:3, :3].T + w2c[:3, 3]
        projected = np.asarray(camera.img_from_cam(in_camera))
        errors = np.linalg.norm(projected - np.array([p.xy for p in observed]), axis=1).tolist()
    return CameraCalibration(
        Calibration(K=K, distortion=distortion, w2c=w2c, width=int(video_size[0]), height=int(video_size[1])),
        float(np.mean(errors)) if errors else float("nan"),
        len(observed),
    )


def apply_metric_scale(cameras: Dict[str, CameraCalibration], first: str, second: str, distance: float) -> float:
    """Scale the reconstruction so that the centres of cameras ``first`` and ``second`` are
    ``distance`` apart (in place); returns the factor applied."""
    for name in (first, second):
        if name not in cameras:
            raise ValueError(f"known_distance names camera {name!r}, which is not among {sorted(cameras)}")
    if not distance > 0:
        raise ValueError(f"known_distance must be positive, got {distance}")
    centres = {name: camera_centres(cam.calibration.w2c) for name, cam in cameras.items()}
    measured = float(np.linalg.norm(centres[first] - centres[second]))
    if measured <= 1e-12:
        raise ValueError(f"cameras {first} and {second} coincide in the reconstruction; pick two apart")
    factor = distance / measured
    for cam in cameras.values():
        cam.calibration.w2c[:3, 3] *= factor
    return factor
