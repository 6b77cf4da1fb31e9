"""Where things are in a DyCheck iPhone scene folder with Shape of Motion's preprocessed priors,
and the conventions of those files (written once here; the parser, the synthetic writer and the
video preprocessing all follow them).

    splits/{train,val}.json     frame_names, time_ids, camera_ids
    extra.json                  fps, factor, bbox, lookat, up
    scene.json                  center, scale, near, far (DyCheck's normalization: (x − center)·scale)
    dataset.json                ids (every frame name), train_ids, val_ids, count, num_exemplars
    metadata.json               per frame name: warp_id (= time id), appearance_id, camera_id
    camera/<frame>.json         orientation, position, focal_length, principal_point, skew,
                                pixel_aspect_ratio, radial_distortion, tangential_distortion, image_size
    rgb/{1x,2x}/<frame>.png     RGBA; alpha 0 marks invalid pixels
    depth/1x/<frame>.npy        lidar z-depth [H, W, 1] (or [H, W]), metres, 0 = no return
    keypoint/2x/train/<frame>.json   [[x, y, visible], ...] annotated keypoints
    flow3d_preprocessed/
        colmap/sparse/{cameras,images}.bin     refined cameras (COLMAP units)
        colmap/scale.npy                       metres per COLMAP unit
        aligned_depth_anything*/1x/<frame>.npy disparity 1/z [H, W]; a name ending in "_colmap" is
                                               aligned to the COLMAP cameras, others to camera/*.json
        track_anything/1x/<frame>.png          motion mask, 255 = moving
        2d_tracks/1x/<q>_<t>.npy               [P, 4] TAPIR tracks of query frame q's points in frame t
        covisible/1x/val/<frame>.png           255 = the val pixel is seen by the training camera
    ground_truth/               synthetic scenes only; never read by the parser

Frame names are ``<camera id>_<time id:05d>``. All priors are stored at 1x resolution.

Pixel conventions. Intrinsics and everything the parser returns use the OpenCV / nerfstudio one:
pixel (i, j) covers [j, j+1) × [i, i+1) and its centre is (j + 0.5, i + 0.5), so coordinates
scale with the image (u' = u · W'/W). Two file formats differ:

- 2D track files (TAPIR output as Shape of Motion writes it): pixel centres at integer
  coordinates, x_file = u − 0.5; rows of <q>_<q>.npy are the query points themselves; column 2
  is the occlusion logit, column 3 the expected-distance logit (both: higher = worse).
- keypoint files: continuous coordinates of the 2x image (u_1x = 2 · u_2x), visible ∈ {0, 1}.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

PREPROCESSED = "flow3d_preprocessed"
ALIGNED_DEPTH_PREFIX = "aligned_depth_anything"
COLMAP_ALIGNED_SUFFIX = "_colmap"
LIDAR = "lidar"


def frame_name(camera_id: int, time_id: int) -> str:
    return f"{camera_id}_{time_id:05d}"


def track_file_to_pixels(xy: np.ndarray, scale: float) -> np.ndarray:
    """Track-file coordinates (1x, integer centres) to pixels of an image ``scale`` × the 1x size."""
    return (np.asarray(xy, dtype=np.float64) + 0.5) * scale


def pixels_to_track_file(uv: np.ndarray) -> np.ndarray:
    """1x pixel coordinates (centres at +0.5) to track-file coordinates."""
    return np.asarray(uv, dtype=np.float64) - 0.5


@dataclass(frozen=True)
class IPhoneLayout:
    """Paths of one scene folder."""

    root: Path

    def split_file(self, split: str) -> Path:
        return self.root / "splits" / f"{split}.json"

    @property
    def extra_file(self) -> Path:
        return self.root / "extra.json"

    @property
    def scene_file(self) -> Path:
        return self.root / "scene.json"

    @property
    def dataset_file(self) -> Path:
        return self.root / "dataset.json"

    @property
    def metadata_file(self) -> Path:
        return self.root / "metadata.json"

    def camera_file(self, frame: str) -> Path:
        return self.root / "camera" / f"{frame}.json"

    def rgb_dir(self, factor: int) -> Path:
        return self.root / "rgb" / f"{factor}x"

    def rgb_file(self, factor: int, frame: str) -> Path:
        return self.rgb_dir(factor) / f"{frame}.png"

    def depth_dir(self, source: str) -> Path:
        """Folder of a depth source: ``lidar`` or the name of an aligned disparity folder."""
        if source == LIDAR:
            return self.root / "depth" / "1x"
        return self.root / PREPROCESSED / source / "1x"

    def aligned_depth_sources(self) -> list[str]:
        """Names of the aligned disparity folders present, sorted."""
        base = self.root / PREPROCESSED
        if not base.is_dir():
            return []
        return sorted(p.name for p in base.glob(f"{ALIGNED_DEPTH_PREFIX}*") if (p / "1x").is_dir())

    @property
    def motion_mask_dir(self) -> Path:
        return self.root / PREPROCESSED / "track_anything" / "1x"

    @property
    def tracks_dir(self) -> Path:
        return self.root / PREPROCESSED / "2d_tracks" / "1x"

    def track_file(self, query: str, target: str) -> Path:
        return self.tracks_dir / f"{query}_{target}.npy"

    @property
    def covisible_dir(self) -> Path:
        return self.root / PREPROCESSED / "covisible" / "1x" / "val"

    @property
    def keypoint_dir(self) -> Path:
        return self.root / "keypoint" / "2x" / "train"

    @property
    def colmap_dir(self) -> Path:
        return self.root / PREPROCESSED / "colmap" / "sparse"

    @property
    def metric_scale_file(self) -> Path:
        return self.root / PREPROCESSED / "colmap" / "scale.npy"

    @property
    def ground_truth_dir(self) -> Path:
        return self.root / "ground_truth"
