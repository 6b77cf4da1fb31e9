"""Where a trained Shape of Motion run's 3D EPE comes from, on a synthetic scene: the EPE of
shapeofmotion-eval-tracks (ground-truth tracks, same frames, pairs and alignment) split by pair
(i = j: frame i's own points read out at frame i, i.e. the rendered surface; i ≠ j: after motion)
and by the ground-truth object of each track (tracks_3d.npz ``object_id``; −1: static points
inside the degraded motion mask), with each object's EPE and δ3D over all pairs as the benchmark's
table computes them; and the 2D metrics (AJ, ⟨δ_avg⟩, occlusion accuracy) with the
predicted visibility (the rendered-depth test, as the benchmark) beside the same with the true
visibility, which separates the visibility test's share of the AJ from the 2D positions', and
with the depth test at looser tolerances than the reference's 5 cm. Each object's error
p_ij − g_j (frame i's point predicted at frame j minus the truth) is also split into the readout
p_jj − g_j (the rendered surface of frame j at that point's pixel: per-frame geometry) and the
correspondence p_ij − p_jj (where the motion takes frame i's point, against where frame j's own
render puts it), each along camera j's ray (depth) and across it; and the readout's per-frame
depth offset (each frame's mean signed error along the rays) against the lifted prior's, which
measures how far the rendered surface follows the depth prior's per-frame errors.

    python benchmarks/shapeofmotion_epe_split.py --load-config outputs/.../config.yml
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional, Tuple

import numpy as np
import torch
import tyro
from shapeofmotion_prior_rows import lifted_prior_predictions  # a sibling: benchmarks/ is sys.path[0]

from dataparsers.iphone.layout import IPhoneLayout
from shapeofmotion_ns.eval_tracks import EvalTracks, camera_centres_ns, load_trained, pixels_to_1x, score_tracks
from shapeofmotion_ns.track_metrics import align_to_metric, similarity_alignment, tracking_3d_metrics
from shapeofmotion_ns.track_predictions import render_tracks


@dataclass
class EpeSplit:
    load_config: Path
    """config.yml of the trained run (a synthetic scene with ground_truth/tracks_3d.npz)."""
    max_frames: int = 12
    """Annotated frames, as shapeofmotion-eval-tracks' ``max_frames``."""
    visibility_tolerances: Tuple[float, ...] = (0.1, 0.2)
    """Also the 2D metrics with the depth test at these tolerances (metres; the reference's is 0.05)."""
    compare_prior: bool = True
    """Also each object's per-frame depth offset against the lifted prior's (the depth prior at the
    tracks' pixels): how far the rendered surface follows the depth prior's per-frame errors."""

    def main(self) -> Dict[str, Optional[float]]:
        _, pipeline = load_trained(self.load_config)
        datamanager, dataset = pipeline.datamanager, pipeline.datamanager.train_dataset
        evaluator = EvalTracks(self.load_config, ground_truth="tracks", max_frames=self.max_frames)
        annotated = evaluator.annotations(datamanager, dataset, dataset.metadata["metric_scale"])
        ann = annotated.annotations
        scale, _, _ = similarity_alignment(camera_centres_ns(dataset.cameras, annotated.frames), ann.camera_centres)
        rendered = render_tracks(pipeline.model, dataset.cameras, annotated.frames, ann.points_2d)
        predictions = rendered.predictions(scale)
        aligned, _ = align_to_metric(predictions, ann)
        tracks = IPhoneLayout(datamanager.config.dataparser.data).ground_truth_dir / "tracks_3d.npz"
        object_id = torch.from_numpy(np.load(tracks)["object_id"])
        groups = {f"object {int(k)}": object_id == k for k in object_id.unique()}
        groups = {"all": torch.ones_like(object_id, dtype=torch.bool), **groups}
        out: Dict[str, Optional[float]] = {}
        for pairs, same in (("i = j", True), ("i != j", False)):
            for name, members in groups.items():
                out[f"{pairs}, {name}"] = pair_epe(aligned, ann.points_3d, ann.valid_3d & members, same)
        for name, members in groups.items():
            split = readout_and_correspondence(aligned, ann.points_3d, ann.valid_3d & members, ann.camera_centres)
            out.update({f"{name}, {key}": value for key, value in split.items()})
        if self.compare_prior:
            prior, prior_ann, _ = lifted_prior_predictions(
                datamanager.config.dataparser.data, self.max_frames, datamanager.config.dataparser.factor
            )
            if not torch.allclose(prior_ann.points_3d, ann.points_3d):
                raise ValueError("the lifted prior's annotated frames are not the evaluation's")
            prior_aligned, _ = align_to_metric(prior, prior_ann)
            for name, members in groups.items():
                offsets = depth_offsets(
                    aligned, prior_aligned, ann.points_3d, ann.valid_3d & members, ann.camera_centres
                )
                out.update({f"{name}, {key}": value for key, value in offsets.items()})
        for name, members in groups.items():  # the benchmark's metrics (all pairs) of each object
            metrics = tracking_3d_metrics(aligned, dataclasses.replace(ann, valid_3d=ann.valid_3d & members))
            out.update({f"all pairs, {name}, {key}": value for key, value in metrics.items()})
        to_1x = pixels_to_1x(dataset)
        visibilities = {
            "predicted visibility": predictions.visible,
            "true visibility": ann.visible[None].expand_as(predictions.visible),
            **{
                f"depth test at {tolerance * 100:g} cm": rendered.predictions(scale, tolerance).visible
                for tolerance in self.visibility_tolerances
            },
        }
        for label, visible in visibilities.items():
            metrics = score_tracks(dataclasses.replace(predictions, visible=visible), ann, to_1x)
            out.update({f"{key}, {label}": metrics[key] for key in ("aj", "delta_avg", "occlusion_accuracy")})
        print(json.dumps(out, indent=1))
        return out


