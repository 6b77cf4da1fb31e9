"""Synthetic monocular scenes in the DyCheck iPhone layout with Shape of Motion's priors.

The dynamic scene of scene.py is filmed by one hand-held camera (camera 0: an arc around the
scene with bobbing, hand shake and roll; the ``train`` split) and two static validation cameras
(cameras 1 and 2; the ``val`` split), all at every time step. Written (layout.py explains each):

- the DyCheck files: splits, dataset / metadata / extra / scene JSON, camera/<frame>.json,
  rgb/{1x,2x} with a 2-pixel invalid border (alpha 0);
- refined COLMAP cameras (the exact ones, in units of ``metric_scale`` metres) and scale.npy;
- degraded priors (monocular_priors.py): lidar depth/1x and aligned_depth_anything_colmap
  disparity of the training frames, track_anything motion masks of every frame, 2D tracks of
  every training frame pair, covisible masks of the validation frames, keypoints;
- ``ground_truth/`` (never read by the parser): ground_truth.py's scene.json (with one camera per
  frame name), object poses, ``<camera id>.npz`` renders of each camera over time, and
  ``tracks_3d.npz``: the exact 3D tracks of the 2D tracks' query points (GroundTruthTracks
  fields), in the world of camera/*.json.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Literal, Sequence

import numpy as np

from dataparsers.atomic_folder import build_atomically
from dataparsers.iphone.cameras import FrameCamera, write_colmap_cameras
from dataparsers.iphone.layout import LIDAR, IPhoneLayout, frame_name
from dataparsers.iphone.writer import (
    FrameRecord,
    write_camera,
    write_frame_lists,
    write_json,
    write_mask,
    write_rgb,
    write_scene_bounds,
    write_track_pair,
)
from dataparsers.synthetic.ground_truth import SCENES, write_camera_ground_truth, write_scene_ground_truth
from dataparsers.synthetic.monocular_priors import (
    GroundTruthTracks,
    PriorDegradation,
    aligned_disparity,
    covisible_mask,
    degrade_mask,
    degraded_track,
    ground_truth_tracks,
    keypoint_rows,
    lidar_depth,
    surface_points,
)
from dataparsers.synthetic.rig import look_at_w2c
from dataparsers.synthetic.scene import PinholeCamera, SyntheticScene

TARGET = np.array([0.0, 0.0, 0.4])
INVALID_BORDER = 2  # pixels with alpha 0 around every image
DEPTH_SOURCE = "aligned_depth_anything_colmap"


@dataclass
class MonocularConfig:
    """What to render and how the priors are degraded."""

    num_frames: int = 24
    """Time steps (frames of each camera)."""
    width: int = 160
    """Image width at 1x (even: rgb/2x halves it)."""
    height: int = 120
    """Image height at 1x (even)."""
    fps: float = 30.0
    """Frame rate."""
    horizontal_fov_deg: float = 60.0
    """Field of view of the hand-held camera (the validation cameras zoom in 10%)."""
    supersample: int = 2
    """Sub-pixel rays per pixel side."""
    seed: int = 0
    """Varies the scene's colours and textures and every degradation."""
    metric_scale: float = 2.0
    """Metres per COLMAP unit (scale.npy): the refined cameras and the aligned disparity use this unit."""
    scene: Literal["default", "articulated"] = "default"
    """default: scene.py's rigid objects; articulated: articulated.py's 3-link arm and a rolling sphere."""
    handheld_tremor: float = 0.0
    """Amplitude (world units) of a fast hand tremor (a few Hz, by the frame rate) added to the
    training camera's position and aim; 0: only the slow shake."""
    degradation: PriorDegradation = field(default_factory=PriorDegradation)


def intrinsics(cfg: MonocularConfig, zoom: float) -> np.ndarray:
    focal = zoom * cfg.width / (2.0 * np.tan(np.radians(cfg.horizontal_fov_deg) / 2.0))
    return np.array([[focal, 0.0, cfg.width / 2.0 + 1.3], [0.0, focal, cfg.height / 2.0 - 0.7], [0.0, 0.0, 1.0]])


def orbit_point(azimuth_deg: float, elevation_deg: float, radius: float) -> np.ndarray:
    az, el = np.radians(azimuth_deg), np.radians(elevation_deg)
    return TARGET + radius * np.array([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)])


