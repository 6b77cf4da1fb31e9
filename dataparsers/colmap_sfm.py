"""pycolmap structure-from-motion pieces shared by ``splat4d-rig`` (one image per static camera)
and ``splat4d-preprocess-video --poses colmap`` (the frames of one moving camera): the settings
both expose, SIFT extraction into a database (optionally masked), incremental mapping, and
reading a camera's intrinsics and an image's pose out of a reconstruction.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Literal, Optional, Tuple

import numpy as np
import pycolmap

CameraModel = Literal["OPENCV", "RADIAL", "SIMPLE_RADIAL", "PINHOLE"]

# COLMAP models we read: name -> how their extra parameters map onto OpenCV (k1, k2, p1, p2, k3)
COLMAP_DISTORTION = {
    "SIMPLE_PINHOLE": lambda extra: np.zeros(5),
    "PINHOLE": lambda extra: np.zeros(5),
    "SIMPLE_RADIAL": lambda extra: np.array([extra[0], 0.0, 0.0, 0.0, 0.0]),
    "RADIAL": lambda extra: np.array([extra[0], extra[1], 0.0, 0.0, 0.0]),
    "OPENCV": lambda extra: np.array([extra[0], extra[1], extra[2], extra[3], 0.0]),
}


@dataclass
class SfmSettings:
    """Structure-from-motion settings."""

    camera_model: CameraModel = "OPENCV"
    """COLMAP camera model (OPENCV: fx, fy, cx, cy, k1, k2, p1, p2; SIMPLE_RADIAL: f, cx, cy, k)."""
    max_features: int = 8192
    """SIFT features per image."""
    num_threads: int = -1
    """CPU threads for COLMAP (-1: all)."""
    seed: int = 0
    """COLMAP's random seed (RANSAC, mapping order), for reproducible reconstructions."""


def extract_features(
    database: Path,
    images: Path,
    settings: SfmSettings,
    shared_intrinsics: bool,
    masks: Optional[Path] = None,
    affine: bool = False,
) -> None:
    """SIFT features of every image in ``images`` into ``database`` (on the CPU). ``masks``: a
    folder with ``<image name>.png`` per image, features are only kept where it is non-zero.
    ``affine``: affine-adapted SIFT with domain-size pooling (for wide baselines)."""
    pycolmap.set_random_seed(settings.seed)
    extraction = pycolmap.FeatureExtractionOptions()
    extraction.num_threads = settings.num_threads
    extraction.sift.max_num_features = settings.max_features
    extraction.sift.estimate_affine_shape = affine
    extraction.sift.domain_size_pooling = affine
    reader = pycolmap.ImageReaderOptions()
    reader.camera_model = settings.camera_model
    if masks is not None:
        reader.mask_path = str(masks)
    pycolmap.extract_features(
        database,
        images,
        camera_mode=pycolmap.CameraMode.SINGLE if shared_intrinsics else pycolmap.CameraMode.PER_IMAGE,
        reader_options=reader,
        extraction_options=extraction,
        device=pycolmap.Device.cpu,
    )


def matching_options(settings: SfmSettings, guided: bool = False) -> pycolmap.FeatureMatchingOptions:
    matching = pycolmap.FeatureMatchingOptions()
    matching.num_threads = settings.num_threads
    matching.guided_matching = guided
    return matching


def incremental_mapping(
    database: Path,
    images: Path,
    sparse: Path,
    settings: SfmSettings,
    configure: Callable[[pycolmap.IncrementalPipelineOptions], None] = lambda options: None,
) -> Optional[pycolmap.Reconstruction]:
    """The reconstruction with the most registered images (one model is grown), or None when
    none could be started; ``configure`` adjusts the mapper's options."""
    mapping = pycolmap.IncrementalPipelineOptions()
    mapping.num_threads = settings.num_threads
    mapping.random_seed = settings.seed
    mapping.multiple_models = False
    configure(mapping)
    sparse.mkdir(parents=True, exist_ok=True)
    models = pycolmap.incremental_mapping(database, images, sparse, mapping)
    return max(models.values(), key=lambda m: m.num_reg_images()) if models else None


def colmap_intrinsics(camera: pycolmap.Camera, size: Optional[Tuple[int, int]] = None) -> Tuple[np.ndarray, np.ndarray]:
    """(K [3, 3], OpenCV distortion [5]) of a COLMAP camera whose model is in COLMAP_DISTORTION
    (ValueError otherwise); ``size`` (W, H): K rescaled from the camera's image size to it."""
    name = camera.model.name
    if name not in COLMAP_DISTORTION:
        raise ValueError(f"camera model {name} is not one of {', '.join(COLMAP_DISTORTION)}")
    K = np.asarray(camera.calibration_matrix(), dtype=np.float64)
    extra = np.asarray(camera.params, dtype=np.float64)[4 if name in ("PINHOLE", "OPENCV") else 3 :]
    if size is not None:
        K[0] *= size[0] / camera.width
        K[1] *= size[1] / camera.height
    return K, COLMAP_DISTORTION[name](extra)


def image_w2c(image: pycolmap.Image) -> np.ndarray:
    """[4, 4] OpenCV world → camera pose of a registered image."""
    pose = image.cam_from_world
    pose = pose() if callable(pose) else pose  # a method since pycolmap 3.12, a property before
    w2c = np.eye(4)
    w2c[:3] = np.asarray(pose.matrix(), dtype=np.float64)
    return w2c


def registered_images(model: pycolmap.Reconstruction) -> Dict[str, pycolmap.Image]:
    """The registered images of ``model`` by file name."""
    return {image.name: image for image in model.images.values() if image.has_pose}
