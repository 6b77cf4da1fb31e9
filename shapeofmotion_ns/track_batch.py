"""What one training step needs for the track losses: target frames of the rendered (query)
frame and the 2D tracks of the query frame's points into them.

The renderer only needs :class:`TrackTargets` (where to move the Gaussians and into which
cameras' coordinates); the losses read the rest of :class:`TrackBatch`.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Callable

import torch
from torch import Tensor

from shapeofmotion_ns.frames import TrackSource
from shapeofmotion_ns.geometry import sample_image


@dataclass
class TrackTargets:
    """K target times and the cameras whose coordinates the target positions are rendered in."""

    times: Tensor  # [K] the dataparser's normalized times
    viewmats: Tensor  # [K, 4, 4] OpenCV world→camera

    def to(self, device: torch.device | str) -> "TrackTargets":
        return TrackTargets(self.times.to(device), self.viewmats.to(device))


@dataclass
class TrackBatch:
    """The query frame's P track points and where the tracks put them in K target frames."""

    targets: TrackTargets
    query_xy: Tensor  # [P, 2] pixels of the query image
    Ks: Tensor  # [K, 3, 3] target intrinsics
    xy: Tensor  # [K, P, 2] pixels in the target images
    visible: Tensor  # [K, P] bool
    confidence: Tensor  # [K, P]
    depth: Tensor  # [K, P] prior z-depth at xy (world units, 0 unknown)

    def to(self, device: torch.device | str) -> "TrackBatch":
        return TrackBatch(**{f.name: getattr(self, f.name).to(device) for f in fields(self)})


def known_depth_at(depth: Tensor, xy: Tensor) -> Tensor:
    """Bilinear depth [P] of a depth map [H, W] at pixels xy [P, 2]; 0 unless all four
    neighbours are known (> 0, finite)."""
    depth = torch.nan_to_num(depth.float(), nan=0.0, posinf=0.0, neginf=0.0)
    known = sample_image((depth > 0).float()[..., None], xy, padding_mode="zeros")[:, 0] > 1 - 1e-6
    return torch.where(known, sample_image(depth[..., None], xy)[:, 0], torch.zeros_like(xy[:, 0]))


def load_track_batch(
    tracks: TrackSource,
    query: int,
    targets: Tensor,
    times: Tensor,
    viewmats: Tensor,
    Ks: Tensor,
    depth_of: Callable[[int], Tensor],
    pixel_scale: float,
) -> TrackBatch:
    """Tracks of frame ``query`` into the ``targets`` [K] (training image indices). times [F],
    viewmats [F, 4, 4] and Ks [F, 3, 3] describe all training frames; depth_of(i) gives frame i's
    depth map [H, W]; pixel_scale converts track pixels to image pixels."""
    pairs = [tracks.load(query, int(t)) for t in targets]
    xy = torch.stack([p.xy for p in pairs]) * pixel_scale
    depth = torch.stack([known_depth_at(depth_of(int(t)), xy[k]) for k, t in enumerate(targets)])
    return TrackBatch(
        targets=TrackTargets(times[targets].float(), viewmats[targets].float()),
        query_xy=tracks.load(query, query).xy * pixel_scale,
        Ks=Ks[targets].float(),
        xy=xy,
        visible=torch.stack([p.visible for p in pairs]),
        confidence=torch.stack([p.confidence for p in pairs]),
        depth=depth,
    )
