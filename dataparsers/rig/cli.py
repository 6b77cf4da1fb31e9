"""``splat4d-rig``: raw videos of N static cameras → a SelfCap-layout scene for ``ns-train sharptime``.

    splat4d-rig --videos capture/ --out data/my_scene
    ns-train sharptime --data data/my_scene

Stages (each cached in ``<out>/rig_work`` under a hash of its inputs, so a rerun resumes):
1. scan: decode every video once (motion energy per frame, frames sampled across time);
2. sync: per-camera clock offsets from the audio tracks (all videos have one) or else from the
   motion energy, to a fraction of a frame, with a confidence per camera;
3. calibrate: pycolmap structure-from-motion on each camera's temporal-median image;
3b. refine (video sync only): sub-frame shifts from moving points on the calibrated epipolar
   lines (moving_points.py), where they time a camera more precisely than the motion energy;
4. write: videos/, optimized/{intri,extri}.yml and optimized/sync.json (see writer.py).
A summary (offsets, confidences, reprojection errors) is written to ``<out>/rig.json``.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, Literal, Optional, Tuple

import numpy as np
import pycolmap
import tyro
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from dataparsers.easyvolcap_calibration import Calibration
from dataparsers.errors import DatasetFormatError
from dataparsers.frame_cache import file_signature
from dataparsers.rig import stages
from dataparsers.rig.calibration import (
    CalibrationSettings,
    CameraCalibration,
    apply_metric_scale,
    calibrate,
    median_plate,
)
from dataparsers.rig.media import VideoScan, decode_audio, scan_video
from dataparsers.rig.moving_points import EpipolarSettings, refine_shifts
from dataparsers.rig.sync import ClockShifts, PairLag, solve_clock_shifts
from dataparsers.rig.writer import frame_range, write_scene

VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".avi", ".m4v")
WORK_DIR = "rig_work"
SUMMARY_FILE = "rig.json"
SyncSource = Literal["auto", "audio", "video"]


@dataclass
class RigCommand:
    videos: Path
    """Folder of one video per camera (.mp4 .mov .mkv .avi .m4v); the file stem is the camera name."""
    out: Path
    """Scene folder to create (or resume)."""
    sync: SyncSource = "auto"
    """Sync signal: audio (every video needs an audio track), video (motion energy), or auto
    (audio when every video has it, else video)."""
    reference: Optional[str] = None
    """Camera whose clock is the scene's (None: the first by name)."""
    max_offset: float = 5.0
    """Largest time offset between two cameras considered, in seconds."""
    min_confidence: float = 0.5
    """Camera pairs whose signals correlate less than this are not used; a camera without any
    such pair stops the run."""
    audio_rate: int = 16000
    """Audio is decoded at this sample rate (Hz) for sync."""
    sync_window: float = 120.0
    """Only the first this many seconds of every camera's signal are correlated (every pair of
    cameras is, so long windows cost time); must exceed max_offset."""
    frame_start: Optional[int] = None
    """First frame written, in the reference camera's frames (None: the first all cameras cover)."""
    frame_count: Optional[int] = None
    """Frames written per camera (None: all that every camera covers)."""
    downscale: float = 1.0
    """Divide the written videos' resolution by this (the calibration follows)."""
    video_crf: int = 16
    """libx264 quality of the written videos (lower is better)."""
    calibration_frames: int = 15
    """Frames sampled across each video whose per-pixel median (the static scene) is calibrated."""
    sfm_max_size: int = 1600
    """Longer side of the images structure-from-motion sees (pixels)."""
    calibration: CalibrationSettings = field(default_factory=CalibrationSettings)
    epipolar: EpipolarSettings = field(default_factory=EpipolarSettings)
    known_distance: Optional[Tuple[str, str, float]] = None
    """CAM_A CAM_B METRES: the distance between two cameras' centres, for a metric scale
    (None: the reconstruction's arbitrary scale)."""
    fresh: bool = False
    """Discard cached stages in <out>/rig_work and start over."""