def handheld_cameras(cfg: MonocularConfig) -> List[PinholeCamera]:
    """The training camera at each time step: a smooth 50° arc with bobbing, hand shake and roll."""
    cams = []
    for u in np.linspace(0.0, 1.0, cfg.num_frames):
        ease = 0.5 - 0.5 * np.cos(np.pi * u)
        elevation, radius = 22.0 + 4.0 * np.sin(2.6 * np.pi * u), 3.3 + 0.15 * np.sin(2 * np.pi * u)
        centre = orbit_point(-115.0 + 50.0 * ease, elevation, radius)
        shake = 0.05 * np.array([np.sin(7.1 * u + 0.3), np.sin(5.3 * u + 1.1), np.sin(6.7 * u + 2.0)])
        seconds = u * (cfg.num_frames - 1) / cfg.fps
        tremor = cfg.handheld_tremor * np.array(
            [np.sin(2 * np.pi * f * seconds + p) for f, p in ((3.1, 0.2), (4.3, 1.7), (2.7, 2.9))]
        )
        centre = centre + tremor
        w2c = look_at_w2c(centre, TARGET + shake + 0.5 * tremor[::-1])
        roll = np.radians(4.0) * np.sin(1.6 * np.pi * u)
        c, s = np.cos(roll), np.sin(roll)
        w2c[:3] = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]) @ w2c[:3]  # roll about the optical axis
        cams.append(PinholeCamera(intrinsics(cfg, 1.0), w2c, cfg.width, cfg.height))
    return cams


def validation_cameras(cfg: MonocularConfig) -> List[PinholeCamera]:
    """Two static cameras on either side of the training arc."""
    centres = [orbit_point(-150.0, 30.0, 3.6), orbit_point(-30.0, 16.0, 3.6)]
    return [PinholeCamera(intrinsics(cfg, 1.1), look_at_w2c(c, TARGET), cfg.width, cfg.height) for c in centres]


def frame_camera(cam: PinholeCamera) -> FrameCamera:
    return FrameCamera(cam.K.copy(), cam.w2c.copy(), cam.width, cam.height, np.zeros(5))


def write_monocular_scene(out: Path, cfg: MonocularConfig, overwrite: bool = False) -> Path:
    """Render and write the scene to ``out`` (built in ``<out>.partial-<pid>``, renamed when complete)."""
    out = Path(out)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} exists (pass overwrite=True / --overwrite to replace it)")
    if cfg.width % 2 or cfg.height % 2:
        raise ValueError(f"width and height must be even (rgb/2x halves them), got {cfg.width}×{cfg.height}")
    with build_atomically(out) as partial:
        MonocularWriter(IPhoneLayout(partial), cfg).write()
    return out


