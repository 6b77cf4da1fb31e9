"""Shape of Motion's per-step losses that read the model's motion: the 2D track and track-depth
losses on the rendered trajectory channels, and the motion / scale regularizers (flow3d's
trainer computes the same set each step)."""

from __future__ import annotations

from typing import Dict

import torch
from torch import Tensor

from shapeofmotion_ns import losses as L
from shapeofmotion_ns.track_batch import TrackBatch
from splat4d.dynamic_model import DynamicSplatModel
from splat4d.geometry import project


def track_losses(
    model: DynamicSplatModel,
    outputs: Dict[str, Tensor],
    tracks: TrackBatch,
    query_time: float,
    render_scale: float,
    image_size: int,
) -> Dict[str, Tensor]:
    """2D track and track-depth losses of the render at ``query_time`` (normalized time); track
    pixels are in images of ``image_size`` (max side), renders ``render_scale`` times that."""
    w = model.config.loss_weights
    points = model.track_points(outputs, tracks.query_xy * render_scale)  # [K, P, 3]
    pred_xy, pred_z = project(points, tracks.Ks[:, None])
    gap = model.frame_of(query_time - tracks.targets.times)[:, None].expand_as(tracks.confidence)
    weights = L.track_weights(tracks.confidence, gap, model.num_time_steps)
    seen = tracks.visible
    depth_weights = weights * (tracks.depth > 0).float()
    return {
        "track_2d_loss": w.w_track * L.track_2d_loss(pred_xy[seen], tracks.xy[seen], weights[seen], image_size),
        "track_depth_loss": w.w_depth_const
        * L.track_depth_loss(
            pred_z[seen] / model.norm_scale, tracks.depth[seen] / model.norm_scale, depth_weights[seen]
        ),
    }


def regularizers(model: DynamicSplatModel, t: float, camera_centre: Tensor) -> Dict[str, Tensor]:
    """Basis (with bases) / trajectory smoothness, z-acceleration towards ``camera_centre`` [3]
    (world) and scale variance (normalized frame), at the render's normalized time t."""
    w = model.config.loss_weights
    out = {}
    if model.uses_bases:
        rots, transls = model.motion_bases["rots"], model.motion_bases["transls"]
        out["smooth_bases_loss"] = w.w_smooth_bases * L.bases_smoothness(rots, transls)
    T = model.num_time_steps
    if T >= 3 and len(model.dynamic_ids) > 0:
        f = model.frame_of(torch.tensor(t, device=model.device)).round().clamp(1, T - 2)
        around, _ = model.dynamic_poses(torch.stack([f - 1, f, f + 1]))  # [G, 3, 3]
        neighbours = around[:, :, None]  # [G, 3 frames, K = 1, 3]
        out["smooth_tracks_loss"] = w.w_smooth_tracks * L.track_smoothness(neighbours)
        centre = model.normalization.points_to_model(camera_centre[None])
        out["z_accel_loss"] = w.w_z_accel * L.z_accel_loss(neighbours, centre)
    dynamic = model.gauss_params["is_dynamic"].detach() > 0.5
    scales = model.gauss_params["scales"]
    out["scale_var_loss"] = w.w_scale_var * sum(L.scale_variance(scales[m]) for m in (dynamic, ~dynamic) if m.any())
    return out
