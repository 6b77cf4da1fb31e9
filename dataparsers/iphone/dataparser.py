"""``iphone``: DyCheck iPhone scenes with Shape of Motion's preprocessed priors (layout: layout.py).

Splits: the ``train`` split (the hand-held camera) trains; ``val`` and ``test`` both give the
``val`` split (the static validation cameras). A missing or empty split file is an error:
evaluation never falls back to training images.

World units: metres for the DyCheck cameras (camera/*.json); refined COLMAP cameras are
multiplied by flow3d_preprocessed/colmap/scale.npy (metres per COLMAP unit) when it exists, else
stay in COLMAP units (metric_scale is then None, and metric depth priors cannot be used).

Normalization (from the training cameras, identical for every split):
    x_ns = s · R · (x − c)
with ``dataparser_transform`` = [R | −R·c] and ``dataparser_scale`` s = scale_factor · scene.json
scale. R turns the mean camera up vector (−y of the OpenCV camera) to +z (identity with
orientation_method none); c is scene.json's center (DyCheck's own normalization, so with R = I
and scale_factor 1 this is DyCheck's normalized world), the mean training camera centre, or 0.
Times: time id / (number of time steps − 1), from metadata.json's warp ids.

Metadata (DataparserOutputs.metadata), per image [N] lists/tensors in image order:
    dataset_type     IPhoneDataset, the dataset that adds the per-image priors to batches
    priors           FramePriors of the split (used by IPhoneDataset)
    frame_names      [N] str;  time_ids, camera_ids: [N] int64 tensors
    num_time_steps   int;  fps: float
    tracks           TrackPairs (train split; None without 2D tracks or for val)
    keypoints        Keypoints (train split; None without keypoints or for val)
    depth_source     "lidar", an aligned disparity folder name, or None
    metric_scale     metres per nerfstudio unit (None when the world is in COLMAP units)
    near, far        scene.json's near / far in nerfstudio units (None when not metric)
    missing_priors   names of the priors this split lacks (each also reported on the console)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Literal, Optional, Set, Tuple, Type

import numpy as np
import torch
from nerfstudio.cameras.cameras import Cameras, CameraType
from nerfstudio.data.dataparsers.base_dataparser import DataParser, DataParserConfig, DataparserOutputs
from nerfstudio.data.scene_box import SceneBox
from nerfstudio.utils.rich_utils import CONSOLE
from PIL import Image

from dataparsers.camera_conventions import resized_size
from dataparsers.errors import DatasetFormatError
from dataparsers.iphone.cameras import FrameCamera, read_camera_json, read_colmap_cameras
from dataparsers.iphone.dataset import IPhoneDataset
from dataparsers.iphone.keypoints import Keypoints, read_keypoints
from dataparsers.iphone.layout import (
    ALIGNED_DEPTH_PREFIX,
    COLMAP_ALIGNED_SUFFIX,
    LIDAR,
    PREPROCESSED,
    IPhoneLayout,
)
from dataparsers.iphone.priors import DepthPrior, FramePriors, per_frame_files
from dataparsers.iphone.scene_files import SceneInfo, SplitFrames, listed, read_scene_info, read_split
from dataparsers.iphone.tracks import TrackPairs, find_track_pairs
from splat4d.geometry import opencv_w2c_to_opengl_c2w, rotation_to_z

Units = Literal["metres", "colmap"]


@dataclass
class IPhoneDataParserConfig(DataParserConfig):
    """DyCheck iPhone scene with Shape of Motion priors (see dataparsers/IPHONE.md)."""

    _target: Type = field(default_factory=lambda: IPhoneDataParser)
    data: Path = Path()
    """Scene folder (camera/, rgb/, splits/, …, flow3d_preprocessed/)."""
    factor: int = 1
    """Image resolution: read rgb/<factor>x/; intrinsics and the 1x priors are scaled to it."""
    cameras: Literal["auto", "refined", "original"] = "auto"
    """Camera source: refined COLMAP cameras (flow3d_preprocessed/colmap/sparse), DyCheck's
    camera/<frame>.json (original), or auto: refined when present."""
    depth: str = "auto"
    """Depth prior: 'lidar' (depth/1x), the name of an aligned disparity folder in
    flow3d_preprocessed (e.g. aligned_depth_anything_colmap), 'none', or 'auto': the aligned
    disparity matching the cameras (…_colmap for refined), else lidar, else any aligned one."""
    min_disparity: float = 1e-3
    """Disparities at or below this are unknown depth (0 in depth_image)."""
    orientation_method: Literal["up", "none"] = "up"
    """Rotate the mean training camera up vector to +z, or keep the world's axes."""
    center_method: Literal["auto", "scene", "poses", "none"] = "auto"
    """Origin: scene.json's center (original cameras only), the mean training camera centre,
    the world origin, or auto: scene for original cameras, poses for refined ones."""
    scale_factor: float = 1.0
    """Multiplies scene.json's scale (which brings the scene to about unit size)."""


