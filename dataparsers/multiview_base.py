"""What all multi-view video dataparsers share: camera selection, train/test split by camera,
scene normalization, time normalization and the DataparserOutputs.

A format parser only turns its files into :class:`CameraStream` objects (OpenGL camera-to-world
in the dataset's own world units, intrinsics of the image files, frame files, timestamps).

Scene normalization (computed from all selected cameras, identical for every split):
    x_ns = s · (R · x + t)
with [R | t] = ``dataparser_transform`` from nerfstudio's ``auto_orient_and_center_poses``
(orientation: mean camera up → +z; centre: the focus of the optical axes, the mean camera
centre, or none) and s = ``dataparser_scale`` = scale_factor / max |camera centre coordinate|
(or scale_factor alone without auto scaling).

Times: timestamps in seconds are mapped linearly so the earliest is 0 and the latest is 1.
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, List, Literal, Optional, Sequence, Tuple

import numpy as np
import torch
from nerfstudio.cameras.camera_utils import auto_orient_and_center_poses
from nerfstudio.cameras.cameras import Cameras, CameraType
from nerfstudio.data.dataparsers.base_dataparser import DataParser, DataParserConfig, DataparserOutputs
from nerfstudio.data.scene_box import SceneBox
from nerfstudio.utils.rich_utils import CONSOLE

from dataparsers.camera_conventions import resized_size, scale_intrinsics
from dataparsers.errors import DatasetFormatError
from dataparsers.frame_cache import FramePreparation, ImageFormat, cached_frames, file_signature
from dataparsers.images import read_rgb
from dataparsers.video import VideoInfo, decode_frames


@dataclass
class CameraStream:
    """One camera's frames, ready for nerfstudio."""

    name: str
    K: np.ndarray  # [3, 3] intrinsics of the image files in ``frames``
    c2w: np.ndarray  # [4, 4] camera -> world, nerfstudio (OpenGL) axes, dataset world units
    width: int
    height: int
    frames: List[Path]
    frame_indices: np.ndarray  # [F] frame numbers in the source
    timestamps: np.ndarray  # [F] seconds


@dataclass
class MultiViewDataParserConfig(DataParserConfig):
    """Options shared by the multi-view video dataparsers."""

    data: Path = Path()
    """Scene folder."""
    downscale: float = 1.0
    """Divide the image resolution by this (intrinsics scale with it)."""
    frame_start: int = 0
    """First frame used (index into each camera's frames)."""
    frame_count: Optional[int] = None
    """Number of frames used (None: all). Every camera must have them all."""
    test_cameras: Tuple[str, ...] = ()
    """Cameras held out for evaluation (empty: the first camera in sorted order)."""
    exclude_cameras: Tuple[str, ...] = ()
    """Cameras left out of both splits (e.g. unsynchronized ones)."""
    cache_dir: Optional[Path] = None
    """Where decoded / undistorted / resized frames are cached (None: <data>/splat4d_cache)."""
    cache_format: ImageFormat = "png"
    """Image format of cached frames (png is lossless, jpg smaller)."""
    orientation_method: Literal["up", "none"] = "up"
    """Rotate the world so the mean camera up vector is +z, or keep it."""
    center_method: Literal["focus", "poses", "none"] = "focus"
    """Put the origin at the focus of the optical axes, at the mean camera centre, or keep it."""
    auto_scale_poses: bool = True
    """Scale so the largest camera centre coordinate is scale_factor."""
    scale_factor: float = 1.0
    """Extra scale applied after auto scaling."""


