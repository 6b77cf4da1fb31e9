"""Dynamic masks for the velocity-aware initialization (see :mod:`sharptime_ns.init`).

Two sources, per frame and camera:

* user-provided masks (e.g. from SAM2) in ``<data_dir>/masks/<camera>/<frame>.png``: white (> 127)
  = dynamic, black = static. ``<camera>`` is the camera's name, ``<frame>`` the stem of that
  frame's image file (``images/cam00/000012.jpg`` → ``masks/cam00/000012.png``) or, failing
  that, the frame index (any zero padding: ``12.png``, ``0012.png``, …). Any extension cv2 reads
  works, any resolution (masks are sampled in relative coordinates). A missing mask falls back
  to the optical-flow mask of that image.
* optical flow (OpenCV DIS or Farnebäck) between consecutive frames of the same camera,
  thresholded on its magnitude and cleaned morphologically.

Masks are kept at the (possibly reduced) flow resolution; :func:`sample_mask` looks them up with
pixel coordinates of the stored image.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from sharptime_ns.init import VelocityInitConfig

MASK_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".exr")


def read_rgb(path: Path) -> np.ndarray:
    """uint8 [H, W, 3] RGB image (alpha dropped, 16-bit scaled down)."""
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise FileNotFoundError(f"cv2 could not read image {path}")
    if img.dtype != np.uint8:
        img = (img.astype(np.float32) / np.iinfo(img.dtype).max * 255.0 + 0.5).astype(np.uint8)
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def flow_resolution(width: int, height: int, max_side: int) -> Tuple[int, int]:
    """(w, h) the flow is computed at: the image downscaled so that its longer side ≤ max_side."""
    scale = min(1.0, max_side / max(width, height)) if max_side > 0 else 1.0
    return max(1, int(round(width * scale))), max(1, int(round(height * scale)))


def to_flow_gray(rgb: np.ndarray, max_side: int) -> np.ndarray:
    """Grayscale uint8 image at flow resolution."""
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    w, h = flow_resolution(rgb.shape[1], rgb.shape[0], max_side)
    if (w, h) != (rgb.shape[1], rgb.shape[0]):
        gray = cv2.resize(gray, (w, h), interpolation=cv2.INTER_AREA)
    return gray


class FlowMasker:
    """Optical-flow magnitude between consecutive frames of one camera → cleaned dynamic mask."""

    def __init__(self, config: "VelocityInitConfig") -> None:
        self.config = config
        self._dis = None
        if config.flow_method == "dis":
            presets = {
                "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
                "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
                "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
            }
            self._dis = cv2.DISOpticalFlow_create(presets[config.dis_preset])
        elif config.flow_method != "farneback":
            raise ValueError(f"unknown flow_method {config.flow_method!r} (expected 'dis' or 'farneback')")

    def flow(self, gray_from: np.ndarray, gray_to: np.ndarray) -> np.ndarray:
        """Dense flow [h, w, 2] (pixels of the flow resolution) taking gray_from onto gray_to."""
        if self._dis is not None:
            return self._dis.calc(gray_from, gray_to, None)
        return cv2.calcOpticalFlowFarneback(gray_from, gray_to, None, 0.5, 4, 15, 3, 5, 1.2, 0)

    def evidence(self, gray_from: np.ndarray, gray_to: np.ndarray, full_width: int) -> Tuple[np.ndarray, np.ndarray]:
        """Motion evidence of gray_from's pixels towards gray_to, both [h, w] bool: *moving* (flow
        magnitude above ``flow_threshold`` pixels of the flow resolution) and *changed*
        (brightness change above ``photometric_threshold`` after a box blur of 5 stored pixels)."""
        c = self.config
        flow = self.flow(gray_from, gray_to)
        moving = np.linalg.norm(flow, axis=-1) > c.flow_threshold
        k = max(3, int(round(5 * gray_from.shape[1] / full_width)) | 1)
        changed = cv2.absdiff(cv2.blur(gray_from, (k, k)), cv2.blur(gray_to, (k, k))) > c.photometric_threshold
        return moving, changed

    def mask(self, evidence: Sequence[Tuple[np.ndarray, np.ndarray]], full_width: int) -> np.ndarray:
        """Dynamic mask [h, w] bool from the evidence towards the neighbouring frames.

        ``flow_combine = "min"`` keeps pixels that move towards *both* neighbours (tight: the
        smear into regions the object is about to cover or has just left is rejected);
        ``"max"`` keeps pixels moving towards either. First/last frames have one neighbour.
        After a morphological opening (noise) and closing (holes), connected regions smaller than
        ``min_mask_component`` of the image, or in which less than ``min_changed_fraction`` of the
        pixels change brightness, are dropped: flow in textureless noisy areas (a plain sky or
        wall) is no evidence of motion. The result is dilated by ``mask_dilate``. Morphology
        sizes are pixels of the stored image, converted to the flow resolution.
        """
        c = self.config
        if len(evidence) == 0:
            raise ValueError("need at least one neighbouring frame")
        moving = np.stack([m for m, _ in evidence])
        mask = (moving.all(axis=0) if c.flow_combine == "min" else moving.any(axis=0)).astype(np.uint8)
        changed = np.stack([ch for _, ch in evidence]).any(axis=0)
        scale = mask.shape[1] / full_width

        def kernel(size_px: int) -> Optional[np.ndarray]:
            k = int(round(size_px * scale))
            if k < 2:
                return None
            return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))

        for op, size in ((cv2.MORPH_OPEN, c.morph_open), (cv2.MORPH_CLOSE, c.morph_close)):
            k = kernel(size)
            if k is not None:
                mask = cv2.morphologyEx(mask, op, k)
        if mask.any() and (c.min_mask_component > 0 or c.min_changed_fraction > 0):
            n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
            area = stats[:, cv2.CC_STAT_AREA].astype(np.float64)
            changed_area = np.bincount(labels.reshape(-1), weights=changed.reshape(-1).astype(np.float64), minlength=n)
            keep = (area >= c.min_mask_component * mask.size) & (changed_area >= c.min_changed_fraction * area)
            keep[0] = False
            mask = keep[labels].astype(np.uint8)
        k = kernel(c.mask_dilate)
        if k is not None:
            mask = cv2.dilate(mask, k)
        return mask.astype(bool)


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

    def load(self, cam: int, frame: int, image_path: Path) -> Optional[np.ndarray]:
        p = self.path(cam, frame, image_path)
        if p is None:
            return None
        m = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
        if m is None:
            raise FileNotFoundError(f"cv2 could not read mask {p}")
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


def sample_mask(mask: np.ndarray, xy: np.ndarray, width: int, height: int) -> np.ndarray:
    """Mask values [N] at pixel coordinates xy [N, 2] of a width × height image (OpenCV pixel
    centres at +0.5; points outside the image read False)."""
    mh, mw = mask.shape
    xy = np.nan_to_num(np.asarray(xy, dtype=np.float64), nan=-1.0, posinf=-1.0, neginf=-1.0)
    inside = (xy[:, 0] >= 0) & (xy[:, 0] < width) & (xy[:, 1] >= 0) & (xy[:, 1] < height)
    mx = np.clip(np.floor(xy[:, 0] * (mw / width)).astype(np.int64), 0, mw - 1)
    my = np.clip(np.floor(xy[:, 1] * (mh / height)).astype(np.int64), 0, mh - 1)
    return inside & mask[my, mx]
