"""SharpTimeGS datamanager: lazy multi-view images plus the velocity-aware initial Gaussians.

When training starts it runs (or loads from its cache) ``sharptime_ns.init`` on the training
cameras and hands the points to the pipeline as seed points (``points3D_xyz``/``points3D_rgb``)
and to the model as ``metadata["sharptime_init"]``. With no ``--data`` it trains on the embedded
synthetic demo scene, generated on first use.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal, Type

import numpy as np
import torch
from nerfstudio.utils.rich_utils import CONSOLE

from dataparsers.multiview import MultiViewAutoDataParserConfig
from dataparsers.subcommands import multiview_dataparser_union
from dataparsers.synthetic.writers import SynthesisConfig, write_scene
from sharptime_ns.init.config import VelocityInitConfig
from sharptime_ns.init.driver import velocity_aware_init
from sharptime_ns.init.inputs import MultiViewFrames
from splat4d.datamanager import LazyImageDatamanager, LazyImageDatamanagerConfig
from splat4d.geometry import opengl_c2w_to_opencv_w2c

DEMO_DATA = Path("data/sharptime-demo")
"""Where the synthetic demo scene lives (relative to the working directory)."""
DEMO_SCENE = SynthesisConfig(family="transient", num_cameras=21)
"""The demo scene: the Neural3DV-like benchmark family (21 cameras, camera 00 held out, 30 frames,
160×120), written in Neural3DV's format."""

MultiViewDataParsers = multiview_dataparser_union(default_data=DEMO_DATA)
"""``multiview`` (default), ``neural3dv``, ``enerf-outdoor``, ``selfcap`` or ``easyvolcap`` subcommand."""


@dataclass
class SharpTimeDatamanagerConfig(LazyImageDatamanagerConfig):
    _target: Type = field(default_factory=lambda: SharpTimeDatamanager)
    dataparser: MultiViewDataParsers = field(default_factory=lambda: MultiViewAutoDataParserConfig(data=DEMO_DATA))
    """Dataparser subcommand (see dataparsers/DATASETS.md); none given: auto-detect the layout."""
    init_method: Literal["velocity", "random"] = "velocity"
    """velocity: velocity-aware initialization from triangulated per-frame points; random
    (ablation): splatfacto's random initialization."""
    init: VelocityInitConfig = field(default_factory=VelocityInitConfig)
    """Settings of the velocity-aware initialization (its cache: ``use_cache``)."""


def ensure_demo_scene(data: Path) -> None:
    """Generate the synthetic demo scene if ``data`` is the demo path and missing (about 3 minutes)."""
    if data.resolve() == DEMO_DATA.resolve() and not data.exists():
        CONSOLE.log(f"generating the synthetic demo scene in {data} (first use, a few minutes)")
        write_scene("neural3dv", data, DEMO_SCENE)


class SharpTimeDatamanager(LazyImageDatamanager):
    config: SharpTimeDatamanagerConfig

    def __init__(self, config: SharpTimeDatamanagerConfig, *args, **kwargs) -> None:
        data = Path(config.data) if config.data is not None else config.dataparser.data
        ensure_demo_scene(data)
        super().__init__(config, *args, **kwargs)
        if self.test_mode == "val" and config.init_method == "velocity":  # training: initial Gaussians needed
            self._add_initial_points()

    def publish(self, key: str, value) -> None:
        """Metadata for the pipeline (reads the dataparser outputs) and the model (reads the
        train dataset's copy of them)."""
        self.train_dataparser_outputs.metadata[key] = value
        self.train_dataset.metadata[key] = value

    def _add_initial_points(self) -> None:
        points = velocity_aware_init(self.multiview_frames(), self.config.init)
        if points is None:
            CONSOLE.log("[yellow]velocity-aware init produced too few points: using random initialization")
            return
        self.publish("points3D_xyz", torch.from_numpy(points.means).float())
        self.publish("points3D_rgb", torch.from_numpy(points.colors))
        self.publish("sharptime_init", {k: v for k, v in asdict(points).items() if k not in ("means", "colors")})
        CONSOLE.log(f"velocity-aware init: {len(points.means)} points ({int(points.is_dynamic.sum())} dynamic)")

    def multiview_frames(self) -> MultiViewFrames:
        """The training images grouped by frame and camera, with OpenCV world->camera poses."""
        outputs = self.train_dataparser_outputs
        names, frame_ids = outputs.metadata["camera_names"], outputs.metadata["frame_indices"]
        cameras = sorted(set(names))
        frames = sorted(set(frame_ids))
        index = {(f, c): i for i, (c, f) in enumerate(zip(names, frame_ids))}
        first = [index[(frames[0], c)] for c in cameras]
        cams = outputs.cameras
        Ks = cams.get_intrinsics_matrices()[first].numpy()
        c2w = np.tile(np.eye(4), (len(cameras), 1, 1))
        c2w[:, :3, :] = cams.camera_to_worlds[first].numpy()
        w2c = opengl_c2w_to_opencv_w2c(c2w)
        times = np.array([float(cams.times[index[(f, cameras[0])]]) for f in frames])
        paths = [[Path(outputs.image_filenames[index[(f, c)]]) for c in cameras] for f in frames]
        return MultiViewFrames(
            image_paths=paths,
            Ks=Ks,
            w2c=w2c,
            times=times,
            camera_names=cameras,
            data_dir=Path(self.config.dataparser.data),
        )
