"""On-disk frame cache: decoded (and undistorted / resized) frames as image files.

Training reads images lazily from ``image_filenames``, so frames from videos, and frames that
need undistortion or resizing, are written once as image files into a cache folder:

    <cache root>/<camera>-<hash of the key>/<frame index:06d>.png   + meta.json

A cache folder is only ever created by renaming a completed ``…partial-<pid>`` folder, and it
is trusted only if its ``meta.json`` holds the same key (source file, its size and mtime, frame
range, undistortion, output size, format) and all its files exist. An interrupted extraction
therefore leaves at most a partial folder, which is never read and is removed by the next run
once its process is gone.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, List, Literal, Optional, Tuple

import cv2
import numpy as np
from nerfstudio.utils.rich_utils import CONSOLE
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from dataparsers.atomic_folder import PARTIAL_MARK, build_atomically
from dataparsers.images import write_rgb

CACHE_VERSION = 1
ImageFormat = Literal["png", "jpg"]
IndexedFrames = Iterable[Tuple[int, np.ndarray]]


@dataclass(frozen=True)
class FramePreparation:
    """What happens to each frame before caching: OpenCV undistortion that keeps the
    intrinsics K (new camera matrix = K), then resizing to ``size`` (INTER_AREA)."""

    K: np.ndarray  # [3, 3] intrinsics of the source frames
    distortion: np.ndarray  # [5] OpenCV (k1, k2, p1, p2, k3); zeros: none
    source_size: Tuple[int, int]  # (W, H) of the source frames
    size: Tuple[int, int]  # (W, H) of the cached frames

    @property
    def changes_pixels(self) -> bool:
        return bool(np.any(self.distortion != 0)) or tuple(self.size) != tuple(self.source_size)

    def key(self) -> Dict[str, Any]:
        return {"K": self.K.tolist(), "distortion": self.distortion.tolist(), "size": list(self.size)}

    def apply(self, frames: IndexedFrames) -> Iterator[Tuple[int, np.ndarray]]:
        maps = None
        if np.any(self.distortion != 0):
            maps = cv2.initUndistortRectifyMap(self.K, self.distortion, None, self.K, self.source_size, cv2.CV_32FC1)
        for index, frame in frames:
            if maps is not None:
                frame = cv2.remap(frame, maps[0], maps[1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
            if tuple(self.size) != (frame.shape[1], frame.shape[0]):
                frame = cv2.resize(frame, self.size, interpolation=cv2.INTER_AREA)
            yield index, frame


def file_signature(path: Path) -> Dict[str, Any]:
    """Identifies a source file's content cheaply (path, size, modification time)."""
    stat = path.stat()
    return {"path": str(path.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def cached_frames(
    cache_root: Path,
    camera: str,
    key: Dict[str, Any],
    frames: IndexedFrames,
    image_format: ImageFormat,
    description: str,
    total: Optional[int],
) -> List[Path]:
    """Image files of ``frames`` (consumed only when the cache for ``key`` is missing)."""
    key = {"version": CACHE_VERSION, "format": image_format, **key}
    digest = hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
    folder = cache_root / f"{camera}-{digest}"
    trusted = _trusted_files(folder, key)
    if trusted is not None:
        return trusted
    if folder.exists():
        shutil.rmtree(folder)
    cache_root.mkdir(parents=True, exist_ok=True)
    _remove_abandoned_partials(folder)
    with build_atomically(folder) as partial:
        names = _write_frames(partial, frames, image_format, description, total)
        (partial / "meta.json").write_text(json.dumps({"key": key, "files": names}, indent=1))
    return [folder / name for name in names]


def _trusted_files(folder: Path, key: Dict[str, Any]) -> Optional[List[Path]]:
    meta_path = folder / "meta.json"
    if not meta_path.is_file():
        return None
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError:
        return None
    files = [folder / name for name in meta.get("files", [])]
    if meta.get("key") != key or not all(f.is_file() for f in files):
        return None
    return files


def _remove_abandoned_partials(folder: Path) -> None:
    """Delete ``<folder>.partial-<pid>`` folders whose process no longer runs."""
    for partial in folder.parent.glob(f"{folder.name}{PARTIAL_MARK}*"):
        pid = partial.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not _process_alive(int(pid)):
            shutil.rmtree(partial, ignore_errors=True)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _write_frames(
    folder: Path, frames: IndexedFrames, image_format: ImageFormat, description: str, total: Optional[int]
) -> List[str]:
    params = [cv2.IMWRITE_JPEG_QUALITY, 95] if image_format == "jpg" else []
    names: List[str] = []
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    CONSOLE.print(f"{description} into {folder.name.split(PARTIAL_MARK)[0]}")
    with Progress(*columns, console=CONSOLE, transient=True, disable=not CONSOLE.is_interactive) as progress:
        task = progress.add_task(description, total=total)
        for index, rgb in frames:
            name = f"{index:06d}.{image_format}"
            write_rgb(folder / name, rgb, params)
            names.append(name)
            progress.advance(task)
    return names
