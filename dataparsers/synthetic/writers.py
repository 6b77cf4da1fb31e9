"""Write the synthetic scene in each multi-view dataset format, with its ground truth.

| format     | media                                  | calibration                                   |
|------------|----------------------------------------|-----------------------------------------------|
| neural3dv  | camXX.mp4                              | poses_bounds.npy (LLFF)                       |
| enerf      | images/NN/NNNNNN.jpg                   | intri.yml, extri.yml                          |
| selfcap    | videos/NNNN.mp4                        | optimized/intri.yml, extri.yml [, sync.json]  |
| easyvolcap | images/camNN/NNNNNN.jpg                | intri.yml, extri.yml                          |

Camera 0 is the centre of the arc (Neural3DV's held-out cam00); the default 9 cameras include
ENeRF-Outdoor's default test camera 08. A scene is written to ``<out>.partial-<pid>`` and
renamed to ``<out>`` when complete, so an interrupted run never leaves a scene that looks whole.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Literal, Optional, Sequence, Tuple

import av
import cv2
import numpy as np

from dataparsers.atomic_folder import build_atomically
from dataparsers.easyvolcap_calibration import Calibration, write_calibration
from dataparsers.images import write_rgb
from dataparsers.synthetic.ground_truth import GROUND_TRUTH_DIR, write_camera_ground_truth, write_scene_ground_truth
from dataparsers.synthetic.rig import RigConfig, camera_rig
from dataparsers.synthetic.scene import PinholeCamera, RenderResult, SyntheticScene, default_scene
from dataparsers.synthetic.transient_scene import forward_facing_rig, transient_scene

Format = Literal["neural3dv", "enerf", "selfcap", "easyvolcap"]
Family = Literal["default", "transient"]
NATIVE_FPS: Dict[str, float] = {"neural3dv": 30.0, "enerf": 60.0, "selfcap": 60.0, "easyvolcap": 30.0}
SceneFrames = Dict[str, np.ndarray]  # camera name (rig order) -> the scene frame each of its frames shows


@dataclass
class SynthesisConfig:
    """What to render. Formats with EasyVolcap calibration (enerf, selfcap, easyvolcap) also take
    lens distortion and an off-centre principal point; Neural3DV's LLFF poses cannot store them."""

    family: Family = "default"
    """default: the arc rig around :func:`default_scene`; transient: the Neural3DV-like benchmark
    scene (:mod:`dataparsers.synthetic.transient_scene`) seen by a forward-facing grid of 3 rows."""
    num_cameras: int = 9
    """Cameras on the arc (9 includes ENeRF-Outdoor's default test camera 08); transient family: a
    multiple of 3 with an odd number of columns (21 = 7 × 3, like Neural3DV)."""
    num_frames: int = 30
    """Frames per camera."""
    width: int = 160
    """Image width in pixels."""
    height: int = 120
    """Image height in pixels."""
    fps: Optional[float] = None
    """Frame rate (None: the real dataset's, 30 for neural3dv / easyvolcap, 60 for enerf / selfcap)."""
    supersample: int = 2
    """Sub-pixel rays per pixel side."""
    seed: int = 0
    """Varies colours, orientations and the ground texture."""
    distortion: Tuple[float, float, float, float, float] = (0.0, 0.0, 0.0, 0.0, 0.0)
    """OpenCV (k1, k2, p1, p2, k3) of every camera; the images are rendered distorted."""
    principal_offset: Tuple[float, float] = (0.0, 0.0)
    """(cx, cy) offset from the image centre in pixels."""
    max_sync_offset: float = 0.0
    """SelfCap: per-camera time offsets up to this many seconds (camera 0 has none), written to
    optimized/sync.json; each frame shows the scene at n / fps − offset."""
    video_crf: int = 10
    """libx264 quality of the videos (lower is better; 0 is lossless)."""
    jpeg_quality: int = 95
    """JPEG quality of the image layouts (enerf, easyvolcap)."""


