"""Writing the calibrated, synchronised rig as a SelfCap-layout scene:

    <out>/videos/<camera>.mp4            the chosen frame range, resized, H.264
    <out>/optimized/intri.yml, extri.yml EasyVolcap calibration at the videos' resolution
    <out>/optimized/sync.json            {"<camera>": offset in seconds}: frame n at n / fps − offset

Every camera's range starts at the source frame nearest in time to the reference camera's first
frame, so the written videos are aligned to whole frames and sync.json holds only the remaining
sub-frame offsets (at most half a frame).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Iterator, Optional

import cv2
import numpy as np

from dataparsers.atomic_folder import build_atomically
from dataparsers.camera_conventions import resized_size, scale_intrinsics
from dataparsers.easyvolcap_calibration import Calibration, write_calibration
from dataparsers.errors import DatasetFormatError
from dataparsers.synthetic.writers import encode_mp4
from dataparsers.video import decode_frames


@dataclass(frozen=True)
class FrameRange:
    first: Dict[str, int]
    """First source frame written, per camera."""
    count: int
    """Frames written per camera."""
    offsets: Dict[str, float]
    """sync.json offsets (seconds) of the written videos."""


def frame_range(
    shifts: Dict[str, float],
    num_frames: Dict[str, int],
    fps: float,
    videos: Dict[str, Path],
    start: Optional[int] = None,
    count: Optional[int] = None,
) -> FrameRange:
    """The frames to write: reference frames start … start + count − 1 (``shifts`` are the clock
    shifts S_c of each camera's frame 0, the reference's is 0) and each camera's nearest frames.
    ``start`` None: the first reference frame that every camera covers; ``count`` None: as many
    as every camera covers."""
    lead = {name: int(round(shift * fps)) for name, shift in shifts.items()}
    if start is None:
        start = max(0, max(lead.values()))
    first = {name: start - lead[name] for name in shifts}
    for name, index in first.items():
        if index < 0:
            raise DatasetFormatError(
                videos[name], f"starts {lead[name]} frames after the reference camera, after frame_start {start}"
            )
    available = min(num_frames[name] - first[name] for name in shifts)
    short = min(shifts, key=lambda name: num_frames[name] - first[name])
    if count is None:
        count = available
    if count < 1 or count > available:
        raise DatasetFormatError(
            videos[short], f"covers only {max(available, 0)} frames from frame_start {start} (asked for {count})"
        )
    offsets = {name: -(shift - lead[name] / fps) for name, shift in shifts.items()}
    return FrameRange(first, count, offsets)


def write_scene(
    out: Path,
    videos: Dict[str, Path],
    calibrations: Dict[str, Calibration],
    frames: FrameRange,
    fps: float,
    downscale: float,
    crf: int,
    progress: Callable[[str, int], None],
) -> None:
    """Write videos/ and optimized/ into ``out`` (each folder atomically); ``progress`` gets the
    camera and each written frame's index."""
    scaled = {name: _resized(calib, downscale) for name, calib in calibrations.items()}
    with build_atomically(out / "videos") as folder:
        for name, video in videos.items():
            size = (scaled[name].width, scaled[name].height)
            path = folder / f"{name}.mp4"
            encode_mp4(path, _frames(video, frames.first[name], frames.count, size, name, progress), fps, crf)
    with build_atomically(out / "optimized") as folder:
        write_calibration(folder / "intri.yml", folder / "extri.yml", scaled)
        (folder / "sync.json").write_text(json.dumps(frames.offsets, indent=1))


def _resized(calib: Calibration, downscale: float) -> Calibration:
    width, height = resized_size(calib.width, calib.height, downscale)
    K = scale_intrinsics(calib.K, width / calib.width, height / calib.height)
    return dataclasses.replace(calib, K=K, width=width, height=height)


def _frames(
    video: Path, first: int, count: int, size: tuple, name: str, progress: Callable[[str, int], None]
) -> Iterator[np.ndarray]:
    written = 0
    for index, rgb in decode_frames(video, first, count):
        if rgb.shape[1::-1] != tuple(size):
            rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
        written += 1
        progress(name, index)
        yield rgb
    if written != count:
        raise DatasetFormatError(video, f"ended after {written} of frames {first}–{first + count - 1}")
