"""Reading video files with PyAV: stream properties and frame-accurate decoding of a range.

Frame n of a video is the n-th frame in presentation order (0-based). When a range starts
after frame 0 we seek to the keyframe before it and read the index of the first decoded frame
from its timestamp, so a 60-frame range deep into a long video does not decode everything
before it.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional, Tuple

import av
import numpy as np

from dataparsers.errors import DatasetFormatError


@dataclass(frozen=True)
class VideoInfo:
    width: int
    height: int
    fps: float


@contextmanager
def open_video(path: Path) -> Iterator[Tuple[av.container.InputContainer, av.video.stream.VideoStream]]:
    """The container and its first video stream; decoding errors become DatasetFormatError."""
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise DatasetFormatError(path, "has no video stream")
            yield container, container.streams.video[0]
    except av.FFmpegError as err:
        raise DatasetFormatError(path, f"cannot be decoded ({err.strerror or err})") from err


def probe_video(path: Path) -> VideoInfo:
    with open_video(path) as (_, stream):
        rate = stream.average_rate or stream.guessed_rate
        if not rate or stream.codec_context.width <= 0:
            raise DatasetFormatError(path, "has no frame rate or frame size in its video stream")
        return VideoInfo(stream.codec_context.width, stream.codec_context.height, float(rate))


def decode_frames(path: Path, start: int, count: Optional[int]) -> Iterator[Tuple[int, np.ndarray]]:
    """(frame index, RGB uint8 [H, W, 3]) for frames start … start + count − 1 (or to the end
    when ``count`` is None); fewer if the video ends first."""
    end = None if count is None else start + count
    with open_video(path) as (container, stream):
        stream.thread_type = "AUTO"
        for index, frame in _indexed_frames(container, stream, start):
            if end is not None and index >= end:
                break
            if index >= start:
                yield index, frame.to_ndarray(format="rgb24")


def _indexed_frames(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream, start: int
) -> Iterator[Tuple[int, av.VideoFrame]]:
    """Decoded frames with their indices, beginning at or before frame ``start``: after a seek
    to the keyframe before it when timestamps allow, else from the beginning."""
    rate = stream.average_rate or stream.guessed_rate
    if start > 0 and rate and stream.time_base is not None:
        origin = stream.start_time or 0
        container.seek(origin + int(start / (rate * stream.time_base)), stream=stream, backward=True)
        decoded = container.decode(stream)
        frame = next(decoded, None)
        if frame is not None and frame.pts is not None:
            first = int(round(float((frame.pts - origin) * stream.time_base * rate)))
            if first <= start:
                yield first, frame
                yield from enumerate(decoded, start=first + 1)
                return
        container.seek(0)
    yield from enumerate(container.decode(stream))
