"""``splat4d-preprocess-video``: turn a user's video into an iPhone scene folder for the ``iphone``
dataparser, computing offline what can be (see dataparsers/IPHONE.md):

- frames → rgb/{1x,2x}/0_<time>.png (all pixels valid; an odd size loses its last row/column);
- the user's poses, or ``--poses colmap``: structure-from-motion on the video (video_sfm.py) →
  camera/<frame>.json;
- the user's depth → depth/1x (z-depth), the user's disparity or ``--depth-model``'s (a Depth
  Anything model on this machine, aligned to the SfM points: video_estimates.py) →
  flow3d_preprocessed/aligned_depth_anything/1x; scene.json / extra.json from the depth;
- flow-based motion masks → flow3d_preprocessed/track_anything/1x (optical_flow.py);
- OpenCV optical-flow tracks of every training frame pair → flow3d_preprocessed/2d_tracks/1x;
- splits: every ``val_every``-th frame is held out as ``val`` (same camera, unseen times).

    splat4d-preprocess-video --video clip.mp4 --poses poses.npz --depth depth/ --out data/clip
    splat4d-preprocess-video --video clip.mp4 --poses colmap --depth-model models/Depth-Anything-V2-Small-hf \
        --out data/clip

Poses: an .npz with ``w2c`` [N, 4, 4] (or [N, 3, 4]) OpenCV world → camera and ``K`` [3, 3] or
[N, 3, 3] at the video's resolution, one per video frame. Depth: a folder of .npy maps, one per
video frame in name order, [H, W] or [H, W, 1], in the poses' units (0 = unknown). Estimated
stages are cached in ``<out>/../.splat4d_cache`` (``--no-cache``: off).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, List, Literal, Optional, Tuple, Union

import numpy as np
import tyro
from rich.console import Console

from dataparsers.atomic_folder import build_atomically
from dataparsers.errors import DatasetFormatError
from dataparsers.images import read_rgb
from dataparsers.iphone.cameras import FrameCamera
from dataparsers.iphone.depth_alignment import AlignmentSettings, positive_reciprocal
from dataparsers.iphone.depth_model import locate_depth_model
from dataparsers.iphone.layout import ALIGNED_DEPTH_PREFIX, LIDAR, IPhoneLayout, frame_name
from dataparsers.iphone.optical_flow import (
    FlowSettings,
    chain_tracks,
    dense_flow,
    motion_mask,
    query_points,
    rigid_flow,
)
from dataparsers.iphone.video_estimates import (
    EstimationContext,
    align_to_sfm,
    estimate_cameras,
    model_disparity,
    sfm_cameras,
    source_stats,
)
from dataparsers.iphone.video_sfm import VideoSfmSettings
from dataparsers.iphone.writer import (
    FrameRecord,
    write_camera,
    write_frame_lists,
    write_mask,
    write_rgb,
    write_scene_bounds,
    write_track_pair,
)
from dataparsers.video import decode_frames, probe_video

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


@dataclass
class PreprocessVideo:
    video: Path
    """Video file (anything PyAV decodes) or a folder of frame images (.png / .jpg, name order)."""
    poses: Union[Literal["colmap"], Path]
    """.npz with w2c [N, 4, 4] (OpenCV world → camera) and K [3, 3] or [N, 3, 3], one per video
    frame; or ``colmap``: estimated by structure-from-motion on the video's static parts (--sfm.*)."""
    out: Path
    """Scene folder to create."""
    depth: Optional[Path] = None
    """Folder of z-depth .npy maps, one per video frame (written as depth/1x, the lidar slot); with
    --poses colmap fitted to the reconstruction's units like --depth-model's disparity."""
    disparity: Optional[Path] = None
    """Folder of disparity (1/z) .npy maps, one per video frame, aligned to the poses' units
    (written as flow3d_preprocessed/aligned_depth_anything/1x). Give this, depth or depth_model."""
    depth_model: Optional[str] = None
    """Relative Depth Anything model on this machine: a folder (``hf download
    depth-anything/Depth-Anything-V2-Small-hf --local-dir FOLDER``) or a repository id in the
    Hugging Face cache; its disparity is aligned to the SfM points (needs --poses colmap) and
    written like --disparity."""
    fps: Optional[float] = None
    """Frame rate of the video (None: read from the video; needed for a folder of frames)."""
    start: int = 0
    """First video frame used."""
    stride: int = 1
    """Use every stride-th video frame."""
    max_frames: Optional[int] = None
    """Number of frames used (None: to the end)."""
    val_every: int = 10
    """Every val_every-th used frame goes to the val split (0: none; the parser then refuses to evaluate)."""
    track_stride: int = 8
    """Grid spacing of the tracks' query points (pixels)."""
    motion_threshold: float = 1.0
    """A pixel moves when its optical flow differs from the camera-induced flow by more than this (pixels)."""
    flow: FlowSettings = field(default_factory=FlowSettings)
    sfm: VideoSfmSettings = field(default_factory=VideoSfmSettings)
    """Structure-from-motion of --poses colmap."""
    depth_alignment: AlignmentSettings = field(default_factory=AlignmentSettings)
    """Fit of the disparity (--depth-model's; the user's with --poses colmap) to the SfM points."""
    cache: bool = True
    """Cache the estimated stages (masks, SfM, depth) in .splat4d_cache beside ``out`` so a rerun resumes."""
    overwrite: bool = False
    """Replace ``out`` if it exists."""


