"""Shape of Motion initialization from a monocular video's priors (no CUDA-only libraries).

1. lift the 2D tracks of motion-masked query points to 3D (lift.py);
2. normalize the scene from the visible track points and the cameras (normalization.py) and fill
   each track's unobserved frames by linear interpolation;
3. pick the canonical frame (most visible tracks), drop tracks whose canonical position is
   beyond the 95% quantile of distances to the median;
4. motion bases and coefficients by k-means, Procrustes and a short optimization
   (init_motion.py); one dynamic Gaussian per track at its canonical position;
5. static Gaussians from background pixels of the depth maps (init_static.py), oriented by the
   depth map's normals.
Scales are the mean distance to the 3 nearest neighbours (dynamic ones clamped to the 5%–95%
quantiles), opacities 0.7, colours from the images; everything is in the normalized frame.

``cached_initialize_scene`` keeps the result in ``<data>/.splat4d_cache/shapeofmotion_init_<hash>.pt``
(splat4d/cache.py) unless ``InitConfig.use_cache`` is off, keyed by the other InitConfig
settings, the device type, the training frames' names, cameras and time ids, and the size and
mtime of every file of the scene folder.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Literal, Optional

import torch
import torch.nn.functional as F
from nerfstudio.models.splatfacto import random_quat_tensor
from nerfstudio.utils.rich_utils import CONSOLE
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sklearn.neighbors import NearestNeighbors
from torch import Tensor

from shapeofmotion_ns.frames import TrainingFrames
from shapeofmotion_ns.init_motion import cameras_per_time_step, initial_motion, optimize_motion
from shapeofmotion_ns.init_static import static_points
from shapeofmotion_ns.lift import lift_tracks
from shapeofmotion_ns.motion import canonical_frame, identity_bases
from shapeofmotion_ns.normalization import SceneNormalization
from shapeofmotion_ns.track_clusters import ClusterBy, fill_missing
from splat4d.cache import cache_path, folder_stats, load_or_compute
from splat4d.quantile import safe_quantile

CACHE_VERSION = 2  # bump when initialize_scene's result changes for the same inputs


@dataclass
class InitConfig:
    """How the Gaussians and motion bases are initialized."""

    num_dynamic: int = 40_000
    """Foreground tracks lifted to 3D, one dynamic Gaussian each (before filtering)."""
    num_static: int = 100_000
    """Static Gaussians sampled from background pixels of the depth maps."""
    num_bases: int = 10
    """Track clusters, i.e. motion bases before small clusters are dropped."""
    cluster_by: ClusterBy = "velocity"
    """How tracks are grouped into the clusters whose rigid fits start the motion bases
    (shapeofmotion_ns/track_clusters.py). velocity: k-means on velocity directions (the reference);
    rigidity: spectral clustering by how well pairs of tracks keep their distance, so a rolling or
    spinning body, whose points move in different directions, gets one cluster and bodies moving
    the same way are not merged (benchmarks/RESULTS.md, issue 13, fourth pass)."""
    min_cluster_points: int = 100
    """Clusters with at most this many tracks get no basis (all are kept if none is larger)."""
    coef_init: Literal["distance", "cluster"] = "distance"
    """Initial motion-coefficient logits. distance: 10·exp(−‖μ − centre_b‖) to each cluster's
    median canonical position (the reference); cluster: 10 on the track's own k-means cluster and
    0 elsewhere (each Gaussian starts on one basis). The reference's stays the default: on the
    articulated benchmark scene (seed 0, benchmarks/RESULTS.md, issue 13 follow-up) "cluster"
    fixed the rolling ball but lost far more on the arm's hand, 0.205 vs 0.193 m EPE overall."""
    min_procrustes_weight: float = 0.1
    """A frame whose total Procrustes weight is below this × the number of time steps copies the
    previous frame's basis."""
    optim_steps: int = 1000
    """Steps of the initial fit of bases, coefficients and means to the 3D tracks."""
    initial_opacity: float = 0.7
    """Opacity of every initial Gaussian."""
    seed: int = 42
    """Seed of the track / pixel sampling and of k-means."""
    use_cache: bool = True
    """Load the initialization from / save it to <data>/.splat4d_cache/shapeofmotion_init_<hash>.pt
    (the hash covers the other settings, the training cameras and the scene folder's file sizes and mtimes)."""