def write_scene(fmt: Format, out: Path, cfg: SynthesisConfig, overwrite: bool = False) -> Path:
    """Render ``default_scene`` with a ``cfg.num_cameras`` rig and write it to ``out`` as ``fmt``."""
    out = Path(out)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} exists (pass overwrite=True / --overwrite to replace it)")
    if fmt == "neural3dv" and (any(cfg.distortion) or any(cfg.principal_offset)):
        raise ValueError("neural3dv (LLFF poses_bounds.npy) stores neither distortion nor a principal point offset")
    if fmt != "selfcap" and cfg.max_sync_offset:
        raise ValueError("max_sync_offset is a SelfCap feature (optimized/sync.json)")
    fps = cfg.fps if cfg.fps is not None else NATIVE_FPS[fmt]
    scene, cameras = build_scene_and_rig(cfg, fps)
    with build_atomically(out) as partial:
        (partial / GROUND_TRUTH_DIR).mkdir()
        scene_frames = WRITERS[fmt](partial, scene, cameras, cfg)
        write_scene_ground_truth(
            partial / GROUND_TRUTH_DIR, fmt, scene, cfg.seed, dict(zip(scene_frames, cameras)), scene_frames
        )
    return out


def build_scene_and_rig(cfg: SynthesisConfig, fps: float) -> Tuple[SyntheticScene, List[PinholeCamera]]:
    if cfg.family == "transient":
        columns, rest = divmod(cfg.num_cameras, 3)
        if rest or columns % 2 == 0:
            raise ValueError(
                f"the transient family's rig has 3 rows and an odd number of columns: num_cameras = "
                f"{cfg.num_cameras} is not 3 × an odd number (e.g. 9, 15, 21)"
            )
        if any(cfg.distortion) or any(cfg.principal_offset):
            raise ValueError("the transient family's rig has no lens distortion or principal point offset")
        rig = forward_facing_rig(cfg.width, cfg.height, columns=columns)
        return transient_scene(cfg.num_frames, fps, cfg.seed), rig
    rig = RigConfig(
        num_cameras=cfg.num_cameras, width=cfg.width, height=cfg.height, principal_offset=cfg.principal_offset
    )
    cameras = camera_rig(rig, np.asarray(cfg.distortion, dtype=np.float64) if any(cfg.distortion) else None)
    return default_scene(cfg.num_frames, fps, cfg.seed), cameras


# ----- shared pieces -----
def render_camera(
    scene: SyntheticScene, cam: PinholeCamera, scene_frames: Sequence[float], supersample: int
) -> Tuple[List[np.ndarray], List[RenderResult]]:
    """Media frames (uint8 RGB, distorted like the camera) and pinhole ground truth per frame."""
    pinhole = dataclasses.replace(cam, distortion=None)
    media, truth = [], []
    for frame in scene_frames:
        gt = scene.render(pinhole, frame, supersample)
        shown = gt if cam.distortion is None else scene.render(cam, frame, supersample)
        media.append(np.round(shown.rgb * 255).astype(np.uint8))
        truth.append(gt)
    return media, truth


def encode_mp4(path: Path, frames: Iterable[np.ndarray], fps: float, crf: int) -> None:
    """H.264 (libx264, yuv444p) video of RGB uint8 frames (all of the first one's size)."""
    frames = iter(frames)
    first = next(frames)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height, stream.pix_fmt = first.shape[1], first.shape[0], "yuv444p"
        stream.options = {"crf": str(crf), "preset": "fast", "g": "12"}
        for frame in itertools.chain([first], frames):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())


