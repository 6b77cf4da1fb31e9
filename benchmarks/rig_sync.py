"""Video-only sync of ``splat4d-rig`` on synthetic raw rig captures with known start offsets
(issue 16): per capture, the worst camera's error in frames with the correlation peak alone
(before), with the pause timing (after), and then refined by moving points on the epipolar
lines (moving_points.py) with the ground-truth calibration (pycolmap cannot calibrate the
160×120 captures: it places 2 of 6 cameras), and where the error comes from. ``--hires-captures``
renders the same captures at 640×480, where the refinement also runs on pycolmap's calibration.

    .venv/bin/python benchmarks/rig_sync.py [--captures 1:40 4:40 8:90 ...] [--no-decompose]
        [--hires-captures 4:40 ...] [--json out.json]

Every capture is what tests/test_rig.py's ``motion_capture`` fixture renders (6 cameras, 160×120,
start offsets uniform within ±3 frames, supersample 1, H.264 crf 12) for another seed and clip
length (``seed:frames``; 1:40 is the fixture itself); the sync is the one ``splat4d-rig --sync
video`` runs (scan_video's log motion energy, all pairs, ±0.3 s, confidence ≥ 0.5).

The decomposition renders single cameras of a capture's scene without offsets, encodes and
scans them the same way, and measures two lags whose truth is known exactly:
- same view, sub-frame phases 0.1 … 0.9 against phase 0: the estimator and the frame-rate
  sampling alone (the signals differ only by the shift);
- each camera against camera 0 at identical times (truth 0): how much the view alone moves the
  estimate.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np
import tyro

from dataparsers.easyvolcap_calibration import Calibration
from dataparsers.rig.calibration import CalibrationSettings, calibrate, median_plate
from dataparsers.rig.media import scan_video
from dataparsers.rig.moving_points import EpipolarSettings, refine_shifts
from dataparsers.rig.pauses import pause_lag
from dataparsers.rig.sync import estimate_lag, solve_clock_shifts
from dataparsers.synthetic.raw_rig import GROUND_TRUTH_FILE, RawRigConfig, stop_and_go_scene, write_raw_rig
from dataparsers.synthetic.rig import RigConfig, camera_rig
from dataparsers.synthetic.scene import default_scene
from dataparsers.synthetic.writers import encode_mp4, render_camera

MAX_SHIFT = 0.3  # seconds, as in tests/test_rig.py
MIN_CONFIDENCE = 0.5


@dataclass
class RigSyncBenchmark:
    captures: Tuple[str, ...] = ("1:40", "3:40", "4:40", "5:40", "6:40", "7:40", "10:40", "11:40", "12:40")
    """``seed:frames`` per capture (1:40 is the test fixture)."""
    long_captures: Tuple[str, ...] = ("13:60", "14:80", "8:90", "15:100", "9:120")
    """Longer clips: the same story over more frames, so slower motion per frame."""
    decompose: bool = True
    """Also measure the estimator alone and the view alone (about a minute)."""
    decompose_captures: Tuple[str, ...] = ("1:40", "8:90")
    hires_captures: Tuple[str, ...] = ("1:40", "4:40")
    """Captures also rendered at 640×480 (about a minute each), refined with the true and with
    pycolmap's calibration."""
    json: Optional[Path] = None
    """Write all numbers here."""


def capture_config(seed: int, frames: int, width: int = 160) -> RawRigConfig:
    """The test fixture's capture for another seed and clip length (no audio: video-only sync)."""
    return RawRigConfig(
        num_cameras=6,
        num_frames=frames,
        width=width,
        height=width * 3 // 4,
        max_start_frames=3.0,
        supersample=1,
        seed=seed,
    )


def sync_errors(folder: Path, calibration: Optional[str] = None) -> Dict[str, Dict[str, float]]:
    """Recovered minus true start frame per camera, video-only sync as splat4d-rig runs it:
    correlation, + pauses and, with ``calibration`` ("truth" or "pycolmap"), + epipolar."""
    truth = json.loads((folder / GROUND_TRUTH_FILE).read_text())
    names = list(truth["cameras"])
    scans = {n: scan_video(folder / f"{n}.mp4", 15, 1600) for n in names}
    signals = {n: scan.motion_signal() for n, scan in scans.items()}
    results = {
        "before": solve_clock_shifts(signals, "cam0", MAX_SHIFT, MIN_CONFIDENCE),
        "after": solve_clock_shifts(signals, "cam0", MAX_SHIFT, MIN_CONFIDENCE, pauses=True),
    }
    if calibration is not None:
        size = {n: (s.width, s.height) for n, s in scans.items()}
        if calibration == "truth":
            cams = {
                n: Calibration(np.array(c["K"]), np.zeros(5), np.array(c["w2c"]), *size[n])
                for n, c in truth["cameras"].items()
            }
        else:
            plates = {n: median_plate(s.samples) for n, s in scans.items()}
            solved = calibrate(plates, size, folder / "colmap", CalibrationSettings(num_threads=1))
            cams = {n: c.calibration for n, c in solved.items()}
        videos = {n: folder / f"{n}.mp4" for n in names}
        frames = {n: s.num_frames for n, s in scans.items()}
        energy = scans["cam0"].motion_energy
        refined = refine_shifts(
            videos, frames, energy, results["after"], cams, truth["fps"], "cam0", EpipolarSettings()
        )
        results["epipolar"] = refined.shifts
    return {
        key: {n: shifts.shifts[n] * truth["fps"] - cam["start_frame"] for n, cam in truth["cameras"].items()}
        for key, shifts in results.items()
    }


