"""User-provided dynamic masks (e.g. from SAM2) in ``<data_dir>/masks/<camera>/<frame>.png``.

White (> 127) = dynamic, black = static. ``<camera>`` is the camera's name, ``<frame>`` the stem of
that frame's image file (``images/cam00/000012.jpg`` → ``masks/cam00/000012.png``) or, failing that,
the frame index (any zero padding: ``12.png``, ``0012.png``, …). Any extension cv2 reads works,
any resolution (masks are sampled in relative coordinates). A missing mask falls back to the
optical-flow mask of that image.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Sequence

import cv2
import numpy as np

from dataparsers.errors import DatasetFormatError

MASK_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".exr")


class UserMasks:
    """Index of ``<data_dir>/<masks_dir>/<camera>/<frame>.<ext>`` files."""

    def __init__(self, root: Path, camera_names: Sequence[str]) -> None:
        self.root = root
        self.by_stem: List[Dict[str, Path]] = []
        self.by_index: List[Dict[int, Path]] = []
        for name in camera_names:
            stems: Dict[str, Path] = {}
            numbers: Dict[int, Path] = {}
            folder = root / name
            if folder.is_dir():
                for p in sorted(folder.iterdir()):
                    if p.suffix.lower() in MASK_EXTENSIONS and p.is_file():
                        stems.setdefault(p.stem, p)
                        if p.stem.isdigit():
                            numbers.setdefault(int(p.stem), p)
            self.by_stem.append(stems)
            self.by_index.append(numbers)

    @property
    def files(self) -> List[Path]:
        return sorted({p for d in self.by_stem for p in d.values()})

    def __bool__(self) -> bool:
        return any(self.by_stem)

    def path(self, cam: int, frame: int, image_path: Path) -> Optional[Path]:
        p = self.by_stem[cam].get(Path(image_path).stem)
        if p is None:
            p = self.by_index[cam].get(frame)
        return p

    def covers(self, cam: int, image_paths: Sequence[Path]) -> bool:
        """Every frame of camera ``cam`` (``image_paths[k]`` its image of frame k) has a mask."""
        return all(self.path(cam, k, p) is not None for k, p in enumerate(image_paths))

    def load(self, cam: int, frame: int, image_path: Path) -> Optional[np.ndarray]:
        p = self.path(cam, frame, image_path)
        if p is None:
            return None
        m = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
        if m is None:
            raise DatasetFormatError(p, "cannot be read as an image")
        if m.ndim == 3:
            m = m[..., :3].max(axis=-1) if m.shape[-1] >= 3 else m[..., 0]
        if m.dtype == np.uint8:
            return m > 127
        if np.issubdtype(m.dtype, np.integer):
            return m > np.iinfo(m.dtype).max // 2
        return m > 0.5


def find_user_masks(data_dir: Path, masks_dir: str, camera_names: Sequence[str]) -> Optional[UserMasks]:
    root = Path(data_dir) / masks_dir
    if not root.is_dir():
        return None
    masks = UserMasks(root, camera_names)
    return masks if masks else None
