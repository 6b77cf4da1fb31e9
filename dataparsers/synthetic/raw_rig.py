"""Raw, unsynchronised rig videos of the synthetic scene, for testing ``splat4d-rig``: camera c
starts recording ``start_frames[c]`` (fractional) scene frames after camera 0, so its frame n
shows the analytic scene at frame n + start_frames[c]; optionally every video carries the same
world audio (random tone bursts) shifted the same way. The moving objects share a stop-and-go
tempo (and all stay visible), so the amount of motion varies over time the way it does with
people in a real capture; video-based sync needs that (constant motion carries no timing
information). No calibration is written, only
``ground_truth.json`` beside the videos: per camera K, w2c (OpenCV), start frame, and the
offset in seconds that SelfCap's sync.json must hold (−start / fps).
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional

import av
import numpy as np

from dataparsers.atomic_folder import build_atomically
from dataparsers.synthetic.rig import RigConfig, camera_rig
from dataparsers.synthetic.scene import SyntheticScene, Trajectory, default_scene
from dataparsers.synthetic.writers import encode_mp4, render_camera

GROUND_TRUTH_FILE = "ground_truth.json"


@dataclass
class RawRigConfig:
    """What to render."""

    num_cameras: int = 6
    """Cameras on the synthetic rig's arc."""
    num_frames: int = 30
    """Frames per video."""
    width: int = 240
    """Image width in pixels."""
    height: int = 180
    """Image height in pixels."""
    fps: float = 30.0
    """Frame rate of every video."""
    max_start_frames: float = 4.0
    """Camera c > 0 starts uniformly within ±this many frames of camera 0 (fractional)."""
    audio: bool = False
    """Mux the shifted world audio (AAC, 48 kHz mono) into every video."""
    audio_rate: int = 48000
    """Sample rate of the audio track."""
    supersample: int = 2
    """Sub-pixel rays per pixel side (1 aliases fine texture, which costs SfM accuracy)."""
    seed: int = 0
    """Varies the offsets, the audio and the scene's colours."""
    video_crf: int = 12
    """libx264 quality (lower is better)."""


def write_raw_rig(out: Path, cfg: RawRigConfig) -> Dict[str, float]:
    """Write ``out/<name>.mp4`` per camera and the ground truth; returns the start frames by name."""
    rng = np.random.default_rng(cfg.seed)
    starts = rng.uniform(-cfg.max_start_frames, cfg.max_start_frames, cfg.num_cameras)
    starts[0] = 0.0
    span = int(np.ceil(2 * cfg.max_start_frames))
    scene = stop_and_go_scene(default_scene(cfg.num_frames + span, cfg.fps, cfg.seed))
    cameras = camera_rig(RigConfig(num_cameras=cfg.num_cameras, width=cfg.width, height=cfg.height))
    names = [f"cam{k}" for k in range(cfg.num_cameras)]
    bursts = _audio_bursts(rng, (cfg.num_frames + span) / cfg.fps)
    with build_atomically(Path(out)) as partial:
        for name, cam, start in zip(names, cameras, starts):
            # scene frames shifted so that every camera's frames stay inside the scene's time range
            frames = np.arange(cfg.num_frames) + start + cfg.max_start_frames
            media, _ = render_camera(scene, cam, frames.tolist(), cfg.supersample)
            audio = None
            if cfg.audio:
                times = (
                    np.arange(int(cfg.num_frames / cfg.fps * cfg.audio_rate)) / cfg.audio_rate
                    + (start + cfg.max_start_frames) / cfg.fps
                )
                audio = _render_audio(bursts, times)
            _write_video(partial / f"{name}.mp4", media, cfg, audio)
        truth = {
            name: {
                "K": cam.K.tolist(),
                "w2c": cam.w2c.tolist(),
                "start_frame": float(start),
                "sync_offset": float(-start / cfg.fps),
            }
            for name, cam, start in zip(names, cameras, starts)
        }
        (partial / GROUND_TRUTH_FILE).write_text(json.dumps({"fps": cfg.fps, "cameras": truth}, indent=1))
    return dict(zip(names, starts.tolist()))