@dataclass
class SceneInit:
    """Initial Gaussians (dynamic ones first) and motion bases, in the normalized frame."""

    normalization: SceneNormalization
    canonical_frame: int  # time step of the canonical positions
    means: Tensor  # [N, 3]
    quats: Tensor  # [N, 4]
    log_scales: Tensor  # [N, 3]
    colors: Tensor  # [N, 3] in [0, 1]
    opacities: Tensor  # [N] in (0, 1)
    is_dynamic: Tensor  # [N] bool
    coef_logits: Tensor  # [N, B] (0 for static Gaussians)
    rots: Tensor  # [B, T, 6]
    transls: Tensor  # [B, T, 3]
    static_extent: float  # half the largest 5%–95% quantile range of the static points
    track_ids: Optional[Tensor] = None  # [num dynamic, 2] int64: each dynamic Gaussian's track (Tracks3D.ids)


def empty_init(num_time_steps: int) -> SceneInit:
    """No Gaussians, one still basis, the identity normalization (shapes to load a checkpoint into)."""
    rots, transls = identity_bases(1, num_time_steps)
    return SceneInit(
        SceneNormalization(torch.eye(3), torch.zeros(3), 1.0),
        0,
        torch.zeros(0, 3),
        torch.zeros(0, 4),
        torch.zeros(0, 3),
        torch.zeros(0, 3),
        torch.zeros(0),
        torch.zeros(0, dtype=torch.bool),
        torch.zeros(0, 1),
        rots,
        transls,
        1.0,
    )


def knn_mean_distance(points: Tensor, k: int = 3) -> Tensor:
    """Mean distance [N] of each point to its k nearest other points."""
    neighbours = NearestNeighbors(n_neighbors=min(k + 1, len(points))).fit(points.numpy())
    distances, _ = neighbours.kneighbors(points.numpy())
    return torch.from_numpy(distances[:, 1:]).float().mean(dim=-1).clamp(min=1e-7)


def quats_from_normals(normals: Tensor) -> Tensor:
    """Unit quaternions [N, 4] rotating +z onto the normals [N, 3] (identity for zero normals):
    q = normalize(1 + z·n, z × n)."""
    z = torch.tensor([0.0, 0.0, 1.0]).expand_as(normals)
    quats = torch.cat([1 + (z * normals).sum(-1, keepdim=True), torch.linalg.cross(z, normals, dim=-1)], dim=-1)
    flipped = quats.norm(dim=-1) < 1e-6  # n = −z: half turn about x
    quats[flipped] = torch.tensor([0.0, 1.0, 0.0, 0.0])
    quats[normals.norm(dim=-1) < 0.5] = torch.tensor([1.0, 0.0, 0.0, 0.0])
    return F.normalize(quats, dim=-1)


def half_extent(points: Tensor) -> float:
    centred = points - points.mean(dim=0)
    return float((safe_quantile(centred, 0.95, dim=0) - safe_quantile(centred, 0.05, dim=0)).max()) / 2.0