def camera_signal(seed: int, frames: int, camera: int, phase: float, folder: Path) -> np.ndarray:
    """Log motion energy of one camera of the capture's scene whose frame n shows scene frame
    n + 3 + ``phase`` (encoded and scanned like the captures)."""
    cfg = capture_config(seed, frames)
    span = int(np.ceil(2 * cfg.max_start_frames))  # the scene length write_raw_rig renders
    scene = stop_and_go_scene(default_scene(frames + span, cfg.fps, seed))
    cam = camera_rig(RigConfig(num_cameras=cfg.num_cameras, width=cfg.width, height=cfg.height))[camera]
    media, _ = render_camera(scene, cam, (np.arange(frames) + cfg.max_start_frames + phase).tolist(), 1)
    path = folder / f"cam{camera}-{phase:.2f}.mp4"
    encode_mp4(path, media, cfg.fps, cfg.video_crf)
    return scan_video(path, 2, 64).motion_signal().values


def lag_errors(reference: np.ndarray, signal: np.ndarray, truth: float) -> Tuple[float, float]:
    """Error of the correlation lag and of the pause-timed lag (the correlation's where no
    pause is shared), in frames."""
    max_lag = int(np.ceil(MAX_SHIFT * RawRigConfig().fps)) + 1  # as solve_clock_shifts searches
    coarse = estimate_lag(reference, signal, max_lag).samples
    refined = pause_lag(reference, signal, coarse)
    return coarse - truth, (coarse if refined is None else refined) - truth


def decompose(seed: int, frames: int, folder: Path) -> Dict[str, List[Tuple[float, float]]]:
    """Same-view phase errors (camera 0) and cross-view errors at identical times (cameras 1–5)."""
    base = camera_signal(seed, frames, 0, 0.0, folder)
    phases = np.round(np.arange(0.1, 1.0, 0.1), 2)
    same_view = [lag_errors(base, camera_signal(seed, frames, 0, p, folder), p) for p in phases]
    cross_view = [lag_errors(base, camera_signal(seed, frames, c, 0.0, folder), 0.0) for c in range(1, 6)]
    return {"same_view": same_view, "cross_view": cross_view}


def parse(spec: str) -> Tuple[int, int]:
    seed, frames = spec.split(":")
    return int(seed), int(frames)


def main(args: RigSyncBenchmark) -> None:
    results: Dict[str, Dict] = {}
    print("| capture (seed:frames) | calibration | before: correlation | after: + pause timing | after: + epipolar |")
    print("|---|---|---|---|---|")
    runs = [(spec, 160, "truth") for spec in args.captures + args.long_captures]
    runs += [(spec, 640, calib) for spec in args.hires_captures for calib in ("truth", "pycolmap")]
    with tempfile.TemporaryDirectory() as tmp:
        for spec, width, calibration in runs:
            seed, frames = parse(spec)
            folder = Path(tmp) / f"capture-{seed}-{frames}-{width}"
            if not folder.is_dir():
                write_raw_rig(folder, capture_config(seed, frames, width))
            errors = sync_errors(folder, calibration)
            worst = {key: max(map(abs, e.values())) for key, e in errors.items()}
            label = spec if width == 160 else f"{spec} at {width}×{width * 3 // 4}"
            results[f"{label} {calibration}"] = {**errors, "worst": worst}
            row = " | ".join(f"{worst[k]:.3f}" for k in ("before", "after", "epipolar"))
            print(f"| {label} | {calibration} | {row} |", flush=True)
        if args.decompose:
            print("\n| capture | lags | correlation: max error (frames) | pause timing: max error (frames) |")
            print("|---|---|---|---|")
            for spec in args.decompose_captures:
                parts = decompose(*parse(spec), Path(tmp))
                results[f"{spec} truth"]["decomposition"] = parts
                for name, errors in parts.items():
                    worst_corr, worst_pause = np.abs(np.asarray(errors)).max(axis=0)
                    label = "same view, phases 0.1–0.9" if name == "same_view" else "cameras 1–5 vs 0, same times"
                    print(f"| {spec} | {label} | {worst_corr:.3f} | {worst_pause:.3f} |", flush=True)
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main(tyro.cli(RigSyncBenchmark, description=__doc__))
