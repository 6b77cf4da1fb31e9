"""Writing an iPhone scene folder (the synthetic monocular scenes and custom-video preprocessing
both use this, so they follow layout.py's conventions in one place)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Sequence

import cv2
import numpy as np

from dataparsers.iphone.cameras import FrameCamera, camera_json
from dataparsers.iphone.layout import IPhoneLayout, pixels_to_track_file


@dataclass(frozen=True)
class FrameRecord:
    name: str
    time_id: int
    camera_id: int


def write_json(path: Path, record: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=1))


def write_png(path: Path, image: np.ndarray) -> None:
    """uint8 gray [H, W], RGB [H, W, 3] or RGBA [H, W, 4] image as PNG."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR if image.shape[2] == 3 else cv2.COLOR_RGBA2BGRA)
    if not cv2.imwrite(str(path), image):
        raise OSError(f"could not write {path}")


def write_mask(path: Path, mask: np.ndarray) -> None:
    """Boolean mask as a 0 / 255 gray PNG."""
    write_png(path, np.where(mask, 255, 0).astype(np.uint8))


def write_rgb(layout: IPhoneLayout, frame: str, rgb: np.ndarray, valid: np.ndarray) -> None:
    """rgb/1x and rgb/2x RGBA images (alpha 255 on ``valid`` pixels); the size must be even."""
    height, width = valid.shape
    if width % 2 or height % 2:
        raise ValueError(f"rgb/2x needs an even image size, got {width}×{height}")
    rgba = np.concatenate([rgb, np.where(valid, 255, 0).astype(np.uint8)[..., None]], axis=2)
    write_png(layout.rgb_file(1, frame), rgba)
    half = cv2.resize(rgba, (width // 2, height // 2), interpolation=cv2.INTER_AREA)
    half[..., 3] = np.where(half[..., 3] > 127, 255, 0)
    write_png(layout.rgb_file(2, frame), half)


def write_camera(layout: IPhoneLayout, frame: str, cam: FrameCamera) -> None:
    write_json(layout.camera_file(frame), camera_json(cam))


def write_frame_lists(layout: IPhoneLayout, frames: Sequence[FrameRecord], splits: Dict[str, List[str]]) -> None:
    """splits/<split>.json, dataset.json and metadata.json of ``frames``."""
    by_name = {f.name: f for f in frames}
    for split, names in splits.items():
        write_json(
            layout.split_file(split),
            {
                "frame_names": list(names),
                "time_ids": [by_name[n].time_id for n in names],
                "camera_ids": [by_name[n].camera_id for n in names],
            },
        )
    write_json(
        layout.dataset_file,
        {
            "count": len(frames),
            "num_exemplars": len(splits["train"]),
            "ids": [f.name for f in frames],
            "train_ids": list(splits["train"]),
            "val_ids": list(splits.get("val", [])),
        },
    )
    write_json(
        layout.metadata_file,
        {f.name: {"warp_id": f.time_id, "appearance_id": f.time_id, "camera_id": f.camera_id} for f in frames},
    )


def write_scene_bounds(
    layout: IPhoneLayout, points: np.ndarray, cameras: Sequence[FrameCamera], fps: float, factor: int = 2
) -> None:
    """scene.json and extra.json from surface points [M, 3] seen by ``cameras`` (world units).

    DyCheck's normalization x' = (x − center) · scale maps the central 98% of the points into
    [−1, 1]³; near / far (normalized units) bracket the points' depths in the cameras; bbox,
    lookat and up (extra.json) are given in normalized coordinates.
    """
    lo, hi = np.percentile(points, 1, axis=0), np.percentile(points, 99, axis=0)
    center = (lo + hi) / 2
    scale = 1.0 / max(float(np.max(hi - lo)) / 2, 1e-9)
    depths = np.concatenate([(points @ cam.w2c[:3, :3].T + cam.w2c[:3, 3])[:, 2] for cam in cameras])
    depths = depths[depths > 0]
    up = -np.mean([cam.w2c[1, :3] for cam in cameras], axis=0)
    write_json(
        layout.scene_file,
        {
            "center": center.tolist(),
            "scale": scale,
            "near": float(np.percentile(depths, 0.5)) * scale * 0.8,
            "far": float(np.percentile(depths, 99.5)) * scale * 1.25,
        },
    )
    write_json(
        layout.extra_file,
        {
            "factor": factor,
            "fps": fps,
            "bbox": [((lo - center) * scale).tolist(), ((hi - center) * scale).tolist()],
            "lookat": [0.0, 0.0, 0.0],
            "up": (up / np.linalg.norm(up)).tolist(),
        },
    )


def write_track_pair(
    layout: IPhoneLayout,
    query: str,
    target: str,
    uv: np.ndarray,
    occlusion_logit: np.ndarray,
    expected_dist_logit: np.ndarray,
) -> None:
    """One TAPIR track file from 1x pixel coordinates uv [P, 2] (centres at +0.5) and logits [P]."""
    rows = np.concatenate([pixels_to_track_file(uv), occlusion_logit[:, None], expected_dist_logit[:, None]], axis=1)
    layout.tracks_dir.mkdir(parents=True, exist_ok=True)
    np.save(layout.track_file(query, target), rows.astype(np.float32))