@dataclass
class Inputs:
    """The used frames with their cameras and depth (z, poses' units)."""

    frames: List[np.ndarray]  # RGB uint8 [H, W, 3]
    cameras: List[FrameCamera]
    depths: List[np.ndarray]  # float32 [H, W]
    fps: float


def main() -> None:
    cmd = tyro.cli(PreprocessVideo, description="Preprocess a video into an iPhone scene for the iphone dataparser.")
    console = Console()
    try:
        preprocess(cmd)
    except (DatasetFormatError, FileExistsError, ValueError, RuntimeError) as err:
        console.print(f"splat4d-preprocess-video: {err}", style="bold red", markup=False, highlight=False)
        raise SystemExit(1) from err
    console.print(f"wrote {cmd.out}; train with: ns-train <method> --data {cmd.out} iphone")


def preprocess(cmd: PreprocessVideo) -> Path:
    """Write the scene folder of ``cmd`` (built in ``<out>.partial-<pid>``, renamed when complete)."""
    if sum(source is not None for source in (cmd.depth, cmd.disparity, cmd.depth_model)) != 1:
        raise ValueError(
            "give exactly one of --depth, --disparity and --depth-model (motion masks and scene bounds need depth)"
        )
    if cmd.depth_model is not None and cmd.poses != "colmap":
        raise ValueError("--depth-model is aligned to structure-from-motion points and needs --poses colmap")
    if cmd.out.exists() and not cmd.overwrite:
        raise FileExistsError(f"{cmd.out} exists (pass --overwrite to replace it)")
    inputs = read_inputs(cmd)
    with build_atomically(cmd.out) as partial:
        write_scene(IPhoneLayout(partial), cmd, inputs)
    return cmd.out


# ----- inputs -----
def read_inputs(cmd: PreprocessVideo) -> Inputs:
    indices, frames, fps = read_frames(cmd)
    height, width = frames[0].shape[:2]
    even = (width - width % 2, height - height % 2)
    crop = (slice(0, even[1]), slice(0, even[0]))
    frames = [f[crop] for f in frames]
    depths = None
    if cmd.depth_model is None:
        depth_dir = cmd.depth if cmd.depth is not None else cmd.disparity
        files = select_files(depth_dir, indices, (".npy",))
        depths = [read_depth(path, (width, height), disparity=cmd.disparity is not None)[crop] for path in files]
    if cmd.poses == "colmap":
        return estimated_inputs(cmd, indices, frames, depths, fps)
    cameras = read_poses(cmd.poses, indices, (width, height))
    for cam in cameras:
        cam.width, cam.height = even
    return Inputs(frames, cameras, depths, fps)


def estimated_inputs(
    cmd: PreprocessVideo, indices: List[int], frames: List[np.ndarray], depths: Optional[List[np.ndarray]], fps: float
) -> Inputs:
    """Inputs with structure-from-motion cameras and depth in the reconstruction's units: the
    depth model's disparity, or the user's ``depths`` (z), aligned to the SfM points."""
    height, width = frames[0].shape[:2]
    selection = {"start": cmd.start, "stride": cmd.stride, "indices": indices, "size": [width, height]}
    context = EstimationContext(
        cmd.out.resolve().parent if cmd.cache else None, {"source": source_stats(cmd.video), **selection}
    )
    if cmd.depth_model is not None:
        locate_depth_model(cmd.depth_model)  # before the long stages: a missing model stops the run now
    sfm = estimate_cameras(frames, cmd.flow, cmd.sfm, context)
    if cmd.depth_model is not None:
        disparities, known = model_disparity(frames, cmd.depth_model, context), False
    else:
        disparities, known = np.stack([positive_reciprocal(depth) for depth in depths]), True
    aligned = align_to_sfm(disparities, sfm, cmd.depth_alignment, known_only=known)
    return Inputs(frames, sfm_cameras(sfm, (width, height)), [positive_reciprocal(d) for d in aligned], fps)