@dataclass
class RigSummary:
    reference: str
    sync_source: str
    fps: float
    offsets: Dict[str, float]
    """sync.json offsets of the written videos (seconds)."""
    clock_shifts: Dict[str, float]
    """Source video frame 0 of each camera, in seconds after the reference's."""
    confidence: Dict[str, float]
    reprojection_error: Dict[str, float]
    """Mean reprojection error per camera (pixels at the SfM images' resolution)."""
    num_points: Dict[str, int]
    first_frame: Dict[str, int]
    frame_count: int
    metric_scale: Optional[float]
    sync_refinement: str = ""
    """Video sync only: what the epipolar refinement did (or why cameras kept their shifts)."""


def main() -> None:
    cmd = tyro.cli(RigCommand, description="Raw rig videos → a calibrated, synchronised SelfCap-layout scene.")
    console = Console()
    try:
        summary = build_rig_scene(cmd, console)
    except (DatasetFormatError, ValueError, RuntimeError) as err:
        console.print(f"splat4d-rig: {err}", style="bold red", markup=False, highlight=False)
        raise SystemExit(1) from err
    print_summary(summary, console)
    console.print(f"[bold green]wrote {cmd.out}[/]: train with  ns-train sharptime --data {cmd.out}")


def find_videos(folder: Path) -> Dict[str, Path]:
    if not folder.is_dir():
        raise DatasetFormatError(folder, "is not a folder of videos")
    videos = {p.stem: p for p in sorted(folder.iterdir()) if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file()}
    if len(videos) < 2:
        found = f"has {len(videos)} video(s) ({', '.join(VIDEO_SUFFIXES)})"
        raise DatasetFormatError(folder, f"{found}; a rig needs at least 2")
    for name, path in videos.items():
        if not name.replace("-", "").replace("_", "").isalnum():
            raise DatasetFormatError(path, "camera names (file stems) may use only letters, digits, '-' and '_'")
    return videos


def build_rig_scene(cmd: RigCommand, console: Console) -> RigSummary:
    if cmd.sync_window <= cmd.max_offset:
        raise ValueError(f"--sync-window ({cmd.sync_window} s) must exceed --max-offset ({cmd.max_offset} s)")
    videos = find_videos(cmd.videos)
    reference = cmd.reference if cmd.reference is not None else next(iter(videos))
    if reference not in videos:
        raise DatasetFormatError(cmd.videos, f"has no video of reference camera {reference!r}")
    work = cmd.out / WORK_DIR
    if cmd.fresh:
        shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True, exist_ok=True)
    pycolmap.logging.minloglevel = pycolmap.logging.WARNING
    scans, scan_keys = scan_all(videos, cmd, work, console)
    fps = _common_fps(scans, videos)

    shifts, source = synchronise(videos, scans, scan_keys, reference, cmd, work, console)
    cameras = calibrate_rig(scans, scan_keys, cmd, work, console)
    refinement = ""
    if source == "video" and cmd.epipolar.enabled:
        shifts, refinement = refine_sync(videos, scans, scan_keys, shifts, cameras, reference, fps, cmd, work, console)
    scale = None
    if cmd.known_distance is not None:
        scale = apply_metric_scale(cameras, *cmd.known_distance)

    frames = frame_range(
        shifts.shifts, {n: s.num_frames for n, s in scans.items()}, fps, videos, cmd.frame_start, cmd.frame_count
    )
    summary = RigSummary(
        reference=reference,
        sync_source=source,
        fps=fps,
        offsets=frames.offsets,
        clock_shifts=shifts.shifts,
        confidence=shifts.confidence,
        reprojection_error={n: c.reprojection_error for n, c in cameras.items()},
        num_points={n: c.num_points for n, c in cameras.items()},
        first_frame=frames.first,
        frame_count=frames.count,
        metric_scale=scale,
        sync_refinement=refinement,
    )
    calibration = {n: _calibration_json(c.calibration) for n, c in cameras.items()}
    write_key = stages.stage_key(
        summary=asdict(summary), downscale=cmd.downscale, crf=cmd.video_crf, calibration=calibration
    )
    summary_path = cmd.out / SUMMARY_FILE
    if summary_path.is_file() and json.loads(summary_path.read_text()).get("key") == write_key:
        console.print("write: the scene is up to date")
        return summary
    summary_path.unlink(missing_ok=True)
    with _progress(console) as progress:
        tasks = {n: progress.add_task(f"writing {n}", total=frames.count) for n in videos}
        write_scene(
            cmd.out,
            videos,
            {n: c.calibration for n, c in cameras.items()},
            frames,
            fps,
            cmd.downscale,
            cmd.video_crf,
            lambda name, _: progress.advance(tasks[name]),
        )
    summary_path.write_text(json.dumps({"key": write_key, **asdict(summary)}, indent=1))
    return summary


