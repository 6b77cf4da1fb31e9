"""The synthetic multi-view video of the SharpTimeGS initialization tests
(dataparsers/synthetic/scene.py: 6 cameras × 6 frames, 160×120) and its exact ground truth."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Dict, List, Tuple

import cv2
import numpy as np
import torch

from dataparsers.synthetic.rig import look_at_w2c
from dataparsers.synthetic.scene import PinholeCamera, RenderResult, SyntheticScene, default_scene
from sharptime_ns.init.inputs import MultiViewFrames
from sharptime_ns.init.points import InitPoints
from sharptime_ns.temporal import motion_factor

W, H = 160, 120
NUM_CAMERAS = 6
NUM_FRAMES = 6
SCENE_FRAMES = 16  # the scene's own frame count: frames FIRST..FIRST+5 show all three moving objects
FIRST = 5


def make_cameras() -> List[PinholeCamera]:
    K = np.array([[120.0, 0.0, W / 2], [0.0, 120.0, H / 2], [0.0, 0.0, 1.0]])
    cams = []
    for i in range(NUM_CAMERAS):
        a = -np.pi / 2 - 0.3 * np.pi + 0.6 * np.pi * i / (NUM_CAMERAS - 1)
        center = np.array([2.7 * np.cos(a), 2.7 * np.sin(a), 1.6])
        cams.append(PinholeCamera(K.copy(), look_at_w2c(center, np.array([-0.1, 0.1, 0.3])), W, H))
    return cams


@dataclass
class Synthetic:
    scene: SyntheticScene
    cams: List[PinholeCamera]
    gt: Dict[Tuple[int, int], RenderResult]  # (frame, camera) -> render
    frames: MultiViewFrames

    def frames_in(self, data_dir: Path) -> MultiViewFrames:
        """The same images, with another data dir (its own masks/ and cache)."""
        return replace(self.frames, data_dir=data_dir)


def render_synthetic(root: Path) -> Synthetic:
    """Frames FIRST to FIRST + NUM_FRAMES - 1 of the scene seen by the cameras, written under ``root``."""
    scene = default_scene(num_frames=SCENE_FRAMES, fps=15.0, seed=0)
    cams = make_cameras()
    gt, paths = {}, []
    for f in range(NUM_FRAMES):
        row = []
        for c, cam in enumerate(cams):
            r = scene.render(cam, FIRST + f, supersample=2)
            p = root / "images" / f"cam{c:02d}" / f"{f:05d}.png"
            p.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(p), cv2.cvtColor((r.rgb * 255 + 0.5).astype(np.uint8), cv2.COLOR_RGB2BGR))
            row.append(p)
            gt[f, c] = r
        paths.append(row)
    frames = MultiViewFrames(
        image_paths=paths,
        Ks=np.stack([c.K for c in cams]),
        w2c=np.stack([c.w2c for c in cams]),
        times=np.linspace(0.0, 1.0, NUM_FRAMES),
        camera_names=[f"cam{c:02d}" for c in range(NUM_CAMERAS)],
        data_dir=root,
    )
    return Synthetic(scene, cams, gt, frames)


def gt_lookup(syn: Synthetic, points: np.ndarray, frame: int) -> Tuple[np.ndarray, np.ndarray]:
    """Per point, the relative depth residual |z − depth_gt| / z in the camera where it is smallest
    (the point is visible there) and the GT object id at that pixel (-1 static, -2 nowhere)."""
    best = np.full(len(points), np.inf)
    oid = np.full(len(points), -2)
    for c, cam in enumerate(syn.cams):
        uv, z = cam.project(points)
        ix, iy = np.floor(uv[:, 0]).astype(int), np.floor(uv[:, 1]).astype(int)
        ok = (ix >= 0) & (ix < W) & (iy >= 0) & (iy < H) & (z > 0)
        res = np.full(len(points), np.inf)
        r = syn.gt[frame, c]
        res[ok] = np.abs(z[ok] - r.depth[iy[ok], ix[ok]]) / z[ok]
        better = res < best
        best[better] = res[better]
        oid[better] = r.object_id[iy[better], ix[better]]
    return best, oid


def point_frames(pts: InitPoints) -> np.ndarray:
    return np.round(pts.times * (NUM_FRAMES - 1)).astype(int)


def gt_labels(syn: Synthetic, pts: InitPoints) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Depth residual, object id and frame per point: dynamic points at their frame, static ones
    at the frame where they fit the GT surfaces best."""
    res = np.full(len(pts), np.inf)
    lab = np.full(len(pts), -2)
    frames = point_frames(pts)
    best_frame = frames.copy()
    xyz = pts.means.astype(np.float64)
    for f in range(NUM_FRAMES):
        sel = np.flatnonzero(~pts.is_dynamic | (frames == f))
        r, ids = gt_lookup(syn, xyz[sel], f)
        b = r < res[sel]
        res[sel[b]], lab[sel[b]], best_frame[sel[b]] = r[b], ids[b], f
    return res, lab, best_frame


def measured_velocity(pts: InitPoints) -> np.ndarray:
    f = motion_factor(torch.from_numpy(pts.tscales.astype(np.float64)), torch.from_numpy(pts.radii.astype(np.float64)))
    return pts.velocities / f.numpy()[:, None]


def gt_velocity(syn: Synthetic, xyz: np.ndarray, object_id: int, frame: int) -> np.ndarray:
    """Central difference over the neighbouring frames (one-sided at the ends), per normalized time."""
    a, b = max(frame - 1, 0), min(frame + 1, NUM_FRAMES - 1)
    track = syn.scene.track_points(
        xyz[None], np.array([object_id]), FIRST + frame, np.array([FIRST + a, FIRST + b], float)
    )
    return (track[1, 0] - track[0, 0]) / ((b - a) / (NUM_FRAMES - 1))


def split_accuracy(syn: Synthetic, pts: InitPoints, min_motion: float = 0.02) -> Tuple[float, float, float]:
    """(accuracy, dynamic precision, static precision) against the GT object ids, over the points
    that are unambiguous: on the static background, or on an object that moves by more than
    ``min_motion`` world units per frame there (about a pixel in these views); a point on an
    object that is momentarily (almost) still may go either way."""
    _, lab, frames = gt_labels(syn, pts)
    ambiguous = np.zeros(len(pts), bool)
    for i in np.flatnonzero(lab >= 0):
        v = gt_velocity(syn, pts.means[i].astype(np.float64), lab[i], frames[i])
        ambiguous[i] = np.linalg.norm(v) / (NUM_FRAMES - 1) < min_motion
    correct = np.where(pts.is_dynamic, lab >= 0, lab == -1)[~ambiguous]
    dyn = pts.is_dynamic[~ambiguous]
    return float(correct.mean()), float(correct[dyn].mean()), float(correct[~dyn].mean())