class MultiViewDataParser(DataParser):
    """Splits by camera and normalizes; subclasses read the files (:meth:`load_streams`)."""

    config: MultiViewDataParserConfig
    includes_time = True

    def __init__(self, config: MultiViewDataParserConfig) -> None:
        super().__init__(config)
        self._loaded: Optional[Tuple[List[CameraStream], float]] = None

    @abstractmethod
    def load_streams(self) -> Tuple[List[CameraStream], float]:
        """Streams of the selected cameras (see :meth:`selected_cameras`), sorted by name, and
        the frame rate."""

    @property
    def cache_root(self) -> Path:
        return self.config.cache_dir if self.config.cache_dir is not None else self.config.data / "splat4d_cache"

    def require_data_folder(self) -> Path:
        if not self.config.data.is_dir():
            raise DatasetFormatError(self.config.data, "is not a folder")
        return self.config.data

    def selected_cameras(self, available: Sequence[str], where: Path) -> List[str]:
        """``available`` minus the excluded cameras; checks that the named cameras exist."""
        for option in ("test_cameras", "exclude_cameras"):
            unknown = [c for c in getattr(self.config, option) if c not in available]
            if unknown:
                raise DatasetFormatError(where, f"{option} {unknown} are not among its cameras {sorted(available)}")
        selected = sorted(c for c in available if c not in self.config.exclude_cameras)
        if len(selected) < 2:
            raise DatasetFormatError(where, f"needs at least 2 cameras (a train and a test camera), has {selected}")
        return selected

    def frame_slice(self) -> slice:
        """The configured frame range as a slice of a camera's frame list."""
        count = self.config.frame_count
        return slice(self.config.frame_start, None if count is None else self.config.frame_start + count)

    def video_stream(
        self,
        name: str,
        video: Path,
        info: VideoInfo,
        K: np.ndarray,
        distortion: np.ndarray,
        c2w: np.ndarray,
        time_offset: float = 0.0,
    ) -> CameraStream:
        """A camera whose frames come from ``video`` (K, distortion at the video's resolution),
        decoded into the frame cache; timestamp of frame n = n / fps − time_offset."""
        size = (info.width, info.height)
        prep = FramePreparation(K, distortion, size, resized_size(*size, self.config.downscale))
        frames = decode_frames(video, self.config.frame_start, self.config.frame_count)
        return self._cached_stream(
            name,
            {"source": file_signature(video)},
            prep.apply(frames),
            self.config.frame_count,
            prep,
            c2w,
            info.fps,
            time_offset,
        )

    def image_stream(
        self,
        name: str,
        files: Sequence[Path],
        first_index: int,
        size: Tuple[int, int],
        K: np.ndarray,
        distortion: np.ndarray,
        c2w: np.ndarray,
        fps: float,
    ) -> CameraStream:
        """A camera whose frames are ``files`` (frame numbers first_index, first_index + 1, …),
        used as they are unless they need undistortion or resizing (then cached)."""
        indices = np.arange(first_index, first_index + len(files))
        prep = FramePreparation(K, distortion, size, resized_size(*size, self.config.downscale))
        if not prep.changes_pixels:
            return CameraStream(name, K, c2w, size[0], size[1], list(files), indices, indices / fps)
        key = {"source": [file_signature(f) for f in files]}
        frames = prep.apply(zip(indices.tolist(), map(read_rgb, files)))
        return self._cached_stream(name, key, frames, len(files), prep, c2w, fps, 0.0)

    def _cached_stream(
        self,
        name: str,
        key: Dict,
        frames: Iterable[Tuple[int, np.ndarray]],
        total: Optional[int],
        prep: FramePreparation,
        c2w: np.ndarray,
        fps: float,
        time_offset: float,
    ) -> CameraStream:
        """Stream of prepared ``frames`` written to (or found in) the frame cache."""
        key = {**key, "start": self.config.frame_start, "count": self.config.frame_count, **prep.key()}
        files = cached_frames(
            self.cache_root, name, key, frames, self.config.cache_format, f"Preparing frames of camera {name}", total
        )
        indices = np.array([int(f.stem) for f in files], dtype=np.int64)
        K_out = scale_intrinsics(prep.K, prep.size[0] / prep.source_size[0], prep.size[1] / prep.source_size[1])
        return CameraStream(name, K_out, c2w, prep.size[0], prep.size[1], files, indices, indices / fps - time_offset)

    def _report_short_frame_range(self, available: int) -> None:
        """Say (once per parse) when the cameras hold fewer frames than ``frame_count`` asks for."""
        count, start = self.config.frame_count, self.config.frame_start
        if count is not None and available < count:
            CONSOLE.print(
                f"[yellow]{self.config.data}: frame_count {count} asks for frames {start}–{start + count - 1} "
                f"but the cameras have only {available} from frame {start}: using those {available}"
            )

    def _generate_dataparser_outputs(self, split: str = "train", **kwargs) -> DataparserOutputs:
        if self._loaded is None:
            self._loaded = self.load_streams()
            self._report_short_frame_range(len(self._loaded[0][0].frames))
        streams, fps = self._loaded
        test = set(self.config.test_cameras) or {streams[0].name}
        chosen = [s for s in streams if (s.name in test) != (split == "train")]
        transform, scale = normalization(np.stack([s.c2w for s in streams]), self.config)
        t0 = min(float(s.timestamps.min()) for s in streams)
        t1 = max(float(s.timestamps.max()) for s in streams)

        def per_image(values: List[np.ndarray]) -> torch.Tensor:
            """Stack one value per camera of ``chosen`` into one row per image."""
            return torch.as_tensor(
                np.concatenate([np.repeat(v[None], len(s.frames), axis=0) for v, s in zip(values, chosen)])
            )

        c2w = normalized_poses(per_image([s.c2w for s in chosen]).numpy(), transform, scale)
        intrinsics = per_image([np.array([s.K[0, 0], s.K[1, 1], s.K[0, 2], s.K[1, 2]]) for s in chosen]).float()
        sizes = per_image([np.array([s.width, s.height]) for s in chosen]).long()
        times = np.concatenate([s.timestamps for s in chosen])
        times = (times - t0) / (t1 - t0) if t1 > t0 else np.zeros_like(times)
        cameras = Cameras(
            camera_to_worlds=torch.as_tensor(c2w, dtype=torch.float32),
            fx=intrinsics[:, 0:1],
            fy=intrinsics[:, 1:2],
            cx=intrinsics[:, 2:3],
            cy=intrinsics[:, 3:4],
            width=sizes[:, 0:1],
            height=sizes[:, 1:2],
            camera_type=CameraType.PERSPECTIVE,
            times=torch.as_tensor(times, dtype=torch.float32)[:, None],
        )
        centres = normalized_poses(np.stack([s.c2w for s in streams]), transform, scale)[:, :, 3]
        extent = max(1.0, float(np.abs(centres).max()))
        return DataparserOutputs(
            image_filenames=[f for s in chosen for f in s.frames],
            cameras=cameras,
            scene_box=SceneBox(aabb=torch.tensor([[-extent] * 3, [extent] * 3], dtype=torch.float32)),
            dataparser_transform=torch.as_tensor(transform, dtype=torch.float32),
            dataparser_scale=scale,
            metadata={
                "num_frames": len(streams[0].frames),
                "fps": fps,
                "duration_s": t1 - t0,
                "camera_names": [s.name for s in chosen for _ in s.frames],
                "frame_indices": [int(i) for s in chosen for i in s.frame_indices],
            },
        )