def scan_all(
    videos: Dict[str, Path], cmd: RigCommand, work: Path, console: Console
) -> Tuple[Dict[str, VideoScan], Dict[str, str]]:
    scans, keys = {}, {}
    with _progress(console) as progress:
        for name, path in videos.items():
            key = stages.stage_key(video=file_signature(path), samples=cmd.calibration_frames, size=cmd.sfm_max_size)
            keys[name] = key
            cached = stages.load_arrays(work, f"scan-{name}", key)
            if cached is not None:
                meta = json.loads(str(cached.pop("meta")))
                scans[name] = VideoScan(**meta, **cached)
                continue
            task = progress.add_task(f"scanning {name}", total=None)
            scan = scan_video(
                path, cmd.calibration_frames, cmd.sfm_max_size, lambda index: progress.update(task, completed=index + 1)
            )
            progress.update(task, total=scan.num_frames)
            meta = {k: getattr(scan, k) for k in ("num_frames", "fps", "width", "height", "start_time")}
            arrays = {k: getattr(scan, k) for k in ("motion_energy", "sample_indices", "samples")}
            stages.save_arrays(work, f"scan-{name}", key, {"meta": np.array(json.dumps(meta)), **arrays})
            scans[name] = scan
    return scans, keys


def synchronise(
    videos: Dict[str, Path],
    scans: Dict[str, VideoScan],
    scan_keys: Dict[str, str],
    reference: str,
    cmd: RigCommand,
    work: Path,
    console: Console,
) -> Tuple[ClockShifts, str]:
    key = stages.stage_key(
        scans=scan_keys,
        sync=cmd.sync,
        reference=reference,
        max_offset=cmd.max_offset,
        min_confidence=cmd.min_confidence,
        rate=cmd.audio_rate,
        window=cmd.sync_window,
        video_lags="correlation+pauses",
    )
    cached = stages.load_json(work, "sync", key)
    if cached is not None:
        pairs = [PairLag(tuple(p["cameras"]), p["shift"], p["confidence"]) for p in cached["pairs"]]
        return ClockShifts(cached["shifts"], cached["confidence"], pairs), cached["source"]
    signals, source = None, "video"
    if cmd.sync in ("auto", "audio"):
        with console.status("sync: decoding audio"):
            tracks = {name: decode_audio(path, cmd.audio_rate) for name, path in videos.items()}
        silent = [videos[n] for n, track in tracks.items() if track is None]
        if cmd.sync == "audio" and silent:
            raise DatasetFormatError(silent[0], "has no audio track (needed by --sync audio; try --sync video)")
        if not silent:
            signals = {n: track.signal(scans[n].start_time) for n, track in tracks.items()}
            source = "audio"
    if signals is None:
        signals = {n: scan.motion_signal() for n, scan in scans.items()}
    signals = {n: signal.first(cmd.sync_window) for n, signal in signals.items()}
    with console.status(f"sync: correlating {source} signals"):
        shifts = solve_clock_shifts(signals, reference, cmd.max_offset, cmd.min_confidence, pauses=source == "video")
    stages.save_json(work, "sync", key, {**asdict(shifts), "source": source})
    return shifts, source


def calibrate_rig(
    scans: Dict[str, VideoScan], scan_keys: Dict[str, str], cmd: RigCommand, work: Path, console: Console
) -> Dict[str, CameraCalibration]:
    key = stages.stage_key(scans=scan_keys, settings=asdict(cmd.calibration))
    cached = stages.load_json(work, "calibration", key)
    if cached is not None:
        return {n: _camera_from_json(c) for n, c in cached.items()}
    with console.status(f"calibrate: structure-from-motion on {len(scans)} cameras (pycolmap)"):
        plates = {n: median_plate(s.samples) for n, s in scans.items()}
        sizes = {n: (s.width, s.height) for n, s in scans.items()}
        cameras = calibrate(plates, sizes, work / "colmap", cmd.calibration)
    stages.save_json(work, "calibration", key, {n: _camera_json(c) for n, c in cameras.items()})
    return cameras


