"""splat4d-rig on synthetic raw rig videos with known truth: sub-frame sync from audio and from
motion, calibration within 0.5° / 1 % of the rig's size after a similarity alignment, the
written scene loads with our SelfCap parser at the right times, stages resume from the cache,
and bad input fails with a message naming the file."""

import dataclasses
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from dataparsers.easyvolcap_calibration import Calibration, read_calibration
from dataparsers.errors import DatasetFormatError
from dataparsers.multiview import MultiViewAutoDataParserConfig, detect_layout
from dataparsers.rig import cli
from dataparsers.rig.calibration import CalibrationError, CalibrationSettings, CameraCalibration, calibrate
from dataparsers.rig.cli import RigCommand, build_rig_scene
from dataparsers.rig.media import decode_audio, scan_video
from dataparsers.rig.pauses import pause_lag
from dataparsers.rig.sync import Signal, SyncError, estimate_lag, solve_clock_shifts
from dataparsers.synthetic.pose_alignment import pose_errors
from dataparsers.synthetic.raw_rig import GROUND_TRUTH_FILE, RawRigConfig, write_raw_rig
from dataparsers.synthetic.writers import encode_mp4
from dataparsers.video import decode_frames, probe_video
from splat4d.geometry import camera_centres

QUIET = Console(file=io.StringIO())


def truth(raw: Path) -> dict:
    return json.loads((raw / GROUND_TRUTH_FILE).read_text())


@pytest.fixture(scope="module")
def motion_capture(tmp_path_factory) -> Path:
    """6 cameras, 40 frames of 160×120, start offsets within ±3 frames, with audio."""
    cfg = RawRigConfig(
        num_cameras=6, num_frames=40, width=160, height=120, max_start_frames=3.0, audio=True, supersample=1, seed=1
    )
    out = tmp_path_factory.mktemp("rig_motion") / "raw"
    write_raw_rig(out, cfg)
    return out


@pytest.fixture(scope="module")
def calibration_capture(tmp_path_factory) -> Path:
    """8 cameras, 10 frames of 320×240 (enough for the static median and the audio sync)."""
    out = tmp_path_factory.mktemp("rig_calibration") / "raw"
    write_raw_rig(
        out, RawRigConfig(num_cameras=8, num_frames=10, width=320, height=240, max_start_frames=2.0, audio=True, seed=2)
    )
    return out


@pytest.fixture(scope="module")
def built(calibration_capture, tmp_path_factory):
    out = tmp_path_factory.mktemp("rig_out") / "scene"
    cmd = RigCommand(videos=calibration_capture, out=out, calibration=CalibrationSettings(num_threads=2))
    return cmd, build_rig_scene(cmd, QUIET)


def test_lag_of_a_smooth_signal_to_a_hundredth_of_a_sample():
    rng = np.random.default_rng(0)
    centres, widths = rng.uniform(0, 200, 40), rng.uniform(2, 6, 40)

    def signal(t: np.ndarray) -> np.ndarray:
        return np.exp(-0.5 * ((t[:, None] - centres) / widths) ** 2).sum(1)

    n = np.arange(150, dtype=np.float64)
    for shift in (-7.3, 0.45, 12.81):
        lag = estimate_lag(signal(n + 20), signal(n + 20 + shift), max_lag=30)
        assert abs(lag.samples - shift) < 0.01 and lag.confidence > 0.99
    with pytest.raises(SyncError, match="constant"):
        estimate_lag(signal(n), np.ones(150), max_lag=10)


def test_pause_timing_ignores_what_only_one_view_sees():
    """Two views of one asymmetric stop (slow braking, quick restart): b sees the motion 3× as
    strongly and also a second mover that a does not see. The correlation peak is pulled by the
    second mover; the timing of the shared pause is not."""
    n = np.arange(100, dtype=np.float64)

    def speed(t: np.ndarray) -> np.ndarray:
        brake = np.where(t < 50, np.exp(-(((t - 50) / 6.0) ** 2)), np.exp(-(((t - 50) / 2.5) ** 2)))
        return (1 + 0.3 * np.sin(t / 7.0)) * (1 - 0.97 * brake)

    correlation_errors, pause_errors = [], []
    for delay in np.arange(-2.5, 2.51, 0.25):
        a = np.log(0.1 + speed(n))
        t = n + delay
        b = np.log(0.3 + 3.0 * speed(t) + 1.5 * np.exp(-(((t - 25) / 4.0) ** 2)))
        coarse = estimate_lag(a, b, max_lag=10).samples
        correlation_errors.append(abs(coarse - delay))
        pause_errors.append(abs(pause_lag(a, b, coarse) - delay))
    assert max(pause_errors) < 0.02, pause_errors
    assert max(correlation_errors) > 0.05  # what the pause timing is for
    flat = np.log(0.1 + 1 + 0.3 * np.sin(n / 7.0))  # no pause: nothing to refine with
    assert pause_lag(flat, flat, 0.0) is None


