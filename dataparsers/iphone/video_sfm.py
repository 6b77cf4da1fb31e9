"""Camera poses and intrinsics of a monocular video by pycolmap structure-from-motion on its
static parts (``splat4d-preprocess-video --poses colmap``).

Up to ``max_images`` frames, evenly spaced (the first and last included), are reconstructed with
one shared camera: SIFT features outside each frame's motion mask (epipolar_masks.py: flow to the
adjacent video frame that the camera motion does not explain), sequential matching, incremental
mapping. The other frames, and SfM frames that could not be registered, get poses interpolated
between the registered frames around them (pose_interpolation.py). Intrinsics and the registered
frames' observations of the 3D points are returned at the video's resolution (pixel centres at
+0.5, COLMAP's convention and ours).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Sequence

import cv2
import numpy as np
import pycolmap
import torch

from dataparsers import colmap_sfm as colmap
from dataparsers.iphone.epipolar_masks import EpipolarMaskSettings, epipolar_motion_mask
from dataparsers.iphone.optical_flow import FlowSettings
from dataparsers.iphone.pose_interpolation import interpolate_poses

Tick = Callable[[], None]


class VideoSfmError(RuntimeError):
    """Structure-from-motion could not pose the video."""


@dataclass
class VideoSfmSettings(colmap.SfmSettings):
    """Structure-from-motion of the video's frames (one camera shared by all frames)."""

    camera_model: colmap.CameraModel = "SIMPLE_RADIAL"
    """COLMAP camera model of the video's camera (SIMPLE_RADIAL: f, cx, cy, k; OPENCV for strong
    distortion; PINHOLE for undistorted video)."""
    max_images: int = 150
    """At most this many frames, evenly spaced, are reconstructed; the others are interpolated."""
    max_size: int = 1600
    """Longer side of the images structure-from-motion sees (pixels)."""
    overlap: int = 10
    """Each SfM frame is matched with the next this many (sequential matching)."""
    min_registered: float = 0.5
    """Fraction of the SfM frames that must be registered (the rest are interpolated)."""
    mask_motion: bool = True
    """Keep features out of moving regions (epipolar motion masks)."""
    masks: EpipolarMaskSettings = field(default_factory=EpipolarMaskSettings)


@dataclass
class VideoSfm:
    """Poses of every used frame and the sparse static scene, in the reconstruction's units."""

    w2c: np.ndarray  # [N, 4, 4] OpenCV world -> camera of every used frame
    K: np.ndarray  # [3, 3] at the video's resolution
    distortion: np.ndarray  # [5] OpenCV (k1, k2, p1, p2, k3)
    registered: np.ndarray  # bool [N]: posed by SfM itself (else interpolated or not an SfM frame)
    points: np.ndarray  # [P, 3] 3D points
    obs_frame: np.ndarray  # int [M] used frame of each observation
    obs_point: np.ndarray  # int [M] its 3D point
    obs_uv: np.ndarray  # [M, 2] its pixel at the video's resolution

    def to_entry(self) -> Dict[str, torch.Tensor]:
        return {name: torch.from_numpy(np.ascontiguousarray(value)) for name, value in vars(self).items()}

    @classmethod
    def from_entry(cls, entry: Dict[str, torch.Tensor]) -> "VideoSfm":
        return cls(**{name: value.numpy() for name, value in entry.items()})


def sfm_frames(num_frames: int, max_images: int) -> np.ndarray:
    """Indices of the used frames that SfM reconstructs: all, or ``max_images`` evenly spaced
    including the first and the last."""
    if max_images < 2:
        raise ValueError(f"sfm.max_images must be at least 2, got {max_images}")
    return np.unique(np.linspace(0, num_frames - 1, min(num_frames, max_images)).round().astype(int))


def static_masks(
    frames: Sequence[np.ndarray], subset: np.ndarray, flow: FlowSettings, settings: EpipolarMaskSettings, tick: Tick
) -> np.ndarray:
    """bool [S, H, W] motion masks of the frames ``subset`` (flow to the next used frame; the last
    frame's to the previous)."""
    masks = []
    for i in subset:
        other = i + 1 if i + 1 < len(frames) else i - 1
        masks.append(epipolar_motion_mask(frames[i], frames[other], flow, settings))
        tick()
    return np.stack(masks)