@dataclass
class Geometry:
    """Cameras in world units and the normalization of one parse."""

    cameras: Dict[str, FrameCamera]
    refined: bool  # COLMAP cameras rather than camera/*.json
    metric_scale: Optional[float]  # metres per COLMAP unit (scale.npy)
    world: Units
    transform: np.ndarray  # [3, 4]
    scale: float

    @property
    def metres_per_unit(self) -> Optional[float]:
        """Metres per nerfstudio unit, None when the world is in COLMAP units."""
        return None if self.world == "colmap" else 1.0 / self.scale


@dataclass
class SplitPriors:
    frame_priors: FramePriors
    tracks: Optional[TrackPairs]
    keypoints: Optional[Keypoints]
    depth_source: Optional[str]
    missing: Dict[str, str]  # prior name -> where it was looked for


class IPhoneDataParser(DataParser):
    config: IPhoneDataParserConfig
    includes_time = True

    def _generate_dataparser_outputs(self, split: str = "train", **kwargs) -> DataparserOutputs:
        if not self.config.data.is_dir():
            raise DatasetFormatError(self.config.data, "is not a folder")
        layout = IPhoneLayout(self.config.data)
        info = read_scene_info(layout)
        train = read_split(layout, "train", info)
        frames = train if split == "train" else read_split(layout, "val", info)
        geometry = self._geometry(layout, info, train, frames)
        image_files, sizes = self._image_files(layout, frames, geometry.cameras)
        priors = self._priors(layout, info, split, frames, train, geometry, sizes)
        for name, where in priors.missing.items():
            CONSOLE.print(f"[yellow]iphone dataparser, {split} split: no {name} (nothing usable in {where})")
        metres = geometry.metres_per_unit
        return DataparserOutputs(
            image_filenames=image_files,
            cameras=self._cameras(frames, geometry, sizes, info),
            scene_box=self._scene_box(geometry, train, info),
            dataparser_transform=torch.as_tensor(geometry.transform, dtype=torch.float32),
            dataparser_scale=geometry.scale,
            metadata={
                "dataset_type": IPhoneDataset,
                "priors": priors.frame_priors,
                "frame_names": list(frames.frame_names),
                "time_ids": torch.as_tensor(frames.time_ids),
                "camera_ids": torch.as_tensor(frames.camera_ids),
                "num_time_steps": info.num_time_steps,
                "fps": info.fps,
                "tracks": priors.tracks,
                "keypoints": priors.keypoints,
                "depth_source": priors.depth_source,
                "metric_scale": metres,
                "near": None if metres is None else info.near / info.scale / metres,
                "far": None if metres is None else info.far / info.scale / metres,
                "missing_priors": list(priors.missing),
            },
        )

    def _priors(
        self,
        layout: IPhoneLayout,
        info: SceneInfo,
        split: str,
        frames: SplitFrames,
        train: SplitFrames,
        geometry: Geometry,
        sizes: List[Tuple[int, int]],
    ) -> SplitPriors:
        """The split's priors; those it lacks are listed in ``missing``."""
        known = set(info.frames)
        missing: Dict[str, str] = {}
        if geometry.metres_per_unit is None:  # refined cameras without scale.npy: the world is in COLMAP units
            missing["metric_scale"] = str(layout.metric_scale_file)
        depth_source = self._depth_source(layout, geometry.refined)
        depth = self._depth_prior(layout, depth_source, frames, known, geometry)
        if depth is None:
            missing["depth"] = self._depth_dirs_text(layout, depth_source)
        frame_priors = FramePriors(
            full_sizes=[(geometry.cameras[f].width, geometry.cameras[f].height) for f in frames.frame_names],
            depth=depth,
            motion_masks=per_frame_files(layout.motion_mask_dir, ".png", frames.frame_names, known),
            covisible_masks=None
            if split == "train"
            else per_frame_files(layout.covisible_dir, ".png", frames.frame_names, known),
        )
        if frame_priors.motion_masks is None:
            missing["motion_mask"] = str(layout.motion_mask_dir)
        tracks = keypoints = None
        if split == "train":
            pixel_scale = sizes[0][0] / geometry.cameras[train.frame_names[0]].width
            tracks = find_track_pairs(layout, train.frame_names, known, pixel_scale)
            keypoints = read_keypoints(layout, train.frame_names, self.config.factor)
            if tracks is None:
                missing["tracks"] = str(layout.tracks_dir)
            if keypoints is None:
                missing["keypoints"] = str(layout.keypoint_dir)
        elif frame_priors.covisible_masks is None:
            missing["covisible_mask"] = str(layout.covisible_dir)
        return SplitPriors(frame_priors, tracks, keypoints, None if depth is None else depth_source, missing)

    # ----- cameras and normalization -----
    def _geometry(self, layout: IPhoneLayout, info: SceneInfo, train: SplitFrames, frames: SplitFrames) -> Geometry:
        refined = self._use_refined(layout)
        metric_scale = self._metric_scale(layout)
        cameras = self._read_cameras(layout, train.frame_names + frames.frame_names, refined, metric_scale)
        transform, scale = self._normalization(info, [cameras[f] for f in train.frame_names], refined)
        world: Units = "colmap" if refined and metric_scale is None else "metres"
        return Geometry(cameras, refined, metric_scale, world, transform, scale)

    def _use_refined(self, layout: IPhoneLayout) -> bool:
        present = (layout.colmap_dir / "images.bin").is_file()
        if self.config.cameras == "refined" and not present:
            raise DatasetFormatError(layout.colmap_dir / "images.bin", "is missing (cameras='refined' was requested)")
        return self.config.cameras == "refined" or (self.config.cameras == "auto" and present)

    @staticmethod
    def _metric_scale(layout: IPhoneLayout) -> Optional[float]:
        """Metres per COLMAP unit (scale.npy), None when it is missing."""
        path = layout.metric_scale_file
        if not path.is_file():
            return None
        try:
            value = np.load(path, allow_pickle=False).reshape(-1)
        except (ValueError, OSError) as err:
            raise DatasetFormatError(path, f"is not a readable .npy array ({err})") from err
        if value.size != 1 or not np.isfinite(value[0]) or value[0] <= 0:
            raise DatasetFormatError(path, f"should hold one positive number, found {value.tolist()}")
        return float(value[0])

    def _read_cameras(
        self, layout: IPhoneLayout, frames: List[str], refined: bool, metric_scale: Optional[float]
    ) -> Dict[str, FrameCamera]:
        """Cameras of ``frames`` (duplicates allowed) in world units (see the module docstring)."""
        unique = list(dict.fromkeys(frames))
        if not refined:
            return {f: read_camera_json(layout.camera_file(f)) for f in unique}
        cameras = read_colmap_cameras(layout.colmap_dir, unique)
        if metric_scale is not None:
            for cam in cameras.values():
                cam.w2c[:3, 3] *= metric_scale
        return cameras

    def _normalization(
        self, info: SceneInfo, train_cameras: List[FrameCamera], refined: bool
    ) -> Tuple[np.ndarray, float]:
        """([3, 4] transform [R | −R·c], scale s) of the normalization in the module docstring."""
        cfg = self.config
        rotation = np.eye(3)
        if cfg.orientation_method == "up":
            up = -np.mean([cam.w2c[1, :3] for cam in train_cameras], axis=0)
            rotation = rotation_to_z(up / np.linalg.norm(up))
        method = cfg.center_method if cfg.center_method != "auto" else ("poses" if refined else "scene")
        if method == "scene" and refined:
            raise ValueError("center_method 'scene' needs the original cameras: scene.json's center is in their world")
        center = {
            "scene": info.center,
            "poses": np.mean([cam.center for cam in train_cameras], axis=0),
            "none": np.zeros(3),
        }[method]
        transform = np.concatenate([rotation, (-rotation @ center)[:, None]], axis=1)
        return transform, cfg.scale_factor * info.scale

    def _image_files(
        self, layout: IPhoneLayout, frames: SplitFrames, cameras: Dict[str, FrameCamera]
    ) -> Tuple[List[Path], List[Tuple[int, int]]]:
        """rgb/<factor>x files of the split and their (W, H); checks they exist and the first one's size."""
        files = [layout.rgb_file(self.config.factor, f) for f in frames.frame_names]
        missing = [f.name for f in files if not f.is_file()]
        if missing:
            raise DatasetFormatError(layout.rgb_dir(self.config.factor), f"has no image for frames {listed(missing)}")
        sizes = [resized_size(cameras[f].width, cameras[f].height, self.config.factor) for f in frames.frame_names]
        with Image.open(files[0]) as image:
            if image.size != sizes[0]:
                raise DatasetFormatError(
                    files[0],
                    f"is {image.size[0]}×{image.size[1]} but its camera's image_size "
                    f"at factor {self.config.factor} is {sizes[0][0]}×{sizes[0][1]}",
                )
        return files, sizes

    @staticmethod
    def _cameras(frames: SplitFrames, geometry: Geometry, sizes: List[Tuple[int, int]], info: SceneInfo) -> Cameras:
        cams = [geometry.cameras[f] for f in frames.frame_names]
        transform = geometry.transform
        c2w = np.stack([opencv_w2c_to_opengl_c2w(cam.w2c) for cam in cams])
        c2w = np.einsum("ij,njk->nik", transform[:, :3], c2w[:, :3, :])
        c2w[:, :, 3] = geometry.scale * (c2w[:, :, 3] + transform[:, 3])
        K = np.stack([cam.K for cam in cams])
        ratio = np.array([[w / cam.width, h / cam.height] for cam, (w, h) in zip(cams, sizes)])
        distortion = np.stack([cam.distortion for cam in cams])
        k1, k2, p1, p2, k3 = distortion.T
        params = np.stack([k1, k2, k3, np.zeros_like(k1), p1, p2], axis=1)  # nerfstudio's order

        def column(values: np.ndarray, dtype: torch.dtype = torch.float32) -> torch.Tensor:
            return torch.as_tensor(values, dtype=dtype)[:, None]

        return Cameras(
            camera_to_worlds=torch.as_tensor(c2w, dtype=torch.float32),
            fx=column(K[:, 0, 0] * ratio[:, 0]),
            fy=column(K[:, 1, 1] * ratio[:, 1]),
            cx=column(K[:, 0, 2] * ratio[:, 0]),
            cy=column(K[:, 1, 2] * ratio[:, 1]),
            width=column(np.array([w for w, _ in sizes]), torch.int64),
            height=column(np.array([h for _, h in sizes]), torch.int64),
            distortion_params=torch.as_tensor(params, dtype=torch.float32) if np.any(params) else None,
            camera_type=CameraType.PERSPECTIVE,
            times=column(frames.time_ids / max(info.num_time_steps - 1, 1)),
        )

    @staticmethod
    def _scene_box(geometry: Geometry, train: SplitFrames, info: SceneInfo) -> SceneBox:
        """A cube around the origin holding the training cameras and (when metric) their far range."""
        transform = geometry.transform
        centres = np.stack([geometry.cameras[f].center for f in train.frame_names])
        centres = centres @ transform[:, :3].T + transform[:, 3]
        extent = max(1.0, float(np.abs(centres * geometry.scale).max()))
        if geometry.metres_per_unit is not None:
            extent += info.far / info.scale / geometry.metres_per_unit
        return SceneBox(aabb=torch.tensor([[-extent] * 3, [extent] * 3], dtype=torch.float32))

    # ----- depth -----
    def _depth_source(self, layout: IPhoneLayout, refined: bool) -> Optional[str]:
        """The depth source name (see the ``depth`` option), None for no depth."""
        requested = self.config.depth
        if requested == "none":
            return None
        if requested != "auto":
            if requested != LIDAR and not requested.startswith(ALIGNED_DEPTH_PREFIX):
                raise ValueError(
                    f"depth must be auto, none, lidar or a {PREPROCESSED}/{ALIGNED_DEPTH_PREFIX}* folder "
                    f"name, got {requested!r}"
                )
            if not layout.depth_dir(requested).is_dir():
                raise DatasetFormatError(layout.depth_dir(requested), f"is missing (depth={requested!r} was requested)")
            return requested
        matching = ALIGNED_DEPTH_PREFIX + (COLMAP_ALIGNED_SUFFIX if refined else "")
        aligned = layout.aligned_depth_sources()
        if matching in aligned:
            return matching
        if layout.depth_dir(LIDAR).is_dir():
            return LIDAR
        return aligned[0] if aligned else None

    @staticmethod
    def _depth_dirs_text(layout: IPhoneLayout, source: Optional[str]) -> str:
        if source is not None:
            return f"{layout.depth_dir(source)} for this split"
        return f"{layout.depth_dir(LIDAR)} or {layout.root / PREPROCESSED / ALIGNED_DEPTH_PREFIX}*/1x"

    def _depth_prior(
        self, layout: IPhoneLayout, source: Optional[str], frames: SplitFrames, known: Set[str], geometry: Geometry
    ) -> Optional[DepthPrior]:
        """The split's depth files with their conversion to nerfstudio units (None: no depth)."""
        if source is None:
            return None
        files = per_frame_files(layout.depth_dir(source), ".npy", frames.frame_names, known)
        if files is None:
            return None
        units: Units = "colmap" if source.endswith(COLMAP_ALIGNED_SUFFIX) else "metres"
        if units == geometry.world:
            to_world = 1.0
        elif units == "colmap" and geometry.metric_scale is not None:
            to_world = geometry.metric_scale
        else:
            raise DatasetFormatError(
                layout.metric_scale_file,
                f"is needed to use the {units} depth of {layout.depth_dir(source)} with {geometry.world} cameras",
            )
        return DepthPrior(
            files,
            disparity=source != LIDAR,
            to_world=to_world * geometry.scale,
            min_disparity=self.config.min_disparity,
        )
