"""How concentrated the motion-basis weights of Shape of Motion's dynamic Gaussians are, per
ground-truth object of a synthetic scene (tracks_3d.npz ``object_id``), at three stages:

- clustering: the clusters of the initialization's 3D tracks (init_motion.py step 1, by velocity
  k-means or rigidity as ``--cluster-by``) and the distance-based logits 10·exp(−‖μ − centre_b‖)
  of step 3 (recomputed from the scene);
- init: the cached initialization after its fit to the tracks (the logits the training starts from);
- trained: a trained run's ``motion_coefs`` (``--load-config``); each dynamic Gaussian gets the
  object of the ground-truth track nearest to it on average over 5 evenly spaced time steps.
Dynamic Gaussians of the initialization get the object of their own track (their lifted 2D track
is a ground-truth query point). Per object: Gaussians, mean max softmax weight, share with max
weight > 0.9, mean entropy (nats; log B is uniform) and the bases holding most of its weight mass.

    python benchmarks/shapeofmotion_basis_weights.py --scene /tmp/som/scene [--load-config .../config.yml]
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional

import numpy as np
import torch
import tyro
from torch import Tensor

from benchmarks.shapeofmotion_synthetic import Benchmark
from dataparsers.iphone.dataparser import IPhoneDataParserConfig
from dataparsers.iphone.dataset import IPhoneDataset
from dataparsers.iphone.layout import IPhoneLayout
from shapeofmotion_ns.eval_tracks import load_trained
from shapeofmotion_ns.init import cached_initialize_scene
from shapeofmotion_ns.init_motion import initial_motion, solve_se3
from shapeofmotion_ns.iphone_frames import training_frames
from shapeofmotion_ns.lift import lift_tracks
from shapeofmotion_ns.motion import bases_at, blend, canonical_frame, move_means, rotation_6d_to_matrix
from shapeofmotion_ns.normalization import SceneNormalization
from shapeofmotion_ns.track_clusters import cluster_tracks, fill_missing
from splat4d.geometry import apply_transform
from splat4d.quantile import safe_quantile

OBJECT_NAMES = {-1: "static in mask", 0: "upper arm", 1: "forearm", 2: "hand", 3: "ball"}


def weight_stats(logits: Tensor, objects: Tensor) -> Dict[str, Dict]:
    """Per object (and all): statistics of softmax(logits) [G, B] (module docstring)."""
    coefs = torch.softmax(logits.float(), dim=-1)
    top = coefs.max(dim=-1).values
    entropy = -(coefs * coefs.clamp(min=1e-12).log()).sum(dim=-1)
    out: Dict[str, Dict] = {}
    groups = {"all": torch.ones_like(objects, dtype=torch.bool)}
    groups.update({OBJECT_NAMES.get(int(k), f"object {int(k)}"): objects == k for k in objects.unique()})
    for name, members in groups.items():
        if not members.any():
            continue
        mass = coefs[members].sum(dim=0)
        share = mass / mass.sum()
        order = share.argsort(descending=True)[:4]
        out[name] = {
            "gaussians": int(members.sum()),
            "max_weight": round(float(top[members].mean()), 3),
            "share_max_over_0.9": round(float((top[members] > 0.9).float().mean()), 3),
            "entropy": round(float(entropy[members].mean()), 3),
            "top_bases": {int(b): round(float(share[b]), 3) for b in order},
        }
    out["log B"] = round(float(np.log(coefs.shape[1])), 3)
    return out


def angles_deg(R: Tensor) -> Tensor:
    """Rotation angles (degrees) of rotation matrices [..., 3, 3]."""
    cos = ((R.diagonal(dim1=-2, dim2=-1).sum(-1) - 1) / 2).clamp(-1, 1)
    return torch.rad2deg(torch.arccos(cos))


def rigid_fit(points: Tensor, reference: int) -> Dict[str, list]:
    """Per time step the least-squares rigid motion taking points [P, T, 3] at ``reference`` to
    each step: its rotation angle (degrees) and the RMS residual (non-rigidity, input units)."""
    angles, residuals = [], []
    src = points[:, reference]
    for t in range(points.shape[1]):
        R, tr = solve_se3(src, points[:, t], torch.ones(len(src)))
        angles.append(float(angles_deg(R)))
        residuals.append(float((src @ R.T + tr - points[:, t]).norm(dim=-1).pow(2).mean().sqrt()))
    return {"angle_deg": angles, "rms": residuals}


def single_basis_offsets(logits: Tensor, rots: Tensor, transls: Tensor, means: Tensor, to_metres: float) -> Dict:
    """For Gaussians with coefficient logits [G, B] and canonical means [G, 3] (normalized frame):
    per basis, the mean distance (m) over all time steps between moving them by that basis alone
    and by their blend. Bases that all describe the same rigid motion give about 0 for each."""
    frames = torch.arange(rots.shape[1])
    bases = bases_at(rots, transls, frames)
    blended = move_means(means, *blend(logits, *bases))
    out = {}
    for b in range(len(rots)):
        one_hot = torch.full_like(logits, -1e4)
        one_hot[:, b] = 0.0
        alone = move_means(means, *blend(one_hot, *bases))
        out[b] = round(float((alone - blended).norm(dim=-1).mean()) * to_metres, 3)
    return out


def every(values: list, steps: list) -> list:
    return [round(values[t], 3) for t in steps]


@dataclass
class BasisWeights:
    scene: Path
    """The benchmark's scene folder (benchmarks/shapeofmotion_synthetic.py ``out_dir/scene``)."""
    load_config: Optional[Path] = None
    """config.yml of a trained run on that scene (adds the "trained" stage)."""
    factor: int = 2
    """Training resolution of the benchmark (rgb/<factor>x)."""
    num_bases: int = 10
    """The benchmark's ``num_bases`` (its initialization's settings key the cache)."""
    coef_init: str = "distance"
    """The benchmark's ``coef_init``."""
    cluster_by: str = "velocity"
    """The benchmark's ``cluster_by``."""

    def main(self) -> Dict[str, Dict]:
        outputs = IPhoneDataParserConfig(data=self.scene, factor=self.factor).setup().get_dataparser_outputs("train")
        dataset = IPhoneDataset(outputs)
        frames = training_frames(dataset)
        metric = float(dataset.metadata["metric_scale"])  # metres per nerfstudio unit
        init_config = Benchmark(
            num_bases=self.num_bases, coef_init=self.coef_init, cluster_by=self.cluster_by
        ).init_config()
        gt = np.load(IPhoneLayout(self.scene).ground_truth_dir / "tracks_3d.npz")
        object_id = torch.from_numpy(gt["object_id"]).long()
        offsets = torch.tensor([0, *frames.tracks.num_points]).cumsum(0)
        result: Dict[str, Dict] = {}

        # clustering stage: the initialization's steps 1-3 again (same seed, same tracks)
        tracks = lift_tracks(frames, init_config.num_dynamic, torch.Generator().manual_seed(init_config.seed))
        norm = SceneNormalization.from_tracks(tracks.xyz[tracks.visible], frames.w2c.float())
        tracks.xyz = fill_missing(norm.points_to_model(tracks.xyz), tracks.visible)
        canonical = canonical_frame(tracks.visible)
        cano = tracks.xyz[:, canonical]
        dist = (cano - cano.median(dim=0).values).norm(dim=-1)
        tracks = tracks.select(dist < safe_quantile(dist, 0.95))
        objects = object_id[offsets[tracks.ids[:, 0]] + tracks.ids[:, 1]]
        labels = cluster_tracks(
            init_config.cluster_by, tracks.xyz, tracks.visible, init_config.num_bases, init_config.seed
        )
        result["clusters (tracks per object)"] = {
            OBJECT_NAMES.get(int(k), str(int(k))): {
                int(c): int(n) for c, n in zip(*labels[objects == k].unique(return_counts=True))
            }
            for k in objects.unique()
        }
        motion = initial_motion(
            tracks,
            canonical,
            init_config.num_bases,
            init_config.min_cluster_points,
            init_config.min_procrustes_weight,
            init_config.seed,
            init_config.coef_init,
            init_config.cluster_by,
        )
        result["clustering logits"] = weight_stats(motion.coef_logits, objects)
        T = tracks.xyz.shape[1]
        ball = objects == 3
        result["clustering: ball Gaussians moved by one basis alone vs the blend (m)"] = single_basis_offsets(
            motion.coef_logits[ball], motion.rots, motion.transls, motion.means[ball], metric * norm.scale
        )
        shown = sorted({0, T // 4, T // 2, 3 * T // 4, T - 1, canonical})
        ball_truth = torch.from_numpy(gt["positions"]).float()[object_id == 3]
        result["ball ground truth (rigid fit to the canonical step)"] = {
            k: every(v, shown) for k, v in rigid_fit(ball_truth, canonical).items()
        }
        result["shown time steps"] = {"steps": shown, "canonical": canonical}
        result["clustering basis angles (deg)"] = {
            b: every(angles_deg(rotation_6d_to_matrix(motion.rots[b])).tolist(), shown) for b in range(len(motion.rots))
        }

        device = "cuda" if torch.cuda.is_available() else "cpu"
        init = cached_initialize_scene(frames, init_config, self.scene, device)
        num_dyn = len(init.track_ids)
        if not torch.equal(init.track_ids, tracks.ids):
            print("warning: the recomputed tracks are not the cached initialization's")
        init_objects = object_id[offsets[init.track_ids[:, 0]] + init.track_ids[:, 1]]
        result["init (after the fit)"] = weight_stats(init.coef_logits[:num_dyn], init_objects)
        result["init basis angles (deg)"] = {
            b: every(angles_deg(rotation_6d_to_matrix(init.rots[b])).tolist(), shown) for b in range(len(init.rots))
        }
        self.shown, self.canonical = shown, canonical
        ball = init_objects == 3
        result["init: ball Gaussians moved by one basis alone vs the blend (m)"] = single_basis_offsets(
            init.coef_logits[:num_dyn][ball],
            init.rots,
            init.transls,
            init.means[:num_dyn][ball],
            metric * float(init.normalization.scale),
        )
        R, t = blend(init.coef_logits[:num_dyn], *bases_at(init.rots, init.transls, torch.arange(T)))
        moved = init.normalization.points_to_world(move_means(init.means[:num_dyn], R, t))  # [G, T, 3] ns world
        fit = rigid_fit(moved[init_objects == 3] * metric, canonical)
        result["init: ball Gaussians' rigid fit (m)"] = {k: every(v, shown) for k, v in fit.items()}

        if self.load_config is not None:
            result["trained"] = self.trained_stats(outputs, gt, object_id, metric)
        print(json.dumps(result, indent=1))
        return result

    def trained_stats(self, outputs, gt, object_id: Tensor, metric: float) -> Dict:
        _, pipeline = load_trained(self.load_config)
        model = pipeline.model
        ids = model.dynamic_ids
        steps = torch.from_numpy(np.linspace(0, model.num_time_steps - 1, 5).round()).long()
        with torch.no_grad():
            moved = model.positions_at(steps.float().to(model.device))[ids].cpu()  # [G, 5, 3] nerfstudio world
        to_ns = torch.eye(4)
        to_ns[:3] = outputs.dataparser_transform * outputs.dataparser_scale
        truth = apply_transform(to_ns, torch.from_numpy(gt["positions"]).float()[:, steps])  # [P, 5, 3]
        dist = sum(torch.cdist(moved[:, k], truth[:, k]) for k in range(len(steps)))  # [G, P]
        nearest = dist.argmin(dim=1)
        stats: Dict = {}
        if model.uses_bases:
            stats = weight_stats(model.gauss_params["motion_coefs"][ids].detach().cpu(), object_id[nearest])
        stats["mean distance to the nearest track (m)"] = round(float(dist.min(dim=1).values.mean() / 5) * metric, 4)
        ball = ids[object_id[nearest] == 3]
        with torch.no_grad():
            path = model.positions_at(torch.arange(model.num_time_steps, device=model.device).float())[ball].cpu()
        fit = rigid_fit(path * metric, self.canonical)
        if model.uses_bases:
            with torch.no_grad():
                stats["ball Gaussians moved by one basis alone vs the blend (m)"] = single_basis_offsets(
                    model.gauss_params["motion_coefs"][ball].cpu(),
                    model.motion_bases["rots"].cpu(),
                    model.motion_bases["transls"].cpu(),
                    model.means[ball].detach().cpu(),
                    metric * float(model.norm_scale),
                )
        stats["ball Gaussians' rigid fit (m)"] = {k: every(v, self.shown) for k, v in fit.items()}
        truth_path = apply_transform(to_ns, torch.from_numpy(gt["positions"]).float()[object_id == 3])
        stats["ball ground truth (m)"] = {
            k: every(v, self.shown) for k, v in rigid_fit(truth_path * metric, self.canonical).items()
        }
        return stats


if __name__ == "__main__":
    tyro.cli(BasisWeights).main()
