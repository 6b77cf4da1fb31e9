"""Per-time-step point clouds by multi-view triangulation with known poses (pycolmap ≥ 3.12 / 4.x).

For one time step: the synchronized images of all cameras go into a fresh COLMAP database
(SIFT, ``pycolmap.extract_features``), are matched (``pycolmap.match_image_pairs``, with
geometric verification) for the pairs of :func:`rig_pairs` (each camera with its nearest rig
neighbours, from the known poses; or all pairs), and ``pycolmap.triangulate_points``
triangulates the verified tracks in a :class:`pycolmap.Reconstruction` holding the known PINHOLE
cameras and the known, fixed ``cam_from_world`` poses (no SfM: poses and intrinsics are never
refined). SIFT extraction and matching run on the GPU when pycolmap is a CUDA build
(``pycolmap.has_cuda``, e.g. ``pycolmap-cuda12``) unless ``sift_gpu="off"``; everything else on the
CPU with ``num_threads`` threads.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple

import cv2
import numpy as np
import pycolmap

from sharptime_ns.init.config import TriangulationConfig
from sharptime_ns.init.timing import timed
from splat4d.geometry import camera_centres


@dataclass
class FramePoints:
    """Points triangulated at one time step; observations in CSR layout."""

    xyz: np.ndarray  # [P, 3] float64 world positions
    colors: np.ndarray  # [P, 3] uint8 RGB
    errors: np.ndarray  # [P] mean reprojection error (pixels)
    track_offsets: np.ndarray  # [P + 1] int64: observations of point i are [offsets[i], offsets[i+1])
    obs_cam: np.ndarray  # [M] int32 camera index of each observation
    obs_xy: np.ndarray  # [M, 2] float64 keypoint position (pixels, OpenCV convention, centres at +0.5)
    descriptors: np.ndarray  # [P, 128] float32 unit-norm mean SIFT descriptor of the track

    @property
    def num_points(self) -> int:
        return int(self.xyz.shape[0])

    @staticmethod
    def empty() -> "FramePoints":
        return FramePoints(
            xyz=np.zeros((0, 3)),
            colors=np.zeros((0, 3), np.uint8),
            errors=np.zeros(0),
            track_offsets=np.zeros(1, np.int64),
            obs_cam=np.zeros(0, np.int32),
            obs_xy=np.zeros((0, 2)),
            descriptors=np.zeros((0, 128), np.float32),
        )

    def subset(self, keep: np.ndarray) -> "FramePoints":
        keep = np.asarray(keep)
        idx = np.flatnonzero(keep) if keep.dtype == bool else keep
        lengths = np.diff(self.track_offsets)[idx]
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        gather = (
            np.concatenate([np.arange(self.track_offsets[i], self.track_offsets[i + 1]) for i in idx])
            if len(idx)
            else np.zeros(0, np.int64)
        )
        return FramePoints(
            xyz=self.xyz[idx],
            colors=self.colors[idx],
            errors=self.errors[idx],
            track_offsets=offsets,
            obs_cam=self.obs_cam[gather],
            obs_xy=self.obs_xy[gather],
            descriptors=self.descriptors[idx],
        )


@contextlib.contextmanager
def quiet_colmap(min_level: int = 2) -> Iterator[None]:
    """Silence COLMAP's glog INFO/WARNING chatter (per-image logs) while inside."""
    try:
        old = pycolmap.logging.minloglevel
        pycolmap.logging.minloglevel = max(int(old), min_level)
    except Exception:  # pragma: no cover - logging API differs across pycolmap versions
        yield
        return
    try:
        yield
    finally:
        pycolmap.logging.minloglevel = old


def use_gpu(config: TriangulationConfig) -> bool:
    """Whether SIFT extraction and matching run on the GPU: pycolmap's CUDA build, unless disabled."""
    if config.sift_gpu not in ("auto", "off"):
        raise ValueError(f"unknown sift_gpu {config.sift_gpu!r} (expected 'auto' or 'off')")
    return config.sift_gpu == "auto" and bool(getattr(pycolmap, "has_cuda", False))


def _device(config: TriangulationConfig) -> pycolmap.Device:
    return pycolmap.Device.cuda if use_gpu(config) else pycolmap.Device.cpu


