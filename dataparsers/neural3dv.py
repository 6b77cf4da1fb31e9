"""Neural3DV (DyNeRF) scenes: ``camXX.mp4`` videos and ``poses_bounds.npy``.

poses_bounds.npy is N×17, one row per video in sorted file-name order (ids may have gaps):
``row[:15].reshape(3, 5)`` has columns 0–2 = camera-to-world rotation in LLFF axes
[down, right, backwards], column 3 = camera centre, column 4 = [H, W, focal] at full
resolution; ``row[15:17]`` = near / far depth bounds. In nerfstudio's OpenGL axes
[right, up, backwards] the camera-to-world is [c1, −c0, c2 | t]; fx = fy = focal,
cx = W/2, cy = H/2, all scaled with the decoded and then downscaled image size.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Literal, Optional, Tuple, Type

import numpy as np

from dataparsers.camera_conventions import require_finite, require_rotation, scale_intrinsics
from dataparsers.errors import DatasetFormatError
from dataparsers.multiview_base import CameraStream, MultiViewDataParser, MultiViewDataParserConfig, check_equal_counts
from dataparsers.video import probe_video

VIDEO_NAME = re.compile(r"cam\d+\.mp4")


@dataclass
class Neural3DVDataParserConfig(MultiViewDataParserConfig):
    """Neural3DV / DyNeRF: <data>/camXX.mp4 + <data>/poses_bounds.npy."""

    _target: Type = field(default_factory=lambda: Neural3DVDataParser)
    downscale: float = 2.0
    """Divide the resolution by this (2: 2704×2028 → 1352×1014, the usual setting)."""
    frame_count: Optional[int] = 300
    """Number of frames used (the standard protocol uses the first 300)."""
    test_cameras: Tuple[str, ...] = ("cam00",)
    """Held-out cameras (the standard split holds out the central cam00)."""
    exclude_cameras: Tuple[str, ...] = ()
    """Cameras left out of both splits, by file name without .mp4 (coffee_martini's
    unsynchronized camera is the one at sorted index 12, which part of the literature drops)."""
    center_method: Literal["focus", "poses", "none"] = "poses"
    """Forward-facing rig: centre on the mean camera centre (the optical axes barely converge)."""


class Neural3DVDataParser(MultiViewDataParser):
    config: Neural3DVDataParserConfig

    def load_streams(self) -> Tuple[List[CameraStream], float]:
        root = self.require_data_folder()
        videos = sorted(p for p in root.iterdir() if VIDEO_NAME.fullmatch(p.name))
        if not videos:
            raise DatasetFormatError(root, "has no camXX.mp4 videos (Neural3DV layout: camXX.mp4 + poses_bounds.npy)")
        poses_bounds = load_poses_bounds(root / "poses_bounds.npy", len(videos))
        names = [v.stem for v in videos]
        streams, fps = [], 0.0
        for name in self.selected_cameras(names, root):
            k = names.index(name)
            c2w, K, (height, width) = llff_camera(poses_bounds[k])
            info = probe_video(videos[k])
            sx, sy = info.width / width, info.height / height
            if abs(sx / sy - 1.0) > 0.01:
                raise DatasetFormatError(
                    videos[k],
                    f"is {info.width}×{info.height} but poses_bounds.npy row {k} says "
                    f"{width:g}×{height:g} (a different aspect ratio)",
                )
            streams.append(self.video_stream(name, videos[k], info, scale_intrinsics(K, sx, sy), np.zeros(5), c2w))
            fps = info.fps
        check_equal_counts({videos[names.index(s.name)]: len(s.frames) for s in streams})
        return streams, fps


def load_poses_bounds(path: Path, num_videos: int) -> np.ndarray:
    """The validated N×17 array (N = number of videos)."""
    if not path.is_file():
        raise DatasetFormatError(path, "is missing (Neural3DV layout: camXX.mp4 + poses_bounds.npy)")
    try:
        arr = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as err:
        raise DatasetFormatError(path, f"is not a readable .npy array ({err})") from err
    if arr.shape != (num_videos, 17):
        raise DatasetFormatError(
            path,
            f"has shape {arr.shape}, expected ({num_videos}, 17): one row of 17 values "
            f"per camXX.mp4 video ({num_videos} found)",
        )
    arr = require_finite(path, "the pose / bounds array", arr)
    bad = np.nonzero(np.any(arr[:, [4, 9, 14]] <= 0, axis=1))[0]
    if len(bad):
        raise DatasetFormatError(path, f"rows {bad.tolist()} have a non-positive H, W or focal length")
    for k, row in enumerate(arr):
        require_rotation(path, f"the rotation of row {k}", row[:15].reshape(3, 5)[:, :3])
    return arr


def llff_camera(row: np.ndarray) -> Tuple[np.ndarray, np.ndarray, Tuple[float, float]]:
    """(OpenGL camera-to-world [4, 4], full-resolution K [3, 3], (H, W)) of one poses_bounds row."""
    pose = row[:15].reshape(3, 5)
    c2w = np.eye(4)
    c2w[:3, 0], c2w[:3, 1], c2w[:3, 2], c2w[:3, 3] = pose[:, 1], -pose[:, 0], pose[:, 2], pose[:, 3]
    height, width, focal = pose[:, 4]
    K = np.array([[focal, 0.0, width / 2.0], [0.0, focal, height / 2.0], [0.0, 0.0, 1.0]])
    return c2w, K, (float(height), float(width))