def reconstruct(
    frames: Sequence[np.ndarray], subset: np.ndarray, masks: np.ndarray, settings: VideoSfmSettings
) -> VideoSfm:
    """Structure-from-motion of ``frames[subset]`` (features outside ``masks`` [S, H, W] where they
    move), poses of every frame of ``frames``."""
    height, width = frames[0].shape[:2]
    scale = min(1.0, settings.max_size / max(width, height))
    sfm_size = (max(1, round(width * scale)), max(1, round(height * scale)))
    with tempfile.TemporaryDirectory(prefix="splat4d-sfm-") as scratch:
        work = Path(scratch)
        images, mask_dir = work / "images", work / "masks"
        images.mkdir()
        mask_dir.mkdir()
        for k, i in enumerate(subset):
            name = f"{k:05d}.png"
            cv2.imwrite(str(images / name), cv2.resize(frames[i], sfm_size, interpolation=cv2.INTER_AREA)[..., ::-1])
            static = np.where(masks[k], 0, 255).astype(np.uint8)
            cv2.imwrite(str(mask_dir / f"{name}.png"), cv2.resize(static, sfm_size, interpolation=cv2.INTER_NEAREST))
        database = work / "database.db"
        colmap.extract_features(database, images, settings, True, mask_dir if settings.mask_motion else None)
        pairing = pycolmap.SequentialPairingOptions()
        pairing.overlap = settings.overlap
        pairing.loop_detection = False  # it needs a vocabulary tree, which would be downloaded
        pycolmap.match_sequential(
            database,
            matching_options=colmap.matching_options(settings),
            pairing_options=pairing,
            device=pycolmap.Device.cpu,
        )
        model = colmap.incremental_mapping(database, images, work / "sparse", settings)
    if model is None:
        raise VideoSfmError(
            f"structure-from-motion could not start a reconstruction from {len(subset)} frames: no two frames "
            "share enough matched static, textured content with enough parallax (move the camera sideways, "
            "film textured surfaces, or raise --sfm.max-images)"
        )
    return video_poses(model, subset, len(frames), (width, height), settings.min_registered)


def video_poses(
    model: pycolmap.Reconstruction, subset: np.ndarray, num_frames: int, size: tuple, min_registered: float
) -> VideoSfm:
    """Poses of all ``num_frames`` used frames (``size`` W, H) from ``model``, whose image
    ``<k:05d>.png`` is used frame ``subset[k]``: registered ones as they are, the others
    interpolated; VideoSfmError when fewer than ``min_registered`` of the subset are registered or
    the first or last used frame is not."""
    by_name = colmap.registered_images(model)
    slots = [k for k in range(len(subset)) if f"{k:05d}.png" in by_name]
    if len(slots) < max(2, min_registered * len(subset)):
        raise VideoSfmError(
            f"structure-from-motion registered only {len(slots)} of {len(subset)} frames (at least "
            f"{max(2, int(np.ceil(min_registered * len(subset))))} are needed, --sfm.min-registered "
            f"{min_registered}); the video needs more static texture or slower camera motion"
        )
    first, last = int(subset[slots[0]]), int(subset[slots[-1]])
    if first > 0 or last < num_frames - 1:
        raise VideoSfmError(
            f"structure-from-motion registered used frames {first} to {last} of 0 to {num_frames - 1} only; "
            f"poses are not extrapolated: use --start / --max-frames to keep frames {first} to {last}"
        )
    images = [by_name[f"{k:05d}.png"] for k in slots]
    known = np.stack([colmap.image_w2c(image) for image in images])
    times = subset[slots]
    w2c = interpolate_poses(times, known, np.arange(num_frames))
    w2c[times] = known
    camera = model.cameras[images[0].camera_id]
    K, distortion = colmap.colmap_intrinsics(camera, size)
    point_ids: Dict[int, int] = {}
    obs_frame: List[int] = []
    obs_point: List[int] = []
    obs_uv: List[np.ndarray] = []
    for t, image in zip(times, images):
        for p in image.points2D:
            if p.has_point3D():
                obs_frame.append(int(t))
                obs_point.append(point_ids.setdefault(int(p.point3D_id), len(point_ids)))
                obs_uv.append(np.asarray(p.xy, dtype=np.float64))
    points = np.zeros((len(point_ids), 3))
    for point_id, index in point_ids.items():
        points[index] = model.points3D[point_id].xyz
    registered = np.zeros(num_frames, dtype=bool)
    registered[times] = True
    uv = np.array(obs_uv).reshape(-1, 2) * np.array([size[0] / camera.width, size[1] / camera.height])
    return VideoSfm(
        w2c, K, distortion, registered, points, np.array(obs_frame, dtype=np.int64), np.array(obs_point, np.int64), uv
    )