def pair_epe(aligned: torch.Tensor, truth: torch.Tensor, valid: torch.Tensor, same: bool) -> Optional[float]:
    """Mean over pairs (i = j when ``same``, else i ≠ j) of the mean error of the points valid in both."""
    K = aligned.shape[0]
    errors = [
        (aligned[i, j][valid[i] & valid[j]] - truth[j][valid[i] & valid[j]]).norm(dim=-1).mean()
        for i in range(K)
        for j in range(K)
        if (i == j) == same and (valid[i] & valid[j]).any()
    ]
    return float(torch.stack(errors).mean()) if errors else None


def readout_and_correspondence(
    aligned: torch.Tensor, truth: torch.Tensor, valid: torch.Tensor, camera_centres: torch.Tensor
) -> Dict[str, float]:
    """Readout error |p_jj − g_j| and correspondence error |p_ij − p_jj| (i ≠ j) of the points
    ``valid`` marks, each split along camera j's ray (depth) and across it; means over every valid
    (frame, point) and (pair, point). The error vector p_ij − g_j is their sum."""
    K = aligned.shape[0]
    rays = view_rays(truth, camera_centres)
    own = readout(aligned)
    errors = {"readout": (own - truth)[None], "correspondence": aligned - own[None]}  # [·, K (j), N, 3]
    pairs = {
        "readout": valid[None],
        "correspondence": valid[:, None] & valid[None] & ~torch.eye(K, dtype=torch.bool)[..., None],
    }
    out: Dict[str, float] = {}
    for name, error in errors.items():
        members = pairs[name]
        if not members.any():
            continue
        along = (error * rays[None]).sum(-1)
        across = (error - along[..., None] * rays[None]).norm(dim=-1)
        out[name] = float(error.norm(dim=-1)[members].mean())
        out[f"{name} along the ray"] = float(along.abs()[members].mean())
        out[f"{name} along the ray (signed mean)"] = float(along[members].mean())
        out[f"{name} across the ray"] = float(across[members].mean())
    return out


def view_rays(truth: torch.Tensor, camera_centres: torch.Tensor) -> torch.Tensor:
    """Unit rays [K, N, 3] from camera j's centre [K, 3] to the true points [K, N, 3] of frame j."""
    return torch.nn.functional.normalize(truth - camera_centres[:, None], dim=-1)


def readout(aligned: torch.Tensor) -> torch.Tensor:
    """p_jj [K, N, 3]: each annotated frame's own points, read out at that frame."""
    K = aligned.shape[0]
    return aligned[torch.arange(K), torch.arange(K)]


def depth_offsets(
    aligned: torch.Tensor,
    prior_aligned: torch.Tensor,
    truth: torch.Tensor,
    valid: torch.Tensor,
    camera_centres: torch.Tensor,
) -> Dict[str, float]:
    """Per frame, the mean signed readout error along the rays (the frame's depth offset) of the
    points ``valid`` marks, for the model and the prior (frames with ≥ 3 points): the spread of
    each over the frames, their correlation, and the model's readout along the ray less its frame's
    offset (what is left when every frame's surface is shifted back by its offset)."""
    rays = view_rays(truth, camera_centres)
    along = {key: ((readout(a) - truth) * rays).sum(-1) for key, a in (("model", aligned), ("prior", prior_aligned))}
    frames = valid.sum(1) >= 3
    if frames.sum() < 2:
        return {}
    offsets = {key: (a * valid).sum(1)[frames] / valid.sum(1)[frames] for key, a in along.items()}
    left = (along["model"][frames] - offsets["model"][:, None]).abs()[valid[frames]]
    return {
        "per-frame depth offset std, model": float(offsets["model"].std()),
        "per-frame depth offset std, prior": float(offsets["prior"].std()),
        "per-frame depth offset correlation, model vs prior": float(
            torch.corrcoef(torch.stack(list(offsets.values())))[0, 1]
        ),
        "readout along the ray less the frame's offset": float(left.mean()),
    }


if __name__ == "__main__":
    tyro.cli(EpeSplit).main()