def test_uncorrelated_camera_is_named():
    rng = np.random.default_rng(1)
    base = rng.normal(size=400).cumsum()
    signals = {
        "a": Signal(base[:300], 30.0, 0.0),
        "b": Signal(base[5:305], 30.0, 0.0),
        "c": Signal(rng.normal(size=300), 30.0, 0.0),
    }
    with pytest.raises(SyncError, match=r"cameras c \(best correlation"):
        solve_clock_shifts(signals, "a", max_shift=1.0, min_confidence=0.5)


def sync_errors(raw: Path, source: str) -> dict:
    """Recovered minus true start (frames) of every camera, sync from ``source``."""
    gt = truth(raw)
    scans = {n: scan_video(raw / f"{n}.mp4", 2, 64) for n in gt["cameras"]}
    if source == "audio":
        signals = {n: decode_audio(raw / f"{n}.mp4", 16000).signal(scans[n].start_time) for n in gt["cameras"]}
    else:
        signals = {n: scan.motion_signal() for n, scan in scans.items()}
    shifts = solve_clock_shifts(signals, "cam0", max_shift=0.3, min_confidence=0.5, pauses=source == "video")
    return {n: shifts.shifts[n] * gt["fps"] - cam["start_frame"] for n, cam in gt["cameras"].items()}


def test_audio_sync_within_a_tenth_of_a_frame(motion_capture):
    errors = sync_errors(motion_capture, "audio")
    assert max(map(abs, errors.values())) < 0.1, errors


def test_motion_sync_within_a_tenth_of_a_frame(motion_capture):
    errors = sync_errors(motion_capture, "video")
    assert max(map(abs, errors.values())) < 0.1, errors


def test_epipolar_refinement_of_the_motion_sync(motion_capture, tmp_path, monkeypatch):
    """The refine stage with the true calibration (SfM cannot calibrate 160×120): cameras whose
    moving points do not time them precisely enough keep their motion-energy shift, with the
    reason in the note; the result stays within 0.1 frame and is cached."""
    gt = truth(motion_capture)
    videos = {n: motion_capture / f"{n}.mp4" for n in gt["cameras"]}
    scans = {n: scan_video(path, 2, 64) for n, path in videos.items()}
    coarse = solve_clock_shifts({n: s.motion_signal() for n, s in scans.items()}, "cam0", 0.3, 0.5, pauses=True)
    cameras = {
        n: CameraCalibration(Calibration(np.array(c["K"]), np.zeros(5), np.array(c["w2c"]), 160, 120), 0.0, 100)
        for n, c in gt["cameras"].items()
    }
    cmd = RigCommand(videos=motion_capture, out=tmp_path, sync="video")
    keys = {n: n for n in videos}
    shifts, note = cli.refine_sync(videos, scans, keys, coarse, cameras, "cam0", gt["fps"], cmd, tmp_path, QUIET)
    errors = {n: shifts.shifts[n] * gt["fps"] - c["start_frame"] for n, c in gt["cameras"].items()}
    assert max(map(abs, errors.values())) < 0.1, errors
    assert note.startswith("epipolar: ") and ("keep their motion-energy shifts" in note or "5 of 5" in note), note
    monkeypatch.setattr(cli, "refine_shifts", lambda *args: pytest.fail("the cached refinement ran again"))
    again, _ = cli.refine_sync(videos, scans, keys, coarse, cameras, "cam0", gt["fps"], cmd, tmp_path, QUIET)
    assert again.shifts == shifts.shifts


def test_rig_calibration_and_sync_against_truth(built, calibration_capture):
    cmd, summary = built
    gt = truth(calibration_capture)
    calib = read_calibration(cmd.out / "optimized" / "intri.yml", cmd.out / "optimized" / "extri.yml")
    errors = pose_errors(
        {n: c.w2c for n, c in calib.items()}, {n: np.array(c["w2c"]) for n, c in gt["cameras"].items()}
    )
    assert max(errors.rotation_deg.values()) < 0.5, errors.rotation_deg
    assert max(errors.centre_fraction.values()) < 0.01, errors.centre_fraction
    for name, cam in gt["cameras"].items():
        assert np.allclose(calib[name].K, cam["K"], rtol=0.02, atol=1.0), (name, calib[name].K)
        assert summary.reprojection_error[name] < 1.5 and summary.num_points[name] > 20
    # sync.json as the parser applies it: written frame m of camera c is at m / fps − offset;
    # it shows scene frame first_c + m + start_c; the reference's frame 0 is time 0
    fps = gt["fps"]
    offsets = json.loads((cmd.out / "optimized" / "sync.json").read_text())
    origin = summary.first_frame["cam0"]
    for name, cam in gt["cameras"].items():
        true_time = (summary.first_frame[name] + cam["start_frame"] - origin) / fps
        assert abs(-offsets[name] - true_time) * fps < 0.1, (name, offsets[name], true_time)
        assert abs(offsets[name]) * fps <= 0.5 + 0.1
    assert summary.sync_source == "audio" and min(summary.confidence.values()) > 0.9


