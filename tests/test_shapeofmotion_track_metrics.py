"""Tracking metrics (EPE, δ3D, AJ, ⟨δ_avg⟩, occlusion accuracy) on hand-made annotations."""

import pytest
import torch

from shapeofmotion_ns.motion import rotation_6d_to_matrix
from shapeofmotion_ns.track_metrics import (
    TrackAnnotations,
    TrackPredictions,
    align_to_metric,
    similarity_alignment,
    tracking_2d_metrics,
    tracking_3d_metrics,
    visible_by_depth,
)

K, N = 3, 4


def annotations() -> TrackAnnotations:
    g = torch.Generator().manual_seed(0)
    points_3d = torch.randn(K, N, 3, generator=g)
    return TrackAnnotations(
        points_2d=100 * torch.rand(K, N, 2, generator=g),
        visible=torch.ones(K, N, dtype=torch.bool),
        points_3d=points_3d,
        valid_3d=torch.ones(K, N, dtype=torch.bool),
        camera_centres=torch.tensor([[0.0, 0, 0], [1.0, 0, 0], [0.0, 2.0, 0.5]]),
    )


def perfect(ann: TrackAnnotations) -> TrackPredictions:
    return TrackPredictions(
        points_3d=ann.points_3d[None].expand(K, -1, -1, -1).clone(),
        points_2d=ann.points_2d[None].expand(K, -1, -1, -1).clone(),
        visible=ann.visible[None].expand(K, -1, -1).clone(),
        camera_centres=ann.camera_centres.clone(),
    )


def test_similarity_alignment_recovers_scale_rotation_translation():
    g = torch.Generator().manual_seed(1)
    src = torch.randn(6, 3, generator=g, dtype=torch.float64)
    R = rotation_6d_to_matrix(torch.randn(6, generator=g, dtype=torch.float64))
    t = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    dst = 2.5 * (src @ R.T + t)
    s, R_fit, t_fit = similarity_alignment(src, dst)
    assert s == pytest.approx(2.5) and torch.allclose(R_fit, R) and torch.allclose(t_fit, t)


def test_perfect_predictions_in_another_similar_world_score_perfectly():
    ann = annotations()
    pred = perfect(ann)
    R = rotation_6d_to_matrix(torch.tensor([0.3, 1.0, 0.2, -1.0, 0.5, 0.4]))
    to_pred = lambda x: 0.5 * x @ R.T + torch.tensor([3.0, 0.0, -1.0])  # noqa: E731  a different world
    pred.points_3d, pred.camera_centres = to_pred(pred.points_3d), to_pred(pred.camera_centres)
    aligned, scale = align_to_metric(pred, ann)
    assert scale == pytest.approx(2.0)
    m3 = tracking_3d_metrics(aligned, ann)
    assert m3["epe"] == pytest.approx(0.0, abs=1e-5) and m3["delta_3d_5cm"] == 1.0 and m3["delta_3d_10cm"] == 1.0
    assert tracking_2d_metrics(pred, ann) == {"aj": 1.0, "delta_avg": 1.0, "occlusion_accuracy": 1.0}


def test_3d_metrics_average_over_pairs_of_covisible_points():
    ann = annotations()
    ann.valid_3d[2] = False  # frame 2 has no depth: only pairs among frames 0 and 1 count
    points = ann.points_3d[None].expand(K, -1, -1, -1).clone()
    points[0, 1] += torch.tensor([0.07, 0.0, 0.0])  # 7 cm off for pair (0, 1), exact for (0,0), (1,0), (1,1)
    points[1, 0, :2] += torch.tensor([0.0, 0.0, 0.2])  # half of pair (1, 0) 20 cm off
    m = tracking_3d_metrics(points, ann)
    assert m["epe"] == pytest.approx((0.07 + 0.1) / 4)
    assert m["delta_3d_5cm"] == pytest.approx((1 + 0 + 0.5 + 1) / 4)
    assert m["delta_3d_10cm"] == pytest.approx((1 + 1 + 0.5 + 1) / 4)


def test_2d_metrics_by_threshold_and_occlusion():
    ann = annotations()
    pred = perfect(ann)
    pred.points_2d += torch.tensor([10.0, 0.0])  # within 16, 32, 64 px only
    m = tracking_2d_metrics(pred, ann)
    assert m["delta_avg"] == pytest.approx(3 / 5) and m["aj"] == pytest.approx(3 / 5)
    assert m["occlusion_accuracy"] == 1.0

    ann.visible[1, 0] = False  # point 0 is occluded in frame 1 ...
    pred = perfect(ann)
    pred.visible[0, 1, 0] = True  # ... but predicted visible when tracked from frame 0
    m = tracking_2d_metrics(pred, ann)
    # evaluated: pairs i ≠ j with the point visible in i: 6 pairs × 4 points − 2 (point 0 from frame 1)
    assert m["occlusion_accuracy"] == pytest.approx(21 / 22)
    # visible targets: 22 − 2 (point 0 into frame 1, from frames 0 and 2); one false positive
    assert m["aj"] == pytest.approx(20 / 21) and m["delta_avg"] == 1.0


def test_visibility_from_rendered_depth():
    rendered = torch.tensor([2.0, 2.0, 2.0])
    depth = torch.tensor([2.01, 2.2, 1.99])
    assert visible_by_depth(rendered, depth, metres_per_unit=1.0).tolist() == [True, False, True]
    assert visible_by_depth(rendered, depth, metres_per_unit=10.0).tolist() == [False, False, False]