def initialize_scene(frames: TrainingFrames, config: InitConfig, device: str = "cpu") -> SceneInit:
    """Everything runs on the CPU but the fit of step 4, which runs on ``device``."""
    generator = torch.Generator().manual_seed(config.seed)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=CONSOLE, transient=True) as progress:
        tracks = lift_tracks(frames, config.num_dynamic, generator, progress)
        normalization = SceneNormalization.from_tracks(tracks.xyz[tracks.visible], frames.w2c.float())
        tracks.xyz = fill_missing(normalization.points_to_model(tracks.xyz), tracks.visible)
        canonical = canonical_frame(tracks.visible)
        cano_means = tracks.xyz[:, canonical]
        dist = (cano_means - cano_means.median(dim=0).values).norm(dim=-1)
        tracks = tracks.select(dist < safe_quantile(dist, 0.95) if len(dist) > 1 else dist >= 0)
        motion = initial_motion(
            tracks,
            canonical,
            config.num_bases,
            config.min_cluster_points,
            config.min_procrustes_weight,
            config.seed,
            config.coef_init,
            config.cluster_by,
            progress,
        )
        w2c, K = cameras_per_time_step(
            normalization.w2c_to_model(frames.w2c.float()), frames.K.float(), frames.time_ids, frames.num_time_steps
        )
        motion = optimize_motion(motion, tracks, w2c, K, config.optim_steps, progress, device)
        static = static_points(frames, config.num_static, generator, progress)
    dyn_scales = knn_mean_distance(motion.means)
    dyn_scales = dyn_scales.clamp(safe_quantile(dyn_scales, 0.05), safe_quantile(dyn_scales, 0.95))
    static_xyz = normalization.points_to_model(static.xyz)
    num_dyn, num_static = len(motion.means), len(static_xyz)
    CONSOLE.log(
        f"Shape of Motion init: {num_dyn} dynamic and {num_static} static Gaussians, "
        f"{motion.rots.shape[0]} motion bases, canonical time step {canonical}, "
        f"scene scale {normalization.scale:.4g}"
    )
    return SceneInit(
        normalization=normalization,
        canonical_frame=canonical,
        means=torch.cat([motion.means, static_xyz]),
        quats=torch.cat([random_quat_tensor(num_dyn), quats_from_normals(static.normals @ normalization.rotation.T)]),
        log_scales=torch.log(torch.cat([dyn_scales, knn_mean_distance(static_xyz)]))[:, None].repeat(1, 3),
        colors=torch.cat([tracks.colors, static.colors]),
        opacities=torch.full((num_dyn + num_static,), config.initial_opacity),
        is_dynamic=torch.arange(num_dyn + num_static) < num_dyn,
        coef_logits=torch.cat([motion.coef_logits, torch.zeros(num_static, motion.coef_logits.shape[1])]),
        rots=motion.rots,
        transls=motion.transls,
        static_extent=half_extent(static_xyz),
        track_ids=tracks.ids,
    )


def scene_init_to_dict(init: SceneInit) -> Dict[str, Any]:
    """Tensors and primitives only (``torch.load(weights_only=True)`` reads them back)."""
    entry = {f.name: getattr(init, f.name) for f in dataclasses.fields(init)}
    entry["normalization"] = dataclasses.asdict(init.normalization)
    return entry


def scene_init_from_dict(entry: Dict[str, Any]) -> SceneInit:
    return SceneInit(**{**entry, "normalization": SceneNormalization(**entry["normalization"])})


def cached_initialize_scene(
    frames: TrainingFrames, config: InitConfig, data_dir: Path, device: str = "cpu"
) -> SceneInit:
    """initialize_scene, loaded from / saved to the cache of ``data_dir`` when ``config.use_cache``
    (module docstring)."""
    compute = lambda: scene_init_to_dict(initialize_scene(frames, config, device))  # noqa: E731
    if not config.use_cache:
        return scene_init_from_dict(load_or_compute(None, compute, "Shape of Motion init"))
    settings = {name: value for name, value in dataclasses.asdict(config).items() if name != "use_cache"}
    key = {
        "config": settings,
        "device": torch.device(device).type,
        "names": frames.names,
        "w2c": frames.w2c,
        "K": frames.K,
        "time_ids": frames.time_ids,
        "num_time_steps": frames.num_time_steps,
        "track_scale": frames.track_scale,
        "files": folder_stats(data_dir),
    }
    path = cache_path(data_dir, "shapeofmotion_init", CACHE_VERSION, key)
    return scene_init_from_dict(load_or_compute(path, compute, "Shape of Motion init"))