def test_written_scene_loads_with_the_selfcap_parser(built):
    cmd, summary = built
    assert detect_layout(cmd.out) == "selfcap"
    parser = MultiViewAutoDataParserConfig(data=cmd.out).setup()
    parser.config.selfcap.downscale = 1.0
    outputs = parser.get_dataparser_outputs("train")
    cameras = len(summary.offsets) - 1  # one test camera
    assert len(outputs.image_filenames) == cameras * summary.frame_count


def test_stages_resume_from_the_cache(built, monkeypatch):
    cmd, summary = built
    videos = {p: p.stat().st_mtime_ns for p in (cmd.out / "videos").glob("*.mp4")}

    def fail(*args, **kwargs):
        raise AssertionError("a cached stage ran again")

    for stage in ("scan_video", "calibrate", "solve_clock_shifts", "write_scene"):
        monkeypatch.setattr(cli, stage, fail)
    again = build_rig_scene(cmd, QUIET)
    assert again == summary
    assert videos == {p: p.stat().st_mtime_ns for p in (cmd.out / "videos").glob("*.mp4")}


def test_bad_input_names_the_problem(tmp_path, calibration_capture):
    frames = [np.full((24, 32, 3), 128, np.uint8)] * 4
    (tmp_path / "one").mkdir()
    encode_mp4(tmp_path / "one" / "a.mp4", frames, 30.0, 20)
    with pytest.raises(DatasetFormatError, match="a rig needs at least 2"):
        build_rig_scene(RigCommand(videos=tmp_path / "one", out=tmp_path / "o1"), QUIET)

    (tmp_path / "broken").mkdir()
    encode_mp4(tmp_path / "broken" / "a.mp4", frames, 30.0, 20)
    (tmp_path / "broken" / "b.mp4").write_bytes(b"not a video at all" * 100)
    with pytest.raises(DatasetFormatError, match=r"b\.mp4: .*cannot be decoded"):
        build_rig_scene(RigCommand(videos=tmp_path / "broken", out=tmp_path / "o2"), QUIET)

    (tmp_path / "silent").mkdir()
    encode_mp4(tmp_path / "silent" / "a.mp4", frames, 30.0, 20)
    encode_mp4(tmp_path / "silent" / "b.mp4", frames, 30.0, 20)
    with pytest.raises(DatasetFormatError, match=r"a\.mp4: has no audio track"):
        build_rig_scene(RigCommand(videos=tmp_path / "silent", out=tmp_path / "o3", sync="audio"), QUIET)
    # no motion and no audio: nothing to synchronise with
    with pytest.raises(SyncError, match="constant"):
        build_rig_scene(RigCommand(videos=tmp_path / "silent", out=tmp_path / "o4"), QUIET)


def test_sfm_failure_is_reported(tmp_path):
    rng = np.random.default_rng(0)
    plates = {f"cam{k}": rng.integers(0, 255, (120, 160, 3), dtype=np.uint8) for k in range(3)}
    with pytest.raises(CalibrationError, match="structure-from-motion"):
        calibrate(plates, {n: (160, 120) for n in plates}, tmp_path / "colmap", CalibrationSettings(num_threads=2))


def test_metric_scale_frame_range_and_resolution(built, tmp_path):
    cmd, summary = built
    out = tmp_path / "scene"
    shutil.copytree(cmd.out / cli.WORK_DIR, out / cli.WORK_DIR)  # reuses the scan, sync and calibration
    scaled_cmd = dataclasses.replace(cmd, out=out, known_distance=("cam0", "cam1", 2.0), downscale=2.0, frame_count=4)
    scaled = build_rig_scene(scaled_cmd, QUIET)
    assert scaled.frame_count == 4 and scaled.offsets == summary.offsets and scaled.metric_scale > 0
    before = read_calibration(cmd.out / "optimized" / "intri.yml", cmd.out / "optimized" / "extri.yml")
    after = read_calibration(out / "optimized" / "intri.yml", out / "optimized" / "extri.yml")
    centre = {n: camera_centres(c.w2c) for n, c in after.items()}
    assert np.linalg.norm(centre["cam0"] - centre["cam1"]) == pytest.approx(2.0, rel=1e-6)
    assert (after["cam3"].width, after["cam3"].height) == (160, 120)
    assert np.allclose(after["cam3"].K[:2], before["cam3"].K[:2] / 2)
    info = probe_video(out / "videos" / "cam3.mp4")
    assert (info.width, info.height) == (160, 120)
    assert sum(1 for _ in decode_frames(out / "videos" / "cam3.mp4", 0, None)) == 4