def refine_sync(
    videos: Dict[str, Path],
    scans: Dict[str, VideoScan],
    scan_keys: Dict[str, str],
    coarse: ClockShifts,
    cameras: Dict[str, CameraCalibration],
    reference: str,
    fps: float,
    cmd: RigCommand,
    work: Path,
    console: Console,
) -> Tuple[ClockShifts, str]:
    """The video sync refined by moving points on the calibrated epipolar lines (cached)."""
    calibrations = {n: c.calibration for n, c in cameras.items()}
    key = stages.stage_key(
        scans=scan_keys,
        coarse=coarse.shifts,
        calibration={n: _calibration_json(c) for n, c in calibrations.items()},
        settings=asdict(cmd.epipolar),
    )
    cached = stages.load_json(work, "refine", key)
    if cached is None:
        with console.status("refine: timing moving points on the epipolar lines"):
            energy = scans[reference].motion_energy
            frames = {n: s.num_frames for n, s in scans.items()}
            result = refine_shifts(videos, frames, energy, coarse, calibrations, fps, reference, cmd.epipolar)
        timed = len(videos) - 1 - len(result.fallback)
        note = f"epipolar: {timed} of {len(videos) - 1} cameras timed against {reference} by moving points"
        cached = {"shifts": result.shifts.shifts, "note": note + (f"; {result.reason}" if result.reason else "")}
        stages.save_json(work, "refine", key, cached)
    console.print(f"refine: {cached['note']}", markup=False, highlight=False)
    return ClockShifts(cached["shifts"], coarse.confidence, coarse.pairs), cached["note"]


def print_summary(summary: RigSummary, console: Console) -> None:
    table = Table(title=f"rig: sync from {summary.sync_source}, {summary.frame_count} frames at {summary.fps:g} fps")
    columns = ("camera", "offset (frames)", "sync confidence", "reprojection error (px)", "3D points", "first frame")
    for column in columns:
        table.add_column(column, justify="right")
    for name in summary.offsets:
        table.add_row(
            name,
            f"{summary.clock_shifts[name] * summary.fps:+.3f}",
            f"{summary.confidence[name]:.2f}",
            f"{summary.reprojection_error[name]:.2f}",
            str(summary.num_points[name]),
            str(summary.first_frame[name]),
        )
    console.print(table)
    if summary.metric_scale is not None:
        console.print(f"metric scale: reconstruction × {summary.metric_scale:.4g}")


def _common_fps(scans: Dict[str, VideoScan], videos: Dict[str, Path]) -> float:
    names = list(scans)
    fps = scans[names[0]].fps
    for name in names[1:]:
        if not np.isclose(scans[name].fps, fps, rtol=1e-3):
            raise DatasetFormatError(
                videos[name],
                f"runs at {scans[name].fps:g} fps, {names[0]} at {fps:g}; all cameras need the same frame rate",
            )
    return fps


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), console=console
    )


def _calibration_json(calib: Calibration) -> Dict:
    return {
        "K": calib.K.tolist(),
        "distortion": calib.distortion.tolist(),
        "w2c": calib.w2c.tolist(),
        "width": calib.width,
        "height": calib.height,
    }


def _camera_json(camera: CameraCalibration) -> Dict:
    return {
        **_calibration_json(camera.calibration),
        "reprojection_error": camera.reprojection_error,
        "num_points": camera.num_points,
    }


def _camera_from_json(data: Dict) -> CameraCalibration:
    calib = Calibration(
        np.array(data["K"]), np.array(data["distortion"]), np.array(data["w2c"]), data["width"], data["height"]
    )
    return CameraCalibration(calib, data["reprojection_error"], data["num_points"])


if __name__ == "__main__":
    main()
