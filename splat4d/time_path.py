"""Write an ``ns-render camera-path`` JSON that sweeps time from one viewpoint (or a viewer-made
path with times added), so ``ns-render`` shows the scene moving.

    splat4d-time-path --load-config outputs/.../config.yml --output-path time_sweep.json --num-frames 60
    ns-render camera-path --load-config outputs/.../config.yml --camera-path-filename time_sweep.json \
        --output-path renders/sweep.mp4

``ns-render`` passes times to the model only when every keyframe has ``render_time`` (our paths
always do); ``ns-render interpolate`` sends none and renders t = 0.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional

import tyro
import yaml
from nerfstudio.cameras.cameras import Cameras
from nerfstudio.utils.rich_utils import CONSOLE


def time_sweep_path(
    cameras: Cameras, index: int, num_frames: int, fps: float, t0: float = 0.0, t1: float = 1.0
) -> Dict[str, Any]:
    """Camera-path dict: camera ``index`` held still while render_time goes from t0 to t1."""
    cam = cameras[index]
    width, height = int(cam.width), int(cam.height)
    fov = math.degrees(2 * math.atan(0.5 * height / float(cam.fy)))
    c2w = cam.camera_to_worlds.tolist() + [[0.0, 0.0, 0.0, 1.0]]
    flat = [v for row in c2w for v in row]
    frames = [
        {
            "camera_to_world": flat,
            "fov": fov,
            "aspect": width / height,
            "render_time": t0 + (t1 - t0) * i / max(num_frames - 1, 1),
        }
        for i in range(num_frames)
    ]
    return {
        "camera_type": "perspective",
        "render_height": height,
        "render_width": width,
        "camera_path": frames,
        "fps": fps,
        "seconds": num_frames / fps,
    }


def add_times(path: Dict[str, Any], t0: float = 0.0, t1: float = 1.0) -> Dict[str, Any]:
    """A copy of a camera-path dict with render_time spread evenly from t0 to t1."""
    n = len(path["camera_path"])
    frames = [dict(f, render_time=t0 + (t1 - t0) * i / max(n - 1, 1)) for i, f in enumerate(path["camera_path"])]
    return dict(path, camera_path=frames)


@dataclass
class TimePath:
    load_config: Path
    """config.yml of a trained run (its dataparser gives the cameras)."""
    output_path: Path = Path("time_sweep.json")
    """Camera-path JSON to write."""
    camera_index: int = 0
    """Which evaluation camera to hold still (ignored with --from-path)."""
    from_path: Optional[Path] = None
    """A camera path exported from the viewer: keep its poses, add render times."""
    num_frames: int = 60
    """Frames of the sweep."""
    fps: float = 30.0
    """Frame rate of the output video."""
    start_time: float = 0.0
    """First render time (normalised sequence time in [0, 1])."""
    end_time: float = 1.0
    """Last render time."""

    def main(self) -> None:
        if self.from_path is not None:
            path = add_times(json.loads(self.from_path.read_text()), self.start_time, self.end_time)
        else:
            config = yaml.load(self.load_config.read_text(), Loader=yaml.Loader)
            datamanager = config.pipeline.datamanager
            if datamanager.data is not None:  # --data given at training time overrides the parser's
                datamanager.dataparser.data = datamanager.data
            outputs = datamanager.dataparser.setup().get_dataparser_outputs(split="test")
            if not 0 <= self.camera_index < len(outputs.cameras):
                raise SystemExit(f"--camera-index must be in [0, {len(outputs.cameras) - 1}]")
            path = time_sweep_path(
                outputs.cameras, self.camera_index, self.num_frames, self.fps, self.start_time, self.end_time
            )
        self.output_path.parent.mkdir(parents=True, exist_ok=True)
        self.output_path.write_text(json.dumps(path, indent=1))
        CONSOLE.print(f"wrote {len(path['camera_path'])} keyframes with render_time to {self.output_path}")


def entrypoint() -> None:
    tyro.cli(TimePath).main()


if __name__ == "__main__":
    entrypoint()