def normalization(c2w: np.ndarray, config: MultiViewDataParserConfig) -> Tuple[np.ndarray, float]:
    """([3, 4] transform, scale) of the scene normalization documented in this module."""
    _, transform = auto_orient_and_center_poses(
        torch.as_tensor(c2w, dtype=torch.float32),
        method=config.orientation_method,
        center_method=config.center_method,
    )
    transform = transform.numpy().astype(np.float64)
    scale = config.scale_factor
    if config.auto_scale_poses:
        scale /= max(float(np.abs(normalized_poses(c2w, transform, 1.0)[:, :, 3]).max()), 1e-12)
    return transform, scale


def normalized_poses(c2w: np.ndarray, transform: np.ndarray, scale: float) -> np.ndarray:
    """[N, 3, 4] camera-to-world after the normalization: s · ([R | t] @ c2w) on the translation."""
    out = transform @ c2w
    out[:, :, 3] *= scale
    return out


def check_equal_counts(counts: Dict[Path, int]) -> None:
    """A DatasetFormatError naming a source whose frame count differs from the largest, or if none has frames."""
    longest = max(counts, key=counts.__getitem__)
    for source, count in counts.items():
        if count != counts[longest]:
            raise DatasetFormatError(
                source, f"has {count} frames in the selected range but {longest.name} has {counts[longest]}"
            )
    if counts[longest] == 0:
        raise DatasetFormatError(longest, "has no frames in the selected range")