class MonocularWriter:
    """Renders every camera once, then writes the layout, the priors and the ground truth."""

    def __init__(self, layout: IPhoneLayout, cfg: MonocularConfig) -> None:
        self.layout, self.cfg = layout, cfg
        self.rng = np.random.default_rng(cfg.seed)
        self.scene: SyntheticScene = SCENES[cfg.scene](cfg.num_frames, cfg.fps, cfg.seed)
        steps = range(cfg.num_frames)
        self.cameras = {0: handheld_cameras(cfg)} | {
            k + 1: [cam] * cfg.num_frames for k, cam in enumerate(validation_cameras(cfg))
        }
        self.renders = {
            c: [self.scene.render(cams[t], t, cfg.supersample) for t in steps] for c, cams in self.cameras.items()
        }
        self.names = {c: [frame_name(c, t) for t in steps] for c in self.cameras}

    def write(self) -> None:
        layout, cfg = self.layout, self.cfg
        valid = np.zeros((cfg.height, cfg.width), dtype=bool)
        valid[INVALID_BORDER:-INVALID_BORDER, INVALID_BORDER:-INVALID_BORDER] = True
        records, colmap = [], {}
        for c, names in self.names.items():
            for t, name in enumerate(names):
                write_rgb(layout, name, np.round(self.renders[c][t].rgb * 255).astype(np.uint8), valid)
                write_camera(layout, name, frame_camera(self.cameras[c][t]))
                records.append(FrameRecord(name, t, c))
                colmap[name] = frame_camera(self.cameras[c][t])
                colmap[name].w2c[:3, 3] /= cfg.metric_scale
        write_frame_lists(layout, records, {"train": self.names[0], "val": self.names[1] + self.names[2]})
        write_scene_bounds(layout, self.lidar_points(), [frame_camera(c) for c in self.cameras[0]], cfg.fps)
        write_colmap_cameras(layout.colmap_dir, colmap)
        np.save(layout.metric_scale_file, np.array(cfg.metric_scale))
        tracks = self.write_tracks(self.write_depth_and_masks())
        self.write_covisible()
        self.write_keypoints()
        self.write_ground_truth(tracks)

    def lidar_points(self) -> np.ndarray:
        """Surface points of the training frames within lidar range (for scene.json)."""
        points = []
        for cam, render in zip(self.cameras[0], self.renders[0]):
            rows, cols = np.nonzero(render.depth < self.cfg.degradation.lidar_range)
            points.append(surface_points(cam, render, rows[::7], cols[::7]))
        return np.concatenate(points)

    def write_depth_and_masks(self) -> List[np.ndarray]:
        """Depth priors of the training frames and motion masks of all; returns the training masks."""
        deg, layout = self.cfg.degradation, self.layout
        train_masks = []
        for c, names in self.names.items():
            for name, render in zip(names, self.renders[c]):
                mask = degrade_mask(render.dynamic_mask, self.rng, deg.mask_error)
                write_mask(layout.motion_mask_dir / f"{name}.png", mask)
                if c == 0:
                    train_masks.append(mask)
                    layout.depth_dir(LIDAR).mkdir(parents=True, exist_ok=True)
                    np.save(layout.depth_dir(LIDAR) / f"{name}.npy", lidar_depth(render.depth, self.rng, deg))
                    layout.depth_dir(DEPTH_SOURCE).mkdir(parents=True, exist_ok=True)
                    np.save(
                        layout.depth_dir(DEPTH_SOURCE) / f"{name}.npy",
                        aligned_disparity(render.depth, self.cfg.metric_scale, self.rng, deg),
                    )
        return train_masks

    def write_tracks(self, masks: Sequence[np.ndarray]) -> GroundTruthTracks:
        """2D tracks of every training frame pair, degraded from the exact tracks (returned)."""
        cams, names = self.cameras[0], self.names[0]
        tracks = ground_truth_tracks(self.scene, cams, self.renders[0], masks, self.cfg.degradation.track_stride)
        for q, query in enumerate(names):
            sel = tracks.query_index == q
            for t, target in enumerate(names):
                if t == q:  # the query file holds the query points themselves, confidently visible
                    count = int(sel.sum())
                    write_track_pair(
                        self.layout, query, target, tracks.query_uv[sel], np.full(count, -5.0), np.full(count, -5.0)
                    )
                    continue
                uv, occlusion, dist = degraded_track(
                    cams[t], tracks.positions[sel, t], tracks.visible[sel, t], self.rng, self.cfg.degradation
                )
                write_track_pair(self.layout, query, target, uv, occlusion, dist)
        return tracks

    def write_covisible(self) -> None:
        for c in (1, 2):
            for t, (name, render) in enumerate(zip(self.names[c], self.renders[c])):
                mask = covisible_mask(self.scene, self.cameras[c][t], render, t, self.cameras[0], self.renders[0])
                write_mask(self.layout.covisible_dir / f"{name}.png", mask)

    def write_keypoints(self) -> None:
        count = min(self.cfg.degradation.keypoint_frames, self.cfg.num_frames)
        for t in np.unique(np.linspace(0, self.cfg.num_frames - 1, count).round().astype(int)):
            rows = keypoint_rows(self.scene, self.cameras[0][t], self.renders[0][t], int(t))
            write_json(self.layout.keypoint_dir / f"{self.names[0][t]}.json", rows.tolist())

    def write_ground_truth(self, tracks: GroundTruthTracks) -> None:
        folder = self.layout.ground_truth_dir
        folder.mkdir(parents=True)
        cams = {self.names[c][t]: cam for c, cs in self.cameras.items() for t, cam in enumerate(cs)}
        frames = {self.names[c][t]: np.array([float(t)]) for c, cs in self.cameras.items() for t in range(len(cs))}
        write_scene_ground_truth(folder, "iphone", self.scene, self.cfg.seed, cams, frames, family=self.cfg.scene)
        for c, renders in self.renders.items():
            write_camera_ground_truth(folder, str(c), renders)
        np.savez_compressed(folder / "tracks_3d.npz", **vars(tracks))