def read_frames(cmd: PreprocessVideo) -> Tuple[List[int], List[np.ndarray], float]:
    """(video frame indices, RGB frames, fps) of the used frames."""
    if cmd.video.is_dir():
        files = sorted(p for p in cmd.video.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if cmd.fps is None:
            raise ValueError("--fps is needed with a folder of frames")
        fps = cmd.fps
        numbered: Iterator[Tuple[int, np.ndarray]] = ((k, read_rgb(p)) for k, p in enumerate(files) if k >= cmd.start)
    elif cmd.video.is_file():
        fps = cmd.fps if cmd.fps is not None else probe_video(cmd.video).fps
        numbered = decode_frames(cmd.video, cmd.start, None)
    else:
        raise DatasetFormatError(cmd.video, "is neither a video file nor a folder of frames")
    indices, frames = [], []
    for index, frame in numbered:
        if (index - cmd.start) % cmd.stride:
            continue
        if cmd.max_frames is not None and len(frames) == cmd.max_frames:
            break
        indices.append(index)
        frames.append(frame)
    if len(frames) < 2:
        raise DatasetFormatError(cmd.video, f"has {len(frames)} frames from frame {cmd.start} on; 2 or more are needed")
    return indices, frames, fps / cmd.stride


def select_files(folder: Path, indices: List[int], suffixes: Tuple[str, ...]) -> List[Path]:
    """The files of ``folder`` (name order) at the video frame ``indices``."""
    if not folder.is_dir():
        raise DatasetFormatError(folder, "is not a folder")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in suffixes)
    if len(files) <= indices[-1]:
        raise DatasetFormatError(
            folder,
            f"has {len(files)} {'/'.join(suffixes)} files but video frame "
            f"{indices[-1]} is used (one file per video frame is needed)",
        )
    return [files[i] for i in indices]


def read_poses(path: Path, indices: List[int], size: Tuple[int, int]) -> List[FrameCamera]:
    try:
        with np.load(path) as data:
            w2c, K = data["w2c"].astype(np.float64), data["K"].astype(np.float64)
    except (OSError, ValueError, KeyError) as err:
        raise DatasetFormatError(path, f"should be an .npz with arrays w2c and K ({err})") from err
    if w2c.ndim != 3 or w2c.shape[1:] not in ((4, 4), (3, 4)) or len(w2c) <= indices[-1]:
        raise DatasetFormatError(
            path,
            f"w2c has shape {w2c.shape}; expected [N, 4, 4] with one pose per video frame "
            f"(frame {indices[-1]} is used)",
        )
    K = np.broadcast_to(K, (len(w2c), 3, 3)) if K.shape == (3, 3) else K
    if K.shape != (len(w2c), 3, 3) or not (np.all(np.isfinite(K)) and np.all(np.isfinite(w2c))):
        raise DatasetFormatError(path, f"K has shape {K.shape}; expected finite [3, 3] or [{len(w2c)}, 3, 3]")
    cameras = []
    for i in indices:
        pose = np.eye(4)
        pose[:3] = w2c[i, :3]
        cameras.append(FrameCamera(K[i].copy(), pose, size[0], size[1], np.zeros(5)))
    return cameras