def write_jpegs(folder: Path, frames: Sequence[np.ndarray], quality: int) -> None:
    folder.mkdir(parents=True)
    for n, frame in enumerate(frames):
        write_rgb(folder / f"{n:06d}.jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, quality])


def write_cameras(
    root: Path,
    scene: SyntheticScene,
    cameras: Sequence[PinholeCamera],
    names: Sequence[str],
    scene_frames: SceneFrames,
    cfg: SynthesisConfig,
    write_media: Callable[[str, List[np.ndarray]], None],
) -> Dict[str, Tuple[float, float]]:
    """Render every camera, write its media and ground truth; returns each camera's depth range."""
    depth_ranges = {}
    for name, cam in zip(names, cameras):
        media, truth = render_camera(scene, cam, scene_frames[name], cfg.supersample)
        write_media(name, media)
        write_camera_ground_truth(root / GROUND_TRUTH_DIR, name, truth)
        depth_ranges[name] = (min(float(r.depth.min()) for r in truth), max(float(r.depth.max()) for r in truth))
    return depth_ranges


def easyvolcap_calibration(cameras: Sequence[PinholeCamera], names: Sequence[str]) -> Dict[str, Calibration]:
    return {
        name: Calibration(
            K=cam.K,
            distortion=np.zeros(5) if cam.distortion is None else cam.distortion,
            w2c=cam.w2c,
            width=cam.width,
            height=cam.height,
        )
        for name, cam in zip(names, cameras)
    }


def synchronized(names: Sequence[str], num_frames: int) -> SceneFrames:
    return {name: np.arange(num_frames, dtype=np.float64) for name in names}


# ----- formats -----
def llff_row(cam: PinholeCamera, near: float, far: float) -> np.ndarray:
    """poses_bounds.npy row: [down, right, backwards, centre, (H, W, focal)] (3×5) + near, far."""
    fx, fy, cx, cy = cam.K[0, 0], cam.K[1, 1], cam.K[0, 2], cam.K[1, 2]
    if not (np.isclose(fx, fy) and np.isclose(cx, cam.width / 2) and np.isclose(cy, cam.height / 2)):
        raise ValueError("LLFF cameras need fx = fy and the principal point at the image centre")
    c2w = cam.c2w  # OpenCV axes: columns right, down, forward
    pose = np.stack([c2w[:3, 1], c2w[:3, 0], -c2w[:3, 2], c2w[:3, 3], [cam.height, cam.width, fx]], axis=1)
    return np.concatenate([pose.reshape(-1), [near, far]])


def write_neural3dv(
    root: Path, scene: SyntheticScene, cameras: Sequence[PinholeCamera], cfg: SynthesisConfig
) -> SceneFrames:
    names = [f"cam{k:02d}" for k in range(len(cameras))]
    scene_frames = synchronized(names, scene.num_frames)
    ranges = write_cameras(
        root,
        scene,
        cameras,
        names,
        scene_frames,
        cfg,
        lambda name, frames: encode_mp4(root / f"{name}.mp4", frames, scene.fps, cfg.video_crf),
    )
    rows = [llff_row(cam, 0.9 * ranges[n][0], 1.1 * ranges[n][1]) for n, cam in zip(names, cameras)]
    np.save(root / "poses_bounds.npy", np.array(rows))
    return scene_frames


def write_image_layout(
    root: Path, scene: SyntheticScene, cameras: Sequence[PinholeCamera], cfg: SynthesisConfig, names: Sequence[str]
) -> SceneFrames:
    scene_frames = synchronized(names, scene.num_frames)
    write_cameras(
        root,
        scene,
        cameras,
        names,
        scene_frames,
        cfg,
        lambda name, frames: write_jpegs(root / "images" / name, frames, cfg.jpeg_quality),
    )
    write_calibration(root / "intri.yml", root / "extri.yml", easyvolcap_calibration(cameras, names))
    return scene_frames


def write_enerf(
    root: Path, scene: SyntheticScene, cameras: Sequence[PinholeCamera], cfg: SynthesisConfig
) -> SceneFrames:
    return write_image_layout(root, scene, cameras, cfg, [f"{k:02d}" for k in range(len(cameras))])


def write_easyvolcap(
    root: Path, scene: SyntheticScene, cameras: Sequence[PinholeCamera], cfg: SynthesisConfig
) -> SceneFrames:
    return write_image_layout(root, scene, cameras, cfg, [f"cam{k:02d}" for k in range(len(cameras))])


def write_selfcap(
    root: Path, scene: SyntheticScene, cameras: Sequence[PinholeCamera], cfg: SynthesisConfig
) -> SceneFrames:
    names = [f"{k:04d}" for k in range(len(cameras))]
    offsets = np.random.default_rng(cfg.seed).uniform(-1.0, 1.0, len(names)) * cfg.max_sync_offset
    offsets[0] = 0.0
    # frame n shows the scene at time n / fps − offset, i.e. at scene frame n − offset · fps
    scene_frames = {name: np.arange(scene.num_frames) - off * scene.fps for name, off in zip(names, offsets)}
    (root / "videos").mkdir()
    (root / "optimized").mkdir()
    write_cameras(
        root,
        scene,
        cameras,
        names,
        scene_frames,
        cfg,
        lambda name, frames: encode_mp4(root / "videos" / f"{name}.mp4", frames, scene.fps, cfg.video_crf),
    )
    write_calibration(
        root / "optimized" / "intri.yml", root / "optimized" / "extri.yml", easyvolcap_calibration(cameras, names)
    )
    if cfg.max_sync_offset:
        (root / "optimized" / "sync.json").write_text(json.dumps(dict(zip(names, offsets.tolist())), indent=1))
    return scene_frames


WRITERS: Dict[str, Callable[[Path, SyntheticScene, Sequence[PinholeCamera], SynthesisConfig], SceneFrames]] = {
    "neural3dv": write_neural3dv,
    "enerf": write_enerf,
    "selfcap": write_selfcap,
    "easyvolcap": write_easyvolcap,
}
