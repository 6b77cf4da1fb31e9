"""End to end from raw videos: synthetic unsynchronised rig videos with audio → splat4d-rig →
ns-train sharptime (300 steps) → ns-eval."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dataparsers.synthetic.raw_rig import RawRigConfig, write_raw_rig

BIN = Path(sys.executable).parent
pytestmark = pytest.mark.slow


def run(*args: str, cwd: Path) -> str:
    env = dict(os.environ, COLUMNS="200", PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}")
    proc = subprocess.run(
        [str(BIN / args[0]), *args[1:]], cwd=cwd, env=env, capture_output=True, text=True, timeout=900
    )
    assert proc.returncode == 0, f"{' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout + proc.stderr


def test_raw_videos_to_trained_and_evaluated_scene(tmp_path: Path):
    write_raw_rig(
        tmp_path / "raw",
        RawRigConfig(num_cameras=8, num_frames=12, width=320, height=240, max_start_frames=2.0, audio=True, seed=3),
    )
    out = run("splat4d-rig", "--videos", "raw", "--out", "scene", "--calibration.num-threads", "2", cwd=tmp_path)
    assert "sync from audio" in out and (tmp_path / "scene" / "optimized" / "sync.json").is_file()
    run(
        "ns-train",
        "sharptime",
        "--data",
        "scene",
        "--max-num-iterations",
        "300",
        "--timestamp",
        "run",
        "--vis",
        "tensorboard",
        "--output-dir",
        "out",
        "--experiment-name",
        "rig",
        "--steps-per-save",
        "300",
        "--pipeline.model.refine-every",
        "20",
        "--pipeline.model.warmup-length",
        "20",
        cwd=tmp_path,
    )
    run("ns-eval", "--load-config", "out/rig/sharptime/run/config.yml", "--output-path", "eval.json", cwd=tmp_path)
    results = json.loads((tmp_path / "eval.json").read_text())["results"]
    assert results["psnr"] > 15.0, results