def rig_pairs(w2c: np.ndarray, neighbors: int) -> List[Tuple[int, int]]:
    """Camera index pairs (i < j) to match: each camera with its ``neighbors`` nearest cameras
    (camera-centre distance, ties broken by the angle between the optical axes), symmetrized;
    all pairs when ``neighbors`` <= 0 or covers every other camera."""
    n = len(w2c)
    if neighbors <= 0 or neighbors >= n - 1:
        return [(i, j) for i in range(n) for j in range(i + 1, n)]
    centres = camera_centres(w2c)
    axes = w2c[:, 2, :3]  # optical axes (camera z) in world coordinates
    distance = np.linalg.norm(centres[:, None] - centres[None], axis=-1)
    angle = np.arccos(np.clip(axes @ axes.T, -1.0, 1.0))
    cost = distance / max(float(np.median(distance[distance > 0])), 1e-12) + 1e-3 * angle
    np.fill_diagonal(cost, np.inf)
    pairs = set()
    for i, row in enumerate(np.argsort(cost, axis=1)[:, :neighbors]):
        pairs.update((min(i, int(j)), max(i, int(j))) for j in row)
    return sorted(pairs)


def first_octave(width: int, height: int, config: TriangulationConfig) -> int:
    """SIFT's first octave for images of this size (see ``VelocityInitConfig.sift_upsample_below``)."""
    side = max(width, height)
    if config.sift_max_image_size > 0:
        side = min(side, config.sift_max_image_size)
    return -1 if side < config.sift_upsample_below else 0


def _extraction_options(config: TriangulationConfig, width: int, height: int) -> pycolmap.FeatureExtractionOptions:
    opts = pycolmap.FeatureExtractionOptions()
    opts.num_threads = config.num_threads
    opts.use_gpu = use_gpu(config)
    opts.max_image_size = config.sift_max_image_size
    opts.sift.max_num_features = config.sift_max_features
    opts.sift.peak_threshold = config.sift_peak_threshold
    opts.sift.first_octave = first_octave(width, height, config)
    return opts


def _matching_options(config: TriangulationConfig) -> pycolmap.FeatureMatchingOptions:
    opts = pycolmap.FeatureMatchingOptions()
    opts.num_threads = config.num_threads
    opts.use_gpu = use_gpu(config)
    opts.guided_matching = config.guided_matching
    return opts


def _verification_options(config: TriangulationConfig, seed: int) -> pycolmap.TwoViewGeometryOptions:
    opts = pycolmap.TwoViewGeometryOptions()
    opts.ransac.random_seed = seed
    opts.ransac.num_threads = 1
    opts.ransac.max_error = config.verification_max_error
    return opts


def _triangulation_options(config: TriangulationConfig, seed: int) -> pycolmap.IncrementalPipelineOptions:
    opts = pycolmap.IncrementalPipelineOptions()
    opts.num_threads = config.num_threads
    opts.random_seed = seed
    opts.extract_colors = True
    opts.ba_refine_focal_length = False
    opts.ba_refine_principal_point = False
    opts.ba_refine_extra_params = False
    opts.mapper.num_threads = config.num_threads
    opts.mapper.random_seed = seed
    opts.mapper.filter_max_reproj_error = config.max_reprojection_error
    opts.mapper.filter_min_tri_angle = config.min_triangulation_angle
    opts.triangulation.random_seed = seed
    opts.triangulation.min_angle = config.min_triangulation_angle
    opts.triangulation.ignore_two_view_tracks = config.ignore_two_view_tracks
    return opts


