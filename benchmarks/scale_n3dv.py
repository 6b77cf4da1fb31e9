"""SharpTimeGS at Neural3DV size: scene generation and the velocity-aware initialization.

    make bench-scale
    .venv/bin/python benchmarks/scale_n3dv.py --stages generate              # only the scene
    .venv/bin/python benchmarks/scale_n3dv.py --frames 300 --json scale.json

Stages (``--stages``, run in the order given; each is a function in ``STAGES``):

- ``generate``: the synthetic scene (``dataparsers.synthetic``) in the Neural3DV layout
  (``camXX.mp4`` + ``poses_bounds.npy`` + ``ground_truth/``), ``--cameras`` (20: cam00 is held out
  by the dataparser) × ``--frames`` at ``--width`` × ``--height`` with one ray per pixel. It is
  written once under ``data/scale_n3dv/<size>/`` and reused; the cameras are rendered by
  ``--workers`` processes into ``<size>.parts/``, which survives an interruption (finished cameras
  are kept, a rerun renders only the missing ones) and is renamed to ``<size>`` when complete.
  The default is 60 frames, not Neural3DV's 300: the numpy ray caster takes about 2 s per
  1352×1014 frame and core, so the full 6000 frames would take about 1.5 h on the 2-core
  development machine; 1200 frames fit in about 25 min. The scene's motion plays over however
  many frames are rendered, so 60 frames move like the 300-frame clip sampled every 5th frame.

Results are printed as a table and, with ``--json``, written as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Callable, Dict, List

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from dataparsers.synthetic.ground_truth import GROUND_TRUTH_DIR, write_scene_ground_truth
from dataparsers.synthetic.rig import RigConfig, camera_rig
from dataparsers.synthetic.scene import default_scene
from dataparsers.synthetic.writers import NATIVE_FPS, encode_mp4, llff_row, synchronized

CONSOLE = Console()
DATA_ROOT = Path("data/scale_n3dv")
NEURAL3DV_FRAMES = 300
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


# ----- generate -----


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
    stats = dict(near=float(depth.min()), far=float(depth.max()), render_seconds=render_seconds,
                 seconds=time.perf_counter() - start)  # fmt: skip
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
    write_scene_ground_truth(parts / GROUND_TRUTH_DIR, "neural3dv", scene, SEED, dict(zip(names, cameras)),
                             synchronized(names, size.frames))  # fmt: skip
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
    progress = Progress(TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), TimeRemainingColumn(), console=CONSOLE)  # fmt: skip
    with progress, ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
        task = progress.add_task("rendering cameras", total=size.cameras, completed=done)
        futures = {pool.submit(render_camera, size, c, parts): c for c in todo}
        for future in as_completed(futures):
            stats = future.result()
            progress.update(task, advance=1, description=f"rendered {camera_name(futures[future])} "
                            f"in {stats['seconds']:.0f} s")  # fmt: skip
    finish_scene(size, parts, out)
    return out


def stage_generate(args: argparse.Namespace, results: Dict) -> None:
    size = SceneSize(args.cameras, args.frames, args.width, args.height)
    start = time.perf_counter()
    existed = (args.data_root / size.name).is_dir()
    scene = generate_scene(size, args.data_root, args.workers)
    seconds = time.perf_counter() - start
    note = "" if size.frames == NEURAL3DV_FRAMES else f" ({size.frames} of Neural3DV's {NEURAL3DV_FRAMES} frames)"
    CONSOLE.print(f"scene {scene}{note}: " + ("cached" if existed else f"generated in {seconds / 60:.1f} min"))
    results["scene"] = dict(path=str(scene), **asdict(size), cached=existed,
                            generate_seconds=None if existed else seconds)  # fmt: skip


STAGES: Dict[str, Callable[[argparse.Namespace, Dict], None]] = {
    "generate": stage_generate,
}


def parse_args(argv: List[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--stages", nargs="+", choices=list(STAGES), default=list(STAGES), help="stages to run, in order")
    p.add_argument("--cameras", type=int, default=20, help="cameras of the rig (cam00 is held out)")
    p.add_argument("--frames", type=int, default=60, help="frames per camera (Neural3DV: 300)")
    p.add_argument("--width", type=int, default=1352)
    p.add_argument("--height", type=int, default=1014)
    p.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1), help="processes rendering cameras")
    p.add_argument("--data-root", type=Path, default=DATA_ROOT, help="where generated scenes are kept")
    p.add_argument("--json", type=Path, default=None, help="also write the results here")
    return p.parse_args(argv)


def main(argv: List[str] | None = None) -> None:
    args = parse_args(argv)
    results: Dict = {}
    for stage in args.stages:
        STAGES[stage](args, results)
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=1))
        CONSOLE.print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
