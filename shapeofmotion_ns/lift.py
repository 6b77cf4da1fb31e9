"""Lift 2D tracks to 3D with the depth prior and the cameras (reference:
iPhoneDataset.get_tracks_3d).

For sampled query points of every training frame, the track into every other training frame is
unprojected at the prior depth there. TAPIR's logits give visibility and confidence (Shape of
Motion's reading: visible = (1 − σ(occ))·(1 − σ(dist)) > 0.5, confidence = 1 − σ(dist)); a
point only counts as visible where it lands inside the motion mask, on valid pixels with a
known depth. Tracks visible in too few frames are dropped.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, fields
from typing import List, Optional, Tuple

import torch
from rich.progress import Progress
from torch import Tensor

from shapeofmotion_ns.frames import TrainingFrames
from shapeofmotion_ns.geometry import sample_image, unproject
from splat4d.geometry import apply_transform
from splat4d.quantile import safe_quantile


class PriorWarning(UserWarning):
    """A training frame's priors gave nothing usable and were skipped."""


@dataclass
class Tracks3D:
    """3D foreground tracks over all time steps (T = the number of time steps)."""

    xyz: Tensor  # [P, T, 3] world positions (0 where not observed)
    visible: Tensor  # [P, T] bool
    invisible: Tensor  # [P, T] bool, confidently occluded
    confidence: Tensor  # [P, T]
    colors: Tensor  # [P, 3] in [0, 1], from the query frame
    ids: Optional[Tensor] = None  # [P, 2] int64: query training frame, point index in its track files

    def __len__(self) -> int:
        return self.xyz.shape[0]

    def select(self, keep: Tensor) -> "Tracks3D":
        return Tracks3D(*(None if (v := getattr(self, f.name)) is None else v[keep] for f in fields(self)))

    def to(self, device: str) -> "Tracks3D":
        return Tracks3D(*(None if (v := getattr(self, f.name)) is None else v.to(device) for f in fields(self)))


def samples_per_query(total: int, num_queries: int) -> List[int]:
    """⌊total / F⌋ per query frame, the remainder to the last one (as the reference)."""
    each = total // num_queries
    return [each] * (num_queries - 1) + [total - each * (num_queries - 1)]


def lift_tracks(
    frames: TrainingFrames, num_samples: int, generator: torch.Generator, progress: Optional[Progress] = None
) -> Tracks3D:
    """About ``num_samples`` 3D tracks of the motion-masked query points of all training frames."""
    num_frames = len(frames)
    usable, depths = usable_depths(frames)
    task = progress.add_task("lifting 2D tracks", total=num_frames) if progress is not None else None
    lifted: List[Tracks3D] = []
    for q, count in enumerate(samples_per_query(num_samples, num_frames)):
        tracks = lift_query(frames, q, count, usable, depths, generator)
        if tracks is None and usable[q].any():
            warnings.warn(
                f"frame {frames.names[q]}: none of its query points is visible with a valid depth inside "
                f"the motion mask; its tracks are skipped",
                PriorWarning,
                stacklevel=2,
            )
        elif tracks is not None:
            lifted.append(tracks)
        if progress is not None:
            progress.advance(task)
    if not lifted:
        raise ValueError(
            f"no usable 2D tracks in any training frame ({', '.join(frames.names)}): check the motion "
            f"masks, the depth maps (0/NaN = unknown) and the track files"
        )

    def cat(name):
        return None if any(getattr(t, name) is None for t in lifted) else torch.cat([getattr(t, name) for t in lifted])

    return Tracks3D(*(cat(f.name) for f in fields(Tracks3D)))


def usable_depths(frames: TrainingFrames) -> Tuple[List[Tensor], List[Tensor]]:
    """Per training frame: where a track point can be visible (float [H, W]: inside the motion
    mask, valid, known depth) and the depth map with non-finite values set to 0 (unknown)."""
    usable, depths = [], []
    for f in range(len(frames)):
        data = frames.load(f)
        depth = torch.nan_to_num(data.depth.float(), nan=0.0, posinf=0.0, neginf=0.0)
        usable.append(((data.motion_mask > 0.5) & data.valid & (depth > 0)).float())
        depths.append(depth)
        if not usable[-1].any():
            reason = "a valid depth" if not (depth > 0).any() else "a known depth inside the motion mask"
            warnings.warn(
                f"frame {frames.names[f]}: no pixel has {reason}; no track point is visible in it",
                PriorWarning,
                stacklevel=3,
            )
    return usable, depths


def lift_query(
    frames: TrainingFrames, q: int, count: int, usable: List[Tensor], depths: List[Tensor], generator: torch.Generator
) -> Optional[Tracks3D]:
    """Tracks of ``count`` random query points of frame q, None when none is usable."""
    num_points = frames.tracks.num_points[q]
    if num_points == 0 or count == 0:
        return None
    tracks = lift_points(frames, q, torch.randperm(num_points, generator=generator)[:count], usable, depths)
    counts = tracks.visible.sum(dim=1)
    if not counts.any():
        return None
    # keep tracks visible in at least 5% of the frames (or the 10% quantile of the counts when lower)
    keep = counts >= min(int(0.05 * len(frames)), float(safe_quantile(counts.float(), 0.1)))
    return tracks.select(keep & (counts > 0))


def lift_points(frames: TrainingFrames, q: int, chosen: Tensor, usable: List[Tensor], depths: List[Tensor]) -> Tracks3D:
    """Tracks of query frame q's points ``chosen`` (indices into its track files), all kept;
    ``usable`` and ``depths`` from usable_depths."""
    num_frames, steps = len(frames), frames.num_time_steps
    xyz = torch.zeros(len(chosen), steps, 3)
    visible = torch.zeros(len(chosen), steps, dtype=torch.bool)
    invisible = torch.zeros_like(visible)
    confidence = torch.zeros(len(chosen), steps)
    c2w = torch.linalg.inv(frames.w2c.double()).float()
    for t in range(num_frames):
        pair = frames.tracks.load(q, t)
        xy = pair.xy[chosen] * frames.track_scale
        in_mask = sample_image(usable[t][..., None], xy, padding_mode="zeros")[:, 0] > 1 - 1e-6
        depth = sample_image(depths[t][..., None], xy)[:, 0]
        step = int(frames.time_ids[t])
        xyz[:, step] = apply_transform(c2w[t], unproject(xy, depth, frames.K[t].float()))
        visible[:, step] = pair.visible[chosen] & in_mask
        invisible[:, step] = pair.invisible[chosen] & in_mask
        confidence[:, step] = pair.confidence[chosen] * in_mask.float()
        if t == q:
            query_xy = xy
    colors = sample_image(frames.load(q).image.float(), query_xy)
    ids = torch.stack([torch.full_like(chosen, q), chosen], dim=-1).long()
    return Tracks3D(xyz, visible, invisible, confidence, colors.clamp(0, 1), ids)