def triangulate_frame(
    images: List[np.ndarray],
    Ks: np.ndarray,
    w2c: np.ndarray,
    workdir: Path,
    config: TriangulationConfig,
    seed: int,
    timings: Optional[Dict[str, float]] = None,
) -> FramePoints:
    """Triangulate one time step.

    Args:
        images: per camera, uint8 RGB [H, W, 3] (the stored resolution ``Ks`` refers to).
        Ks: [C, 3, 3] intrinsics (pixels); w2c: [C, 4, 4] world → camera (OpenCV axes).
        workdir: an empty scratch folder (database, image copies, output model).
        seed: random seed of RANSAC and the triangulation.
        timings: if given, seconds per stage (features, matching, triangulation) are added to it.
    """
    workdir = Path(workdir)
    image_dir = workdir / "images"
    image_dir.mkdir(parents=True, exist_ok=True)
    names = [f"{c:04d}.png" for c in range(len(images))]
    cam_of_name = {name: c for c, name in enumerate(names)}
    db_path = workdir / "database.db"

    reader = pycolmap.ImageReaderOptions()
    reader.camera_model = "PINHOLE"
    with quiet_colmap():
        with timed(timings, "features"):
            for name, rgb in zip(names, images, strict=True):
                cv2.imwrite(
                    str(image_dir / name), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 1]
                )
            pycolmap.extract_features(
                db_path,
                image_dir,
                image_names=names,
                camera_mode=pycolmap.CameraMode.PER_IMAGE,
                reader_options=reader,
                extraction_options=_extraction_options(config, *_largest_size(images)),
                device=_device(config),
            )
            # The known intrinsics replace COLMAP's guess, in the database (used by the verification).
            with pycolmap.Database.open(db_path) as db:
                db_images = list(db.read_all_images())
                for im in db_images:
                    K = Ks[cam_of_name[im.name]]
                    camera = db.read_camera(im.camera_id)
                    camera.params = [K[0, 0], K[1, 1], K[0, 2], K[1, 2]]
                    db.update_camera(camera)
        with timed(timings, "matching"):
            pairs_path = workdir / "pairs.txt"
            pairs_path.write_text(
                "".join(f"{names[i]} {names[j]}\n" for i, j in rig_pairs(w2c, config.match_neighbors))
            )
            pairing = pycolmap.ImportedPairingOptions()
            pairing.match_list_path = pairs_path
            pycolmap.match_image_pairs(
                db_path,
                matching_options=_matching_options(config),
                pairing_options=pairing,
                verification_options=_verification_options(config, seed),
                device=_device(config),
            )

        with timed(timings, "triangulation"):
            return _triangulate(db_path, image_dir, workdir, w2c, cam_of_name, config, seed)


def _triangulate(
    db_path: Path,
    image_dir: Path,
    workdir: Path,
    w2c: np.ndarray,
    cam_of_name: Dict[str, int],
    config: TriangulationConfig,
    seed: int,
) -> FramePoints:
    """Triangulate the verified matches of the database with the known, fixed cameras."""
    # Known cameras and fixed poses; ids mirror the database (one trivial rig/frame per image).
    reconstruction = pycolmap.Reconstruction()
    keypoints = {}
    descriptors = {}
    with pycolmap.Database.open(db_path) as db:
        db_images = list(db.read_all_images())
        for im in db_images:
            c = cam_of_name[im.name]
            reconstruction.add_camera_with_trivial_rig(db.read_camera(im.camera_id))
            image = pycolmap.Image(name=im.name, camera_id=im.camera_id, image_id=im.image_id)
            reconstruction.add_image_with_trivial_frame(image, pycolmap.Rigid3d(np.asarray(w2c[c][:3, :4], np.float64)))
            keypoints[im.image_id] = np.asarray(db.read_keypoints(im.image_id))[:, :2].astype(np.float64)
            d = np.asarray(db.read_descriptors(im.image_id).data, dtype=np.float32)
            descriptors[im.image_id] = d / np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-12)
    out_dir = workdir / "model"
    out_dir.mkdir(exist_ok=True)
    result = pycolmap.triangulate_points(
        reconstruction,
        db_path,
        image_dir,
        out_dir,
        clear_points=True,
        options=_triangulation_options(config, seed),
        refine_intrinsics=False,
    )
    cam_of_image = {im.image_id: cam_of_name[im.name] for im in db_images}

    xyz, colors, errors, lengths, obs_cam, obs_xy, desc = [], [], [], [], [], [], []
    for point in result.points3D.values():
        elements = point.track.elements
        if len(elements) < config.min_track_length or point.error > config.max_reprojection_error:
            continue
        xyz.append(np.asarray(point.xyz, dtype=np.float64))
        colors.append(np.asarray(point.color, dtype=np.uint8))
        errors.append(float(point.error))
        lengths.append(len(elements))
        d = np.zeros(128, np.float32)
        for el in elements:
            obs_cam.append(cam_of_image[el.image_id])
            obs_xy.append(keypoints[el.image_id][el.point2D_idx])
            d += descriptors[el.image_id][el.point2D_idx]
        desc.append(d / max(float(np.linalg.norm(d)), 1e-12))
    if not xyz:
        return FramePoints.empty()
    return FramePoints(
        xyz=np.stack(xyz),
        colors=np.stack(colors),
        errors=np.asarray(errors),
        track_offsets=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
        obs_cam=np.asarray(obs_cam, dtype=np.int32),
        obs_xy=np.stack(obs_xy),
        descriptors=np.stack(desc).astype(np.float32),
    )


def _largest_size(images: List[np.ndarray]) -> Tuple[int, int]:
    """(width, height) of the largest image."""
    return max((img.shape[1], img.shape[0]) for img in images)