def read_depth(path: Path, size: Tuple[int, int], disparity: bool) -> np.ndarray:
    """float32 z-depth [H, W] of a depth or disparity map (0 where unknown or non-finite)."""
    raw = np.load(path)
    raw = raw[..., 0] if raw.ndim == 3 and raw.shape[2] == 1 else raw
    if raw.shape != (size[1], size[0]):
        raise DatasetFormatError(path, f"has shape {raw.shape}; the video frames are {size[0]}×{size[1]}")
    raw = np.nan_to_num(raw.astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    return positive_reciprocal(raw) if disparity else np.where(raw > 0, raw, 0.0)


# ----- outputs -----
def write_scene(layout: IPhoneLayout, cmd: PreprocessVideo, inputs: Inputs) -> None:
    names = [frame_name(0, t) for t in range(len(inputs.frames))]
    val = {t for t in range(len(names)) if cmd.val_every and t % cmd.val_every == cmd.val_every - 1}
    train = [t for t in range(len(names)) if t not in val]
    height, width = inputs.depths[0].shape
    valid = np.ones((height, width), dtype=bool)
    for name, frame, cam in zip(names, inputs.frames, inputs.cameras):
        write_rgb(layout, name, frame, valid)
        write_camera(layout, name, cam)
    write_frame_lists(
        layout,
        [FrameRecord(n, t, 0) for t, n in enumerate(names)],
        {"train": [names[t] for t in train], "val": [names[t] for t in sorted(val)]},
    )
    write_scene_bounds(layout, depth_points(inputs), inputs.cameras, inputs.fps, factor=1)
    write_depth(layout, cmd, names, inputs)
    masks = write_motion_masks(layout, names, inputs, cmd)
    write_tracks(layout, [names[t] for t in train], [inputs.frames[t] for t in train], [masks[t] for t in train], cmd)


def depth_points(inputs: Inputs, count: int = 20000) -> np.ndarray:
    """World points [M, 3] back-projected from the depth maps (a spread-out subset)."""
    points = []
    for cam, depth in zip(inputs.cameras, inputs.depths):
        rows, cols = np.nonzero(depth > 0)
        step = max(1, len(rows) * len(inputs.depths) // count)
        rows, cols = rows[::step], cols[::step]
        uv = np.stack([cols + 0.5, rows + 0.5], axis=1)
        local = np.concatenate([(uv - cam.K[:2, 2]) / np.diag(cam.K)[:2], np.ones((len(uv), 1))], axis=1)
        points.append((local * depth[rows, cols, None] - cam.w2c[:3, 3]) @ cam.w2c[:3, :3])
    points = np.concatenate(points)
    if len(points) == 0:
        raise ValueError("the depth maps have no valid (positive, finite) values")
    return points


def write_depth(layout: IPhoneLayout, cmd: PreprocessVideo, names: List[str], inputs: Inputs) -> None:
    """The user's maps in the slot of their kind: z-depth as lidar, disparity as aligned Depth Anything."""
    source = LIDAR if cmd.depth is not None else ALIGNED_DEPTH_PREFIX
    folder = layout.depth_dir(source)
    folder.mkdir(parents=True)
    for name, depth in zip(names, inputs.depths):
        np.save(folder / f"{name}.npy", depth[..., None] if source == LIDAR else positive_reciprocal(depth))


def write_motion_masks(
    layout: IPhoneLayout, names: List[str], inputs: Inputs, cmd: PreprocessVideo
) -> List[np.ndarray]:
    """Motion mask of each frame from its flow to the next frame (the last one: to the previous)."""
    masks = []
    for t, name in enumerate(names):
        n = t + 1 if t + 1 < len(names) else t - 1
        flow = dense_flow(inputs.frames[t], inputs.frames[n], cmd.flow)
        rigid = rigid_flow(
            inputs.depths[t], inputs.cameras[t].K, inputs.cameras[t].w2c, inputs.cameras[n].K, inputs.cameras[n].w2c
        )
        masks.append(motion_mask(flow, rigid, cmd.motion_threshold))
        write_mask(layout.motion_mask_dir / f"{name}.png", masks[-1])
    return masks


def write_tracks(
    layout: IPhoneLayout, names: List[str], frames: List[np.ndarray], masks: List[np.ndarray], cmd: PreprocessVideo
) -> None:
    """Flow-chained tracks of every training frame pair (query points: grid inside the motion mask).
    The flows between consecutive frames live in memory-mapped files while the tracks are chained."""
    height, width = frames[0].shape[:2]
    with tempfile.TemporaryDirectory(dir=layout.root) as scratch:
        shape = (len(frames) - 1, height, width, 2)
        flows = {
            direction: np.lib.format.open_memmap(Path(scratch) / f"{direction}.npy", "w+", np.float32, shape)
            for direction in ("forward", "backward")
        }
        for t, (a, b) in enumerate(zip(frames[:-1], frames[1:])):
            flows["forward"][t] = dense_flow(a, b, cmd.flow)
            flows["backward"][t] = dense_flow(b, a, cmd.flow)
        for q, query in enumerate(names):
            tracks = chain_tracks(
                query_points(masks[q], cmd.track_stride),
                q,
                flows["forward"],
                flows["backward"],
                (width, height),
                cmd.flow,
            )
            for t, target in enumerate(names):
                write_track_pair(layout, query, target, tracks[t, :, :2], tracks[t, :, 2], tracks[t, :, 3])
        del flows  # close the memory maps before the folder is removed


if __name__ == "__main__":
    main()
