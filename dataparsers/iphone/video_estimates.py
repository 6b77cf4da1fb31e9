"""What ``splat4d-preprocess-video`` estimates itself instead of reading it from the user: camera
poses and intrinsics (``--poses colmap``, video_sfm.py) and depth (``--depth-model``,
depth_model.py aligned by depth_alignment.py). The long stages (motion masks, structure from
motion, depth prediction) are cached with splat4d/cache.py under a hash of the input frames'
source and every setting they depend on, so a rerun resumes after the last finished stage.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import pycolmap
import torch
from nerfstudio.utils.rich_utils import CONSOLE

from dataparsers.iphone.cameras import FrameCamera
from dataparsers.iphone.depth_alignment import AlignmentSettings, align_disparity
from dataparsers.iphone.depth_model import load_depth_model, predict_disparity
from dataparsers.iphone.optical_flow import FlowSettings
from dataparsers.iphone.video_sfm import VideoSfm, VideoSfmSettings, reconstruct, sfm_frames, static_masks
from splat4d.cache import cache_path, file_stats, folder_stats, load_or_compute
from splat4d.progress import progress_bar

CACHE_VERSION = 1


@dataclass
class EstimationContext:
    """Where the cache lives and what identifies the frames (their source and selection)."""

    cache_dir: Optional[Path]
    """Folder holding ``.splat4d_cache`` (None: no caching)."""
    frames_key: Dict[str, Any]
    show_progress: bool = True

    def cache(self, name: str, **key: Any) -> Optional[Path]:
        if self.cache_dir is None:
            return None
        return cache_path(self.cache_dir, name, CACHE_VERSION, {"frames": self.frames_key, **key})


def source_stats(source: Path) -> List[List]:
    """Identity of a video file or a folder of frames: paths, sizes, modification times."""
    return folder_stats(source) if source.is_dir() else file_stats([source], source.parent)


def estimate_cameras(
    frames: Sequence[np.ndarray], flow: FlowSettings, settings: VideoSfmSettings, context: EstimationContext
) -> VideoSfm:
    """Structure-from-motion poses of every frame (cached): motion masks, then SfM."""
    subset = sfm_frames(len(frames), settings.max_images)
    pycolmap.logging.minloglevel = pycolmap.logging.WARNING

    def masks() -> Dict[str, torch.Tensor]:
        with progress_bar(context.show_progress) as bar:
            task = bar.add_task("motion masks (flow vs. camera motion)", total=len(subset))
            found = static_masks(frames, subset, flow, settings.masks, lambda: bar.advance(task))
        return {"masks": torch.from_numpy(found)}

    def sfm() -> Dict[str, torch.Tensor]:
        moving = np.zeros((len(subset), *frames[0].shape[:2]), dtype=bool)
        if settings.mask_motion:
            key = {"flow": asdict(flow), "masks": asdict(settings.masks), "subset": subset}
            moving = load_or_compute(context.cache("video_masks", **key), masks, "motion masks")["masks"].numpy()
        with CONSOLE.status(f"structure-from-motion on {len(subset)} of {len(frames)} frames (pycolmap)"):
            return reconstruct(frames, subset, moving, settings).to_entry()

    key = {"flow": asdict(flow), "sfm": asdict(settings)}
    result = VideoSfm.from_entry(load_or_compute(context.cache("video_sfm", **key), sfm, "structure-from-motion"))
    CONSOLE.log(
        f"structure-from-motion: {int(result.registered.sum())} of {len(subset)} SfM frames registered "
        f"({len(frames)} frames posed), {len(result.points)} points, focal {result.K[0, 0]:.1f} px"
    )
    return result


def sfm_cameras(sfm: VideoSfm, size: tuple) -> List[FrameCamera]:
    """The frames' cameras (``size`` W, H) as read_poses returns them."""
    return [FrameCamera(sfm.K.copy(), w2c.copy(), size[0], size[1], sfm.distortion.copy()) for w2c in sfm.w2c]


def model_disparity(frames: Sequence[np.ndarray], model_name: str, context: EstimationContext) -> np.ndarray:
    """float32 [N, H, W] relative disparity of every frame by the depth model (cached)."""
    folder = Path(model_name).expanduser()
    model_key = folder_stats(folder) if folder.is_dir() else model_name

    def predict() -> Dict[str, torch.Tensor]:
        model, processor = load_depth_model(model_name)
        with progress_bar(context.show_progress) as bar:
            task = bar.add_task(f"depth ({model_name})", total=len(frames))
            disparity = predict_disparity(model, processor, frames, lambda: bar.advance(task))
        return {"disparity": torch.from_numpy(disparity.astype(np.float16))}

    entry = load_or_compute(context.cache("video_depth", model=model_key), predict, "depth model")
    return entry["disparity"].numpy().astype(np.float32)


def align_to_sfm(
    disparities: np.ndarray, sfm: VideoSfm, alignment: AlignmentSettings, known_only: bool
) -> List[np.ndarray]:
    """Disparity [H, W] of every frame in the reconstruction's units, fitted frame by frame to the
    SfM points (``known_only``: pixels with disparity 0 are unknown and stay 0)."""
    aligned, inlier_fractions = [], []
    for t, disparity in enumerate(disparities):
        result, fit = align_disparity(disparity, sfm, t, alignment, known_only)
        aligned.append(result)
        inlier_fractions.append(float(fit.inliers.mean()))
    CONSOLE.log(
        f"disparity aligned to the SfM points: median inlier fraction {np.median(inlier_fractions):.2f} "
        f"(lowest {min(inlier_fractions):.2f})"
    )
    return aligned
