"""The untrained rows of benchmarks/shapeofmotion_synthetic.py: the lifted 2D-track prior of every
ground-truth track, and the cached initialization's own trajectories beside the prior on the same
tracks, scored with the tracking metrics of the trained rows (shapeofmotion_ns.eval_tracks)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np
import torch
from nerfstudio.models.splatfacto import get_viewmat

from dataparsers.iphone.dataparser import IPhoneDataParserConfig
from dataparsers.iphone.dataset import IPhoneDataset
from dataparsers.iphone.layout import IPhoneLayout
from shapeofmotion_ns.eval_tracks import pixels_to_1x, score_tracks
from shapeofmotion_ns.init import InitConfig, cached_initialize_scene
from shapeofmotion_ns.iphone_frames import training_frames
from shapeofmotion_ns.lift import lift_points, usable_depths
from shapeofmotion_ns.motion import bases_at, blend, move_means
from shapeofmotion_ns.track_annotations import AnnotatedFrames, from_ground_truth_tracks
from shapeofmotion_ns.track_clusters import fill_missing
from shapeofmotion_ns.track_metrics import TrackAnnotations, TrackPredictions
from splat4d.geometry import apply_transform, camera_centres, project


def lifted_tracks(scene: Path, factor: int):
    """The scene's training data and every ground-truth track's lifted 2D track ([P, T, 3] world,
    unobserved frames interpolated as the initialization does; [P, T] visibility)."""
    outputs = IPhoneDataParserConfig(data=scene, factor=factor).setup().get_dataparser_outputs("train")
    dataset = IPhoneDataset(outputs)
    frames = training_frames(dataset)
    usable, depths = usable_depths(frames)
    lifted = [lift_points(frames, q, torch.arange(n), usable, depths) for q, n in enumerate(frames.tracks.num_points)]
    xyz = torch.cat([t.xyz for t in lifted])  # [P, T, 3] in the order of the ground-truth tracks
    visible = torch.cat([t.visible for t in lifted])
    seen = visible.any(dim=1)
    xyz[seen] = fill_missing(xyz[seen], visible[seen])  # never-seen tracks keep their raw lifted points
    return outputs, dataset, frames, xyz, visible


def track_position_predictions(
    scene: Path,
    outputs,
    dataset,
    frames,
    xyz: torch.Tensor,
    visible: torch.Tensor,
    tracks: torch.Tensor,
    max_frames: int,
) -> Tuple[TrackPredictions, TrackAnnotations]:
    """Predictions when ground-truth track ``tracks[p]`` is predicted at ``xyz[p]`` [T, 3] at every
    frame (whatever the query frame) and visible where ``visible[p]``, and the annotations of those
    tracks."""
    to_ns = torch.eye(4)
    to_ns[:3] = outputs.dataparser_transform * outputs.dataparser_scale
    annotated: AnnotatedFrames = from_ground_truth_tracks(
        IPhoneLayout(scene).ground_truth_dir / "tracks_3d.npz",
        dataset.cameras,
        dataset.metadata["time_ids"],
        to_ns,
        dataset.metadata["metric_scale"],
        max_frames,
    )
    a = annotated.annotations
    ann = TrackAnnotations(
        a.points_2d[:, tracks], a.visible[:, tracks], a.points_3d[:, tracks], a.valid_3d[:, tracks], a.camera_centres
    )
    steps = frames.time_ids[annotated.frames]
    w2c = get_viewmat(dataset.cameras.camera_to_worlds[annotated.frames])
    Ks = dataset.cameras.get_intrinsics_matrices()[annotated.frames]
    K = len(steps)
    at_j = xyz[:, steps].transpose(0, 1)  # [K, P, 3]: where every point is at frame j, whatever frame i
    pixels, _ = project(apply_transform(w2c[:, None], at_j), Ks[:, None])
    predictions = TrackPredictions(
        points_3d=at_j[None].expand(K, -1, -1, -1),
        points_2d=pixels[None].expand(K, -1, -1, -1),
        visible=visible[:, steps].T[None].expand(K, -1, -1),
        camera_centres=camera_centres(w2c),
    )
    return predictions, ann


def lifted_prior_predictions(
    scene: Path, max_frames: int, factor: int
) -> Tuple[TrackPredictions, TrackAnnotations, float]:
    """Predictions of the lifted 2D tracks of every ground-truth track, their annotations, and the
    1x pixels per pixel of the predictions."""
    outputs, dataset, frames, xyz, visible = lifted_tracks(scene, factor)
    num_gt = int(np.load(IPhoneLayout(scene).ground_truth_dir / "tracks_3d.npz")["positions"].shape[0])
    if num_gt != len(xyz):
        raise ValueError(f"{len(xyz)} 2D tracks but {num_gt} ground-truth tracks")
    tracks = torch.arange(len(xyz))
    return (
        *track_position_predictions(scene, outputs, dataset, frames, xyz, visible, tracks, max_frames),
        pixels_to_1x(dataset),
    )


def prior_metrics(scene: Path, max_frames: int, factor: int) -> Dict[str, float]:
    """Tracking metrics of the lifted 2D tracks of every ground-truth track (module docstring)."""
    return score_tracks(*lifted_prior_predictions(scene, max_frames, factor))


def init_trajectory_rows(scene: Path, init_config: InitConfig, max_frames: int, factor: int) -> List[Dict]:
    """The cached initialization's dynamic Gaussians scored on their own ground-truth tracks, and
    the lifted prior on the same tracks (module docstring); visibility is the lifted one in both."""
    start = time.perf_counter()
    outputs, dataset, frames, xyz, visible = lifted_tracks(scene, factor)
    device = "cuda" if torch.cuda.is_available() else "cpu"  # as the datamanager keys the cache
    init = cached_initialize_scene(frames, init_config, scene, device)
    offsets = torch.tensor([0, *frames.tracks.num_points]).cumsum(0)
    tracks = offsets[init.track_ids[:, 0]] + init.track_ids[:, 1]  # ground-truth track of each dynamic Gaussian
    num_dyn = len(tracks)
    steps = torch.arange(frames.num_time_steps)
    R, t = blend(init.coef_logits[:num_dyn], *bases_at(init.rots, init.transls, steps))
    moved = init.normalization.points_to_world(move_means(init.means[:num_dyn], R, t))  # [P, T, 3]
    to_1x = pixels_to_1x(dataset)
    own = score_tracks(
        *track_position_predictions(scene, outputs, dataset, frames, moved, visible[tracks], tracks, max_frames), to_1x
    )
    middle = time.perf_counter()
    prior = score_tracks(
        *track_position_predictions(scene, outputs, dataset, frames, xyz[tracks], visible[tracks], tracks, max_frames),
        to_1x,
    )
    label = f"{num_dyn}/{len(xyz)} tracks"
    return [
        {"row": f"lifted prior, the init's {label}", "seed": None, **prior, "seconds": time.perf_counter() - middle},
        {"row": f"init trajectories, {label} (no rendering)", "seed": None, **own, "seconds": middle - start},
    ]
