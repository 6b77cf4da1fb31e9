"""What Shape of Motion reads from a monocular video: the training frames, their cameras and
priors, and the 2D tracks between them (the ``iphone`` dataparser provides all of it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, List, Protocol, Sequence

from torch import Tensor

from dataparsers.iphone.tracks import TrackPair


@dataclass
class FrameData:
    """One training image with its priors, at the cameras' resolution."""

    image: Tensor  # [H, W, 3] float in [0, 1]
    depth: Tensor  # [H, W] z-depth in world units, 0 (or non-finite) where unknown
    motion_mask: Tensor  # [H, W] float in [0, 1], 1 = moving
    valid: Tensor  # [H, W] bool, pixels with image content


class TrackSource(Protocol):
    """2D tracks between training frames (dataparsers.iphone.tracks.TrackPairs)."""

    num_points: Sequence[int]

    def load(self, query: int, target: int) -> TrackPair: ...


@dataclass
class TrainingFrames:
    """The training frames of a monocular video, ordered like the training images."""

    names: List[str]
    w2c: Tensor  # [F, 4, 4] OpenCV world→camera
    K: Tensor  # [F, 3, 3] at the resolution of ``load``'s images
    time_ids: Tensor  # [F] int64, distinct
    num_time_steps: int
    load: Callable[[int], FrameData]
    tracks: TrackSource
    track_scale: float = 1.0
    """Multiplies the tracks' pixel coordinates to give pixels of ``load``'s images."""

    def __post_init__(self) -> None:
        if len(set(self.time_ids.tolist())) != len(self.time_ids):
            raise ValueError(
                "Shape of Motion needs one training frame per time step (a monocular video); "
                f"time ids {self.time_ids.tolist()} repeat"
            )
        if int(self.time_ids.max()) >= self.num_time_steps or int(self.time_ids.min()) < 0:
            raise ValueError(f"time ids must lie in [0, {self.num_time_steps - 1}]")

    def __len__(self) -> int:
        return len(self.names)
