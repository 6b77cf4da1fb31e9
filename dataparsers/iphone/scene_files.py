"""Reading and checking the JSON files of an iPhone scene: splits, extra, scene, dataset, metadata."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterable, List, Sequence, Tuple

import numpy as np

from dataparsers.errors import DatasetFormatError
from dataparsers.iphone.layout import IPhoneLayout


def read_json(path: Path) -> Any:
    if not path.is_file():
        raise DatasetFormatError(path, "is missing")
    try:
        return json.loads(path.read_bytes().decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DatasetFormatError(path, f"is not valid JSON ({err}); is the file complete?") from err


def require_fields(path: Path, record: Any, fields: Iterable[str]) -> None:
    """A DatasetFormatError naming ``path`` and every field of ``fields`` that ``record`` lacks."""
    if not isinstance(record, dict):
        raise DatasetFormatError(path, f"should hold a JSON object, found {type(record).__name__}")
    missing = [f for f in fields if f not in record]
    if missing:
        raise DatasetFormatError(path, f"lacks field{'s' if len(missing) > 1 else ''} {', '.join(missing)}")


def listed(names: Sequence[str], limit: int = 5) -> str:
    """``names`` for an error message: the first few, then a count."""
    shown = ", ".join(names[:limit])
    return shown if len(names) <= limit else f"{shown} and {len(names) - limit} more"


@dataclass(frozen=True)
class SplitFrames:
    """The frames of one split, in file order."""

    frame_names: List[str]
    time_ids: np.ndarray  # [N] int64
    camera_ids: np.ndarray  # [N] int64


@dataclass(frozen=True)
class SceneInfo:
    fps: float
    center: np.ndarray  # [3] scene centre, world units of camera/*.json
    scale: float  # DyCheck's normalization: x_dycheck = (x − center) · scale
    near: float  # in DyCheck's normalized units
    far: float
    frames: Dict[str, Tuple[int, int]]  # every frame name -> (time id, camera id), from metadata.json
    num_time_steps: int  # largest time id + 1


def read_split(layout: IPhoneLayout, split: str, info: SceneInfo) -> SplitFrames:
    path = layout.split_file(split)
    if not path.is_file():
        raise DatasetFormatError(
            path,
            "is missing: the iphone parser trains on splits/train.json and evaluates on "
            "splits/val.json (it never evaluates on training images)",
        )
    record = read_json(path)
    require_fields(path, record, ("frame_names", "time_ids", "camera_ids"))
    names = [str(n) for n in record["frame_names"]]
    if not names:
        raise DatasetFormatError(path, "lists no frames (the iphone parser never substitutes training images)")
    if not len(names) == len(record["time_ids"]) == len(record["camera_ids"]):
        raise DatasetFormatError(
            path,
            f"has {len(names)} frame_names, {len(record['time_ids'])} time_ids and "
            f"{len(record['camera_ids'])} camera_ids",
        )
    unknown = [n for n in names if n not in info.frames]
    if unknown:
        raise DatasetFormatError(
            path, f"names frames that {layout.metadata_file.name} does not list: {listed(unknown)}"
        )
    ids = [(int(t), int(c)) for t, c in zip(record["time_ids"], record["camera_ids"])]
    wrong = [n for n, pair in zip(names, ids) if info.frames[n] != pair]
    if wrong:
        raise DatasetFormatError(
            path, f"gives time/camera ids that disagree with {layout.metadata_file.name} for {listed(wrong)}"
        )
    return SplitFrames(
        names, np.array([t for t, _ in ids], dtype=np.int64), np.array([c for _, c in ids], dtype=np.int64)
    )


def read_scene_info(layout: IPhoneLayout) -> SceneInfo:
    extra = read_json(layout.extra_file)
    require_fields(layout.extra_file, extra, ("fps",))
    scene = read_json(layout.scene_file)
    require_fields(layout.scene_file, scene, ("center", "scale", "near", "far"))
    center = np.asarray(scene["center"], dtype=np.float64)
    if center.shape != (3,) or not np.all(np.isfinite(center)) or not float(scene["scale"]) > 0:
        raise DatasetFormatError(
            layout.scene_file,
            f"needs a 3-vector center and a positive scale, found center={scene['center']}, scale={scene['scale']}",
        )
    dataset = read_json(layout.dataset_file)
    require_fields(layout.dataset_file, dataset, ("ids",))
    metadata = read_json(layout.metadata_file)
    missing = [str(n) for n in dataset["ids"] if str(n) not in metadata]
    if missing:
        raise DatasetFormatError(
            layout.metadata_file, f"has no entry for frames of {layout.dataset_file.name}: {listed(missing)}"
        )
    frames = {}
    for name in map(str, dataset["ids"]):
        require_fields(layout.metadata_file, metadata[name], ("warp_id", "camera_id"))
        frames[name] = (int(metadata[name]["warp_id"]), int(metadata[name]["camera_id"]))
    if not frames:
        raise DatasetFormatError(layout.dataset_file, "lists no frame ids")
    return SceneInfo(
        fps=float(extra["fps"]),
        center=center,
        scale=float(scene["scale"]),
        near=float(scene["near"]),
        far=float(scene["far"]),
        frames=frames,
        num_time_steps=max(t for t, _ in frames.values()) + 1,
    )
