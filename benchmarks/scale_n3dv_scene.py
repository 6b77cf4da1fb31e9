"""The Neural3DV-size synthetic scene of ``benchmarks/scale_n3dv.py`` (its ``generate`` stage):
rendered once per size by worker processes, camera by camera, into a ``.parts`` folder that
survives an interruption and is renamed when complete."""

from __future__ import annotations

import json
import shutil
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Dict

import numpy as np
from rich.console import Console

from dataparsers.synthetic.ground_truth import GROUND_TRUTH_DIR, write_scene_ground_truth
from dataparsers.synthetic.rig import RigConfig, camera_rig
from dataparsers.synthetic.scene import default_scene
from dataparsers.synthetic.writers import NATIVE_FPS, encode_mp4, llff_row, synchronized
from splat4d.progress import progress_bar

CONSOLE = Console()
SEED = 0
VIDEO_CRF = 10  # the synthetic writers' default (SynthesisConfig.video_crf)


@dataclass(frozen=True)
class SceneSize:
    """The generated scene: Neural3DV's rig size and resolution, possibly fewer frames."""

    cameras: int
    frames: int
    width: int
    height: int

    @property
    def name(self) -> str:
        return f"{self.cameras}cams_{self.frames}frames_{self.width}x{self.height}"


def camera_name(index: int) -> str:
    return f"cam{index:02d}"


def render_camera(size: SceneSize, index: int, parts: Path) -> Dict[str, float]:
    """Render one camera's video and ground truth into ``parts`` (files appear complete or not at
    all; ``<camera>.json``, holding its depth range, is written last and marks it done)."""
    scene = default_scene(size.frames, NATIVE_FPS["neural3dv"], SEED)
    cam = camera_rig(RigConfig(num_cameras=size.cameras, width=size.width, height=size.height))[index]
    name = camera_name(index)
    start = time.perf_counter()
    rgb = np.empty((size.frames, size.height, size.width, 3), np.uint8)
    depth = np.empty((size.frames, size.height, size.width), np.float32)
    object_id = np.empty((size.frames, size.height, size.width), np.int16)
    for f in range(size.frames):
        r = scene.render(cam, f, supersample=1)
        rgb[f] = np.round(r.rgb * 255).astype(np.uint8)
        depth[f], object_id[f] = r.depth, r.object_id
    render_seconds = time.perf_counter() - start
    partial_video = parts / f"{name}.partial.mp4"
    encode_mp4(partial_video, rgb, scene.fps, VIDEO_CRF)
    partial_video.replace(parts / f"{name}.mp4")
    # the ground_truth/<camera>.npz layout of dataparsers.synthetic.ground_truth (one camera in memory)
    partial_truth = parts / GROUND_TRUTH_DIR / f"{name}.partial.npz"
    np.savez_compressed(partial_truth, rgb=rgb, depth=depth, object_id=object_id)
    partial_truth.replace(parts / GROUND_TRUTH_DIR / f"{name}.npz")
    stats = dict(
        near=float(depth.min()),
        far=float(depth.max()),
        render_seconds=render_seconds,
        seconds=time.perf_counter() - start,
    )
    (parts / f"{name}.json").write_text(json.dumps(stats))
    return stats


def finish_scene(size: SceneSize, parts: Path, out: Path) -> None:
    """poses_bounds.npy and the scene ground truth, then ``parts`` becomes ``out``."""
    scene = default_scene(size.frames, NATIVE_FPS["neural3dv"], SEED)
    cameras = camera_rig(RigConfig(num_cameras=size.cameras, width=size.width, height=size.height))
    names = [camera_name(c) for c in range(size.cameras)]
    ranges = [json.loads((parts / f"{n}.json").read_text()) for n in names]
    rows = [llff_row(cam, 0.9 * r["near"], 1.1 * r["far"]) for cam, r in zip(cameras, ranges, strict=True)]
    np.save(parts / "poses_bounds.npy", np.array(rows))
    write_scene_ground_truth(
        parts / GROUND_TRUTH_DIR, "neural3dv", scene, SEED, dict(zip(names, cameras)), synchronized(names, size.frames)
    )
    for n in names:
        (parts / f"{n}.json").unlink()
    parts.rename(out)


def generate_scene(size: SceneSize, root: Path, workers: int) -> Path:
    """The scene folder for ``size`` under ``root``, rendered first if it does not exist yet."""
    out = root / size.name
    if out.is_dir():
        return out
    parts = root / f"{size.name}.parts"
    (parts / GROUND_TRUTH_DIR).mkdir(parents=True, exist_ok=True)
    todo = [c for c in range(size.cameras) if not (parts / f"{camera_name(c)}.json").is_file()]
    done = size.cameras - len(todo)
    free_gb = shutil.disk_usage(root).free / 2**30
    CONSOLE.print(
        f"generating {out}: {size.cameras} cameras × {size.frames} frames at {size.width}×{size.height} "
        f"({done} cameras already rendered, {workers} workers, {free_gb:.0f} GiB free)"
    )
    with progress_bar(True) as progress, ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
        task = progress.add_task("rendering cameras", total=size.cameras, completed=done)
        futures = {pool.submit(render_camera, size, c, parts): c for c in todo}
        for future in as_completed(futures):
            stats = future.result()
            progress.update(
                task, advance=1, description=f"rendered {camera_name(futures[future])} in {stats['seconds']:.0f} s"
            )
    finish_scene(size, parts, out)
    return out
