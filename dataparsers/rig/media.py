"""What the rig tool reads from each raw video: one decoding pass gives the per-frame motion
energy and a few frames sampled evenly across time (downscaled for structure-from-motion); the
audio track is decoded separately, resampled to mono. Both become sync signals.

Motion energy of frame n: mean over a 160-pixel-wide grey copy of max(|frame n+1 − frame n| − 4, 0)
grey levels. The soft threshold drops compression flicker (keyframes every GOP change every pixel
a little, at the same frame index in every camera, which would pull all lags towards 0).
The sync signal is its logarithm, which evens out how strongly each view sees the motion.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Optional

import av
import cv2
import numpy as np

from dataparsers.errors import DatasetFormatError
from dataparsers.rig.sync import Signal
from dataparsers.video import decode_frames, open_video

ENERGY_WIDTH = 160  # motion energy is computed at this width (noise averages out, decoding dominates)
ENERGY_THRESHOLD = 4.0  # grey levels of change ignored per pixel (compression flicker)
LOG_FLOOR = 0.1  # grey levels added before the logarithm


@dataclass
class VideoScan:
    """One pass over a camera's video."""

    num_frames: int
    fps: float
    width: int
    height: int
    start_time: float
    """Presentation time of the first video frame in seconds (its stream's clock)."""
    motion_energy: np.ndarray
    """[num_frames − 1]: entry n is the change from frame n to frame n + 1."""
    sample_indices: np.ndarray
    """[S] frame indices of ``samples``."""
    samples: np.ndarray
    """[S, h, w, 3] uint8 RGB frames sampled evenly across the video, downscaled to at most
    ``max_size`` pixels on their longer side."""

    def motion_signal(self) -> Signal:
        """Log motion energy; entry n lies between frames n and n + 1."""
        return Signal(np.log(LOG_FLOOR + self.motion_energy), self.fps, 0.5 / self.fps)


@dataclass
class AudioTrack:
    samples: np.ndarray
    """[N] float32 mono samples."""
    rate: int
    start_time: float
    """Presentation time of the first sample in seconds (the same clock as the video's frames)."""

    def signal(self, video_start_time: float) -> Signal:
        return Signal(self.samples, float(self.rate), self.start_time - video_start_time)


def scan_video(
    path: Path, num_samples: int, max_size: int, progress: Optional[Callable[[int], None]] = None
) -> VideoScan:
    """Decode ``path`` once; ``progress`` is called with each decoded frame's index."""
    with open_video(path) as (_, stream):
        rate = stream.average_rate or stream.guessed_rate
        if not rate:
            raise DatasetFormatError(path, "has no frame rate in its video stream")
        fps = float(rate)
        expected = stream.frames
        if not expected and stream.duration:
            expected = int(round(float(stream.duration * stream.time_base) * fps))
        start = float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0
    step = max(1, expected // max(num_samples, 1)) if expected else 1
    energy: List[float] = []
    samples, indices = [], []
    previous = None
    count, size = 0, (0, 0)
    for index, rgb in decode_frames(path, 0, None):
        grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        small = cv2.resize(
            grey,
            (ENERGY_WIDTH, max(1, round(ENERGY_WIDTH * grey.shape[0] / grey.shape[1]))),
            interpolation=cv2.INTER_AREA,
        ).astype(np.float32)
        if previous is not None:
            energy.append(float(np.maximum(np.abs(small - previous) - ENERGY_THRESHOLD, 0.0).mean()))
        previous = small
        if index % step == 0:
            samples.append(_fit(rgb, max_size))
            indices.append(index)
        count, size = index + 1, rgb.shape[1::-1]
        if progress is not None:
            progress(index)
    if count < 2:
        raise DatasetFormatError(path, f"has {count} decodable frame(s); a camera needs a video")
    if len(samples) > num_samples:  # the stream's frame count was an underestimate
        keep = np.linspace(0, len(samples) - 1, num_samples).round().astype(int)
        samples, indices = [samples[k] for k in keep], [indices[k] for k in keep]
    return VideoScan(
        num_frames=count,
        fps=fps,
        width=size[0],
        height=size[1],
        start_time=start,
        motion_energy=np.asarray(energy, dtype=np.float64),
        sample_indices=np.asarray(indices, dtype=np.int64),
        samples=np.stack(samples),
    )


def _fit(rgb: np.ndarray, max_size: int) -> np.ndarray:
    scale = max_size / max(rgb.shape[:2])
    if scale >= 1:
        return rgb
    size = (max(1, round(rgb.shape[1] * scale)), max(1, round(rgb.shape[0] * scale)))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)


def decode_audio(path: Path, rate: int) -> Optional[AudioTrack]:
    """The first audio track of ``path`` as mono at ``rate`` Hz, or None if it has none."""
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                return None
            stream = container.streams.audio[0]
            resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
            chunks, start = [], None
            for frame in container.decode(stream):
                if start is None and frame.pts is not None:
                    start = float(frame.pts * frame.time_base)
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().reshape(-1))
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1))
    except av.FFmpegError as err:
        raise DatasetFormatError(path, f"its audio cannot be decoded ({err.strerror or err})") from err
    if not chunks:
        return None
    return AudioTrack(np.concatenate(chunks).astype(np.float32), rate, start or 0.0)
