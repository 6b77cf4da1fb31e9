"""2D tracks between training frames, loaded one (query, target) pair at a time.

A scene has F² track files (F training frames); :class:`TrackPairs` keeps only their folder and
the frame names, and reads a pair when asked. Frames are indexed like the training images of the
parser's outputs (image_idx of the train dataset).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Set

import numpy as np
import torch

from dataparsers.errors import DatasetFormatError
from dataparsers.iphone.layout import IPhoneLayout, track_file_to_pixels
from dataparsers.iphone.scene_files import listed
from splat4d.npy import load_npy, npy_shape


@dataclass(frozen=True)
class TrackPair:
    """The query frame's points as seen in the target frame."""

    xy: torch.Tensor  # [P, 2] float32 pixels of the parser's images (centres at +0.5)
    occlusion_logit: torch.Tensor  # [P] float32; higher = more likely occluded
    expected_dist_logit: torch.Tensor  # [P] float32; higher = larger expected position error

    @property
    def certainty(self) -> torch.Tensor:
        return 1.0 - torch.sigmoid(self.expected_dist_logit)

    @property
    def visible(self) -> torch.Tensor:
        """[P] bool: confidently visible (Shape of Motion: (1 − σ(occ)) · (1 − σ(dist)) > 0.5)."""
        return (1.0 - torch.sigmoid(self.occlusion_logit)) * self.certainty > 0.5

    @property
    def invisible(self) -> torch.Tensor:
        """[P] bool: confidently occluded (σ(occ) · (1 − σ(dist)) > 0.5)."""
        return torch.sigmoid(self.occlusion_logit) * self.certainty > 0.5

    @property
    def confidence(self) -> torch.Tensor:
        """[P] float: 1 − σ(dist) where visible or invisible, else 0."""
        return self.certainty * (self.visible | self.invisible).float()


def read_track_file(path: Path, num_points: Optional[int] = None) -> np.ndarray:
    """float32 [P, 4] rows (x, y, occlusion logit, expected-distance logit) of one track file."""
    try:
        rows = load_npy(path)
    except (OSError, ValueError) as err:
        raise DatasetFormatError(path, f"cannot be read as a .npy array ({err})") from err
    check_track_shape(path, rows.shape, num_points)
    return rows.astype(np.float32)


def check_track_shape(path: Path, shape: tuple, num_points: Optional[int]) -> None:
    if len(shape) != 2 or shape[1] != 4:
        raise DatasetFormatError(
            path,
            f"has shape {tuple(shape)}; 2D track files hold [P, 4] rows "
            "(x, y, occlusion logit, expected-distance logit)",
        )
    if num_points is not None and shape[0] != num_points:
        raise DatasetFormatError(path, f"has {shape[0]} tracks but its query file has {num_points}")


class TrackPairs:
    """Lazy loader of the 2D tracks between the ``frame_names`` (the training frames, in order)."""

    def __init__(self, layout: IPhoneLayout, frame_names: List[str], pixel_scale: float) -> None:
        self.layout = layout
        self.frame_names = list(frame_names)
        self.pixel_scale = pixel_scale
        """Size of the parser's images relative to the 1x images the tracks were computed on."""
        self.num_points = [self._query_size(name) for name in self.frame_names]
        """Tracks per query frame, [F]."""

    def __len__(self) -> int:
        return len(self.frame_names)

    def _query_size(self, name: str) -> int:
        path = self.layout.track_file(name, name)
        try:
            shape = npy_shape(path)
        except (OSError, ValueError) as err:
            raise DatasetFormatError(path, f"cannot be read as a .npy array ({err})") from err
        check_track_shape(path, shape, None)
        return int(shape[0])

    def load(self, query: int, target: int) -> TrackPair:
        """Tracks of query frame ``query``'s points in frame ``target`` (training image indices)."""
        path = self.layout.track_file(self.frame_names[query], self.frame_names[target])
        rows = read_track_file(path, self.num_points[query])
        return TrackPair(
            xy=torch.from_numpy(track_file_to_pixels(rows[:, :2], self.pixel_scale).astype(np.float32)),
            occlusion_logit=torch.from_numpy(rows[:, 2].copy()),
            expected_dist_logit=torch.from_numpy(rows[:, 3].copy()),
        )

    def sample_pairs(
        self, count: int, generator: Optional[torch.Generator] = None, query: Optional[int] = None
    ) -> torch.Tensor:
        """[count, 2] (query, target) index pairs: random queries with random targets, or with
        ``query`` given, that query with ``count`` distinct random targets (count ≤ F)."""
        if query is None:
            return torch.randint(0, len(self), (count, 2), generator=generator)
        targets = torch.randperm(len(self), generator=generator)[:count]
        return torch.stack([torch.full_like(targets, query), targets], dim=1)


def find_track_pairs(
    layout: IPhoneLayout, frames: List[str], known: Set[str], pixel_scale: float
) -> Optional[TrackPairs]:
    """The training frames' track loader, None when the track folder is missing; checks that
    every pair exists and that every file names two frames of the scene."""
    folder = layout.tracks_dir
    if not folder.is_dir():
        return None
    stems = {p.name[:-4] for p in folder.iterdir() if p.name.endswith(".npy")}
    unknown = sorted(s for s in stems if not is_frame_pair(s, known))
    if unknown:
        raise DatasetFormatError(
            folder,
            f"has files that are not <query frame>_<target frame>.npy for frames of the scene: {listed(unknown)}",
        )
    missing = [f"{q}_{t}.npy" for q in frames for t in frames if f"{q}_{t}" not in stems]
    if missing:
        raise DatasetFormatError(
            folder,
            f"lacks track files for {len(missing)} of the {len(frames) ** 2} training frame pairs: {listed(missing)}",
        )
    return TrackPairs(layout, frames, pixel_scale)


def is_frame_pair(stem: str, known: Set[str]) -> bool:
    """Whether ``stem`` is ``<a>_<b>`` for frame names a, b of ``known`` (names contain underscores)."""
    return any(stem[:k] in known and stem[k + 1 :] in known for k, ch in enumerate(stem) if ch == "_")
