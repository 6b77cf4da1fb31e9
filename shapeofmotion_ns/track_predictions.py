"""A trained Shape of Motion model's predictions for the tracking metrics (reference:
Validator.validate_keypoints and evaluate_iphone.py).

For each annotated frame i, frame i's camera renders, at frame i's time, the Gaussians' positions
at every annotated frame j in camera j's coordinates; sampling that at frame i's annotated pixels
gives where those points are at frame j. Their pixels in camera j follow by projection, and they
are predicted visible when camera j's rendered depth at that pixel is within 5 cm of theirs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from nerfstudio.cameras.cameras import Cameras
from nerfstudio.models.splatfacto import get_viewmat
from torch import Tensor

from shapeofmotion_ns.geometry import sample_image
from shapeofmotion_ns.model import ShapeOfMotionModel
from shapeofmotion_ns.track_batch import TrackTargets
from shapeofmotion_ns.track_metrics import VISIBILITY_DEPTH_TOLERANCE, TrackPredictions, visible_by_depth
from splat4d.geometry import apply_transform, camera_centres, project


@dataclass
class RenderedTracks:
    """What :func:`render_tracks` renders for the K annotated frames: where frame i's points are at
    frame j, and the two depths of the visibility test."""

    points_3d: Tensor  # [K, K, N, 3] world
    pixels: Tensor  # [K, K, N, 2] in camera j
    point_depths: Tensor  # [K, K, N] the points' depths in camera j
    rendered_depths: Tensor  # [K, K, N] camera j's rendered depth at those pixels
    camera_centres: Tensor  # [K, 3] world

    def predictions(
        self, metres_per_unit: float, visibility_tolerance: float = VISIBILITY_DEPTH_TOLERANCE
    ) -> TrackPredictions:
        """Visible where the depths agree within ``visibility_tolerance`` metres (the reference's 5 cm;
        others for diagnostics)."""
        visible = visible_by_depth(self.rendered_depths, self.point_depths, metres_per_unit, visibility_tolerance)
        return TrackPredictions(self.points_3d, self.pixels, visible, self.camera_centres)


@torch.no_grad()
def render_tracks(
    model: ShapeOfMotionModel, cameras: Cameras, frames: torch.Tensor, points_2d: torch.Tensor
) -> RenderedTracks:
    """frames [K] training image indices of ``cameras``; points_2d [K, N, 2] their annotated pixels."""
    model.eval()
    device = model.device
    cams = cameras[frames].to(device)
    w2c = get_viewmat(cams.camera_to_worlds)
    Ks = cams.get_intrinsics_matrices()
    targets = TrackTargets(cams.times.flatten(), w2c)
    K, N = points_2d.shape[:2]
    points_3d = torch.zeros(K, K, N, 3, device=device)
    depths = []
    for i in range(K):
        camera = cams[i : i + 1]
        camera.metadata = {"track_targets": targets}
        outputs = model.get_outputs(camera)
        depths.append(outputs["depth"][..., 0])
        in_targets = model.track_points(outputs, points_2d[i].to(device))  # [K, N, 3] in cameras j
        points_3d[i] = apply_transform(torch.linalg.inv(w2c)[:, None], in_targets)
    pixels, z = project(apply_transform(w2c[None, :, None], points_3d), Ks[None, :, None])  # [K, K, N]
    rendered = torch.stack(
        [
            torch.stack(
                [sample_image(depths[j][..., None], pixels[i, j], padding_mode="zeros")[:, 0] for j in range(K)]
            )
            for i in range(K)
        ]
    )
    return RenderedTracks(points_3d.cpu(), pixels.cpu(), z.cpu(), rendered.cpu(), camera_centres(w2c).cpu())


def predict_tracks(
    model: ShapeOfMotionModel, cameras: Cameras, frames: torch.Tensor, points_2d: torch.Tensor, metres_per_unit: float
) -> TrackPredictions:
    """:func:`render_tracks`' predictions with the reference's visibility test."""
    return render_tracks(model, cameras, frames, points_2d).predictions(metres_per_unit)