@dataclass(frozen=True)
class StopAndGoTrajectory(Trajectory):
    """A trajectory replayed at a varying, never periodic tempo: position at u is the base
    trajectory's at W(u) = ∫₀ᵘ speed, speed(u) = 1 + 0.55 sin(2π·2.3u + 0.4) + 0.4 sin(2π·3.7u + 1.1)
    (between 0.05 and 1.95), like a performer who speeds up and pauses."""

    def pose(self, u: float) -> np.ndarray:
        warped = u
        for amplitude, freq, phase in ((0.55, 2.3, 0.4), (0.4, 3.7, 1.1)):
            omega = 2 * np.pi * freq
            warped += amplitude / omega * (np.cos(phase) - np.cos(omega * u + phase))
        return super().pose(warped)


def stop_and_go_scene(scene: SyntheticScene) -> SyntheticScene:
    """``scene`` with every moving object drifting and spinning steadily (no swinging; an object
    that only swung drifts by its swing amplitude) on one shared stop-and-go tempo, always visible."""
    objects = []
    for obj in scene.objects:
        path = obj.trajectory
        velocity = path.velocity if any(path.velocity) else path.amplitude
        steady = StopAndGoTrajectory(
            path.start,
            velocity=velocity,
            spin_axis=path.spin_axis,
            spin=path.spin,
            initial_rotation=path.initial_rotation,
        )
        objects.append(dataclasses.replace(obj, trajectory=steady, appear=-np.inf, disappear=np.inf))
    return dataclasses.replace(scene, objects=objects)


def _audio_bursts(rng: np.random.Generator, duration: float) -> np.ndarray:
    """[B, 4] (time, frequency, width, amplitude) of Gaussian-windowed tone bursts, ~8 per second."""
    count = max(4, int(8 * duration))
    return np.stack(
        [
            rng.uniform(0, duration, count),
            rng.uniform(300, 3000, count),
            rng.uniform(0.004, 0.02, count),
            rng.uniform(0.2, 0.6, count),
        ],
        axis=1,
    )


def _render_audio(bursts: np.ndarray, times: np.ndarray) -> np.ndarray:
    """The world audio at arbitrary ``times`` (seconds): analytic, so any shift is exact."""
    out = np.zeros_like(times)
    for t0, freq, width, amp in bursts:
        near = np.abs(times - t0) < 5 * width
        dt = times[near] - t0
        out[near] += amp * np.exp(-0.5 * (dt / width) ** 2) * np.sin(2 * np.pi * freq * dt)
    return out.astype(np.float32)


def _write_video(path: Path, frames: List[np.ndarray], cfg: RawRigConfig, audio: Optional[np.ndarray]) -> None:
    """H.264 video (writers.encode_mp4), remuxed with an AAC track when ``audio`` is given."""
    if audio is None:
        encode_mp4(path, frames, cfg.fps, cfg.video_crf)
        return
    with tempfile.TemporaryDirectory() as tmp:
        silent = Path(tmp) / "video.mp4"
        encode_mp4(silent, frames, cfg.fps, cfg.video_crf)
        with av.open(str(silent)) as source, av.open(str(path), "w") as container:
            video = container.add_stream_from_template(source.streams.video[0])
            sound = container.add_stream("aac", rate=cfg.audio_rate, layout="mono")
            for packet in source.demux(source.streams.video[0]):
                if packet.dts is not None:
                    packet.stream = video
                    container.mux(packet)
            chunk = 1024
            for begin in range(0, len(audio), chunk):
                frame = av.AudioFrame.from_ndarray(audio[None, begin : begin + chunk], format="fltp", layout="mono")
                frame.sample_rate, frame.pts = cfg.audio_rate, begin
                container.mux(sound.encode(frame))
            container.mux(sound.encode(None))
