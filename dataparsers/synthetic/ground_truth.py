"""Ground truth stored beside a synthetic scene, in ``<scene>/ground_truth/``:

- ``scene.json``: format, family, num_frames, fps, seed (``SCENES[family](num_frames, fps, seed)``:
  ``default_scene``, ``transient_scene`` or ``articulated_scene``, rebuilds the analytic scene), object names and visibility
  intervals, the frames at which a transient changes state (``transient_events``; transient
  family only, else empty), and per camera its
  name in the dataset, K, w2c (OpenCV axes, world z-up), size, distortion and
  ``scene_frames`` (the fractional scene frame shown by each of its frames; they differ
  from 0, 1, 2, … only when SelfCap sync offsets are simulated);
- ``object_poses.npy`` [F, objects, 4, 4] object->world at scene frames 0 … F−1 and
  ``object_visible.npy`` [F, objects];
- ``<camera>.npz``: ``rgb`` uint8 [F, H, W, 3], ``depth`` float32 [F, H, W] (camera z) and
  ``object_id`` int16 [F, H, W] (−1 static), all for the undistorted pinhole camera K (what
  the parsers produce after undistortion), before any video / JPEG compression.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Sequence

import numpy as np

from dataparsers.synthetic.articulated import articulated_scene
from dataparsers.synthetic.scene import PinholeCamera, RenderResult, SyntheticScene, default_scene
from dataparsers.synthetic.transient_scene import FAMILY as TRANSIENT, TransientScene, transient_scene

SCENES = {"default": default_scene, TRANSIENT: transient_scene, "articulated": articulated_scene}  # by family

GROUND_TRUTH_DIR = "ground_truth"


def write_camera_ground_truth(folder: Path, name: str, renders: Sequence[RenderResult]) -> None:
    np.savez_compressed(
        folder / f"{name}.npz",
        rgb=np.stack([np.round(r.rgb * 255).astype(np.uint8) for r in renders]),
        depth=np.stack([r.depth for r in renders]),
        object_id=np.stack([r.object_id for r in renders]),
    )


def write_scene_ground_truth(
    folder: Path,
    fmt: str,
    scene: SyntheticScene,
    seed: int,
    cameras: Dict[str, PinholeCamera],
    scene_frames: Dict[str, np.ndarray],
    family: str = "default",
) -> None:
    """``family``: the SCENES entry that built ``scene`` (a TransientScene is always "transient")."""
    frames = range(scene.num_frames)
    poses = np.array([[scene.object_pose(k, f) for k in range(len(scene.objects))] for f in frames])
    visible = np.array([[scene.is_visible(k, f) for k in range(len(scene.objects))] for f in frames], dtype=bool)
    np.save(folder / "object_poses.npy", poses.reshape(scene.num_frames, len(scene.objects), 4, 4))
    np.save(folder / "object_visible.npy", visible.reshape(scene.num_frames, len(scene.objects)))
    meta = {
        "format": fmt,
        "family": TRANSIENT if isinstance(scene, TransientScene) else family,
        "transient_events": scene.transient_events() if isinstance(scene, TransientScene) else [],
        "num_frames": scene.num_frames,
        "fps": scene.fps,
        "seed": seed,
        "objects": [
            {"name": o.name, "appear": _finite_or_none(o.appear), "disappear": _finite_or_none(o.disappear)}
            for o in scene.objects
        ],
        "cameras": {
            name: {
                "K": cam.K.tolist(),
                "w2c": cam.w2c.tolist(),
                "width": cam.width,
                "height": cam.height,
                "distortion": None if cam.distortion is None else np.asarray(cam.distortion).tolist(),
                "scene_frames": np.asarray(scene_frames[name], dtype=np.float64).tolist(),
            }
            for name, cam in cameras.items()
        },
    }
    (folder / "scene.json").write_text(json.dumps(meta, indent=1))


def _finite_or_none(x: float):
    return float(x) if np.isfinite(x) else None


@dataclass
class GroundTruth:
    """The ground truth of a synthetic scene folder (see the module docstring)."""

    folder: Path
    format: str
    family: str
    transient_events: List[int]
    num_frames: int
    fps: float
    seed: int
    cameras: Dict[str, PinholeCamera]
    scene_frames: Dict[str, np.ndarray]
    object_names: List[str]
    object_poses: np.ndarray
    object_visible: np.ndarray

    def scene(self) -> SyntheticScene:
        return SCENES[self.family](self.num_frames, self.fps, self.seed)

    def camera_frames(self, name: str) -> Dict[str, np.ndarray]:
        """rgb, depth, object_id and dynamic_mask arrays [F, H, …] of one camera."""
        with np.load(self.folder / f"{name}.npz") as data:
            out = {key: data[key] for key in data.files}
        out["dynamic_mask"] = out["object_id"] >= 0
        return out


def load_ground_truth(scene_dir: Path) -> GroundTruth:
    folder = Path(scene_dir) / GROUND_TRUTH_DIR
    meta = json.loads((folder / "scene.json").read_text())
    cameras = {
        name: PinholeCamera(
            K=np.array(c["K"]),
            w2c=np.array(c["w2c"]),
            width=c["width"],
            height=c["height"],
            distortion=None if c["distortion"] is None else np.array(c["distortion"]),
        )
        for name, c in meta["cameras"].items()
    }
    return GroundTruth(
        folder=folder,
        format=meta["format"],
        family=meta.get("family", "default"),
        transient_events=meta.get("transient_events", []),
        num_frames=meta["num_frames"],
        fps=meta["fps"],
        seed=meta["seed"],
        cameras=cameras,
        scene_frames={name: np.array(c["scene_frames"]) for name, c in meta["cameras"].items()},
        object_names=[o["name"] for o in meta["objects"]],
        object_poses=np.load(folder / "object_poses.npy"),
        object_visible=np.load(folder / "object_visible.npy"),
    )
