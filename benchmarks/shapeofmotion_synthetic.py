"""Shape of Motion on a synthetic monocular scene with noisy priors: the lifted 2D-track prior,
the initialization, the trained model and two ablations of the paper's Table 4, on the same
long-range tracking metrics (against the exact 3D tracks) and the validation cameras' mPSNR.

    python benchmarks/shapeofmotion_synthetic.py                       # ~10-15 min on 2 CPU cores
    python benchmarks/shapeofmotion_synthetic.py --steps 300 --output-json som.json --output-md som.md

Rows (all trained ones with ``--steps`` steps and the same initialization, cached in the scene):
- prior: every ground-truth track's 2D track lifted at the depth prior (lift.py), unobserved
  frames interpolated as the initialization does; 2D from projecting it;
- init: the initialization after one training step, read out like the trained rows (rendered
  position maps at the annotated pixels, as the reference's validator);
- init trajectories: the initialization's dynamic Gaussians themselves, each scored on the
  ground-truth track whose lifted 2D track it was fitted to (the prior's association, no
  rendering; only the tracks the initialization kept), beside the prior on those same tracks;
- full: Shape of Motion;
- per-Gaussian translation: ``motion_model="per_gaussian_translation"``;
- no 2D-track loss: ``w_track = 0``.
The priors are degraded more than MonocularConfig's defaults (``--degradation.*``): per-frame
disparity scale / shift errors and pixel noise, track jitter and dropouts, mask errors.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import torch
import tyro

from dataparsers.iphone.dataparser import IPhoneDataParserConfig
from dataparsers.iphone.dataset import IPhoneDataset
from dataparsers.iphone.layout import IPhoneLayout
from dataparsers.synthetic.monocular import MonocularConfig, write_monocular_scene
from dataparsers.synthetic.monocular_priors import PriorDegradation
from shapeofmotion_ns.config import shapeofmotion
from shapeofmotion_ns.eval_tracks import EvalTracks, load_trained, pixels_to_1x, score_tracks
from shapeofmotion_ns.geometry import apply_transform, camera_centres, project
from shapeofmotion_ns.init import InitConfig, cached_initialize_scene
from shapeofmotion_ns.init_motion import fill_missing
from shapeofmotion_ns.iphone_frames import training_frames
from shapeofmotion_ns.lift import lift_points, usable_depths
from shapeofmotion_ns.track_annotations import AnnotatedFrames, from_ground_truth_tracks
from shapeofmotion_ns.motion import bases_at, blend, move_means
from shapeofmotion_ns.track_metrics import TrackAnnotations, TrackPredictions
from nerfstudio.models.splatfacto import get_viewmat
from splat4d.training import train_in_process

NOISY = PriorDegradation(disparity_scale_error=0.1, disparity_shift_error=0.05, disparity_noise=0.03,
                         track_jitter=1.0, track_dropout=0.15, mask_error=1)  # fmt: skip


@dataclass
class Benchmark:
    out_dir: Path = Path("outputs/shapeofmotion_synthetic")
    """Scene (reused when present) and training runs."""
    width: int = 96
    height: int = 72
    num_frames: int = 12
    steps: int = 2000
    """Training steps of every trained row."""
    num_dynamic: int = 2000
    num_static: int = 3000
    init_optim_steps: int = 1000
    """Steps of the initialization's fit of the motion bases."""
    max_eval_frames: int = 12
    """Annotated frames of the tracking metrics (all ordered pairs are evaluated)."""
    degradation: PriorDegradation = field(default_factory=lambda: dataclasses.replace(NOISY))
    output_json: Optional[Path] = None
    output_md: Optional[Path] = None

    def main(self) -> List[Dict]:
        if self.steps < 2:
            raise ValueError(f"--steps must be at least 2 (the init row trains 1), got {self.steps}")
        scene = self.out_dir / "scene"
        if not scene.exists():
            write_monocular_scene(scene, MonocularConfig(num_frames=self.num_frames, width=self.width,
                                                         height=self.height, degradation=self.degradation))  # fmt: skip
        rows = [timed("lifted 2D-track prior", lambda: prior_metrics(scene, self.max_eval_frames))]
        variants = [("initialization (1 step)", 1, {}), ("full", self.steps, {}),
                    ("per-Gaussian translation", self.steps, {"motion_model": "per_gaussian_translation"}),
                    ("no 2D-track loss", self.steps, {"w_track": 0.0})]  # fmt: skip
        for k, (name, steps, change) in enumerate(variants):
            rows.append(timed(name, lambda: self.trained_metrics(scene, self.out_dir / f"run{k}", steps, change)))
            if k == 0:  # the initialization is cached now
                rows[1:1] = init_trajectory_rows(scene, self.init_config(), self.max_eval_frames)
        table = markdown(rows, self.steps)
        print(table)
        if self.output_md is not None:
            self.output_md.write_text(table + "\n")
        if self.output_json is not None:
            self.output_json.write_text(json.dumps({"config": json.loads(json.dumps(dataclasses.asdict(self),
                                                                                    default=str)),
                                                    "rows": rows}, indent=2))  # fmt: skip
        return rows

    def trained_metrics(self, scene: Path, out: Path, steps: int, change: Dict) -> Dict[str, float]:
        config = train(scene, out, steps, self.init_config(), change)
        metrics = EvalTracks(config, out / "tracks.json", ground_truth="tracks", max_frames=self.max_eval_frames).main()
        return {**metrics, "mpsnr": validation_mpsnr(config)}

    def init_config(self) -> InitConfig:
        return InitConfig(num_dynamic=self.num_dynamic, num_static=self.num_static, min_cluster_points=20,
                          optim_steps=self.init_optim_steps)  # fmt: skip


def timed(name: str, run) -> Dict:
    start = time.perf_counter()
    metrics = run()
    return {"row": name, **metrics, "seconds": time.perf_counter() - start}


def train(scene: Path, out: Path, steps: int, init: InitConfig, change: Dict) -> Path:
    """Trains the shapeofmotion method (model / loss-weight fields in ``change``); returns config.yml."""
    cfg = copy.deepcopy(shapeofmotion.config)
    cfg.pipeline.datamanager.data = scene
    cfg.pipeline.datamanager.init = init
    model = cfg.pipeline.model
    model.motion_model = change.get("motion_model", model.motion_model)
    model.loss_weights.w_track = change.get("w_track", model.loss_weights.w_track)
    control = model.density_control  # a few densifications, no opacity reset within these short runs
    control.warmup_steps, control.control_every = 100, 50
    control.reset_opacity_every_n_controls = 10**6
    control.stop_control_steps = control.stop_control_by_screen_steps = int(0.8 * steps)
    control.densify_xys_grad_threshold = 0.002
    cfg.max_num_iterations = steps
    cfg.output_dir, cfg.vis = out, "tensorboard"
    cfg.steps_per_eval_image = cfg.steps_per_eval_all_images = cfg.steps_per_eval_batch = 10**9
    cfg.steps_per_save = 10**9
    train_in_process(cfg)
    return cfg.get_base_dir() / "config.yml"


@torch.no_grad()
def validation_mpsnr(config: Path) -> float:
    """Mean masked PSNR (covisible pixels) over the validation cameras' images."""
    _, pipeline = load_trained(config)
    dataset, model = pipeline.datamanager.eval_dataset, pipeline.model
    values = []
    for i in range(len(dataset)):
        batch = dataset.get_data(i, image_type="float32")
        outputs = model.get_outputs_for_camera(dataset.cameras[i : i + 1].to(model.device))
        values.append(model.get_image_metrics_and_images(outputs, batch)[0]["mpsnr"])
    return float(torch.tensor(values).mean())


def lifted_tracks(scene: Path):
    """The scene's training data and every ground-truth track's lifted 2D track ([P, T, 3] world,
    unobserved frames interpolated as the initialization does; [P, T] visibility)."""
    outputs = IPhoneDataParserConfig(data=scene).setup().get_dataparser_outputs("train")
    dataset = IPhoneDataset(outputs)
    frames = training_frames(dataset)
    usable, depths = usable_depths(frames)
    lifted = [lift_points(frames, q, torch.arange(n), usable, depths) for q, n in enumerate(frames.tracks.num_points)]
    xyz = torch.cat([t.xyz for t in lifted])  # [P, T, 3] in the order of the ground-truth tracks
    visible = torch.cat([t.visible for t in lifted])
    seen = visible.any(dim=1)
    xyz[seen] = fill_missing(xyz[seen], visible[seen])  # never-seen tracks keep their raw lifted points
    return outputs, dataset, frames, xyz, visible


def score_track_positions(scene: Path, outputs, dataset, frames, xyz: torch.Tensor, visible: torch.Tensor,
                          tracks: torch.Tensor, max_frames: int) -> Dict[str, float]:  # fmt: skip
    """Tracking metrics when ground-truth track ``tracks[p]`` is predicted at ``xyz[p]`` [T, 3] at
    every frame (whatever the query frame) and visible where ``visible[p]``."""
    to_ns = torch.eye(4)
    to_ns[:3] = outputs.dataparser_transform * outputs.dataparser_scale
    annotated: AnnotatedFrames = from_ground_truth_tracks(
        IPhoneLayout(scene).ground_truth_dir / "tracks_3d.npz", dataset.cameras, dataset.metadata["time_ids"],
        to_ns, dataset.metadata["metric_scale"], max_frames,
    )  # fmt: skip
    a = annotated.annotations
    ann = TrackAnnotations(a.points_2d[:, tracks], a.visible[:, tracks], a.points_3d[:, tracks], a.valid_3d[:, tracks],
                           a.camera_centres)  # fmt: skip
    steps = frames.time_ids[annotated.frames]
    w2c = get_viewmat(dataset.cameras.camera_to_worlds[annotated.frames])
    Ks = dataset.cameras.get_intrinsics_matrices()[annotated.frames]
    K = len(steps)
    at_j = xyz[:, steps].transpose(0, 1)  # [K, P, 3]: where every point is at frame j, whatever frame i
    pixels, _ = project(apply_transform(w2c[:, None], at_j), Ks[:, None])
    predictions = TrackPredictions(points_3d=at_j[None].expand(K, -1, -1, -1), points_2d=pixels[None].expand(K, -1, -1, -1),
                                   visible=visible[:, steps].T[None].expand(K, -1, -1),
                                   camera_centres=camera_centres(w2c))  # fmt: skip
    return score_tracks(predictions, ann, pixels_to_1x(dataset))


def prior_metrics(scene: Path, max_frames: int) -> Dict[str, float]:
    """Tracking metrics of the lifted 2D tracks of every ground-truth track (module docstring)."""
    outputs, dataset, frames, xyz, visible = lifted_tracks(scene)
    num_gt = int(np.load(IPhoneLayout(scene).ground_truth_dir / "tracks_3d.npz")["positions"].shape[0])
    if num_gt != len(xyz):
        raise ValueError(f"{len(xyz)} 2D tracks but {num_gt} ground-truth tracks")
    return score_track_positions(scene, outputs, dataset, frames, xyz, visible, torch.arange(len(xyz)), max_frames)


def init_trajectory_rows(scene: Path, init_config: InitConfig, max_frames: int) -> List[Dict]:
    """The cached initialization's dynamic Gaussians scored on their own ground-truth tracks, and
    the lifted prior on the same tracks (module docstring); visibility is the lifted one in both."""
    start = time.perf_counter()
    outputs, dataset, frames, xyz, visible = lifted_tracks(scene)
    device = "cuda" if torch.cuda.is_available() else "cpu"  # as the datamanager keys the cache
    init = cached_initialize_scene(frames, init_config, scene, device)
    offsets = torch.tensor([0, *frames.tracks.num_points]).cumsum(0)
    tracks = offsets[init.track_ids[:, 0]] + init.track_ids[:, 1]  # ground-truth track of each dynamic Gaussian
    num_dyn = len(tracks)
    steps = torch.arange(frames.num_time_steps)
    R, t = blend(init.coef_logits[:num_dyn], *bases_at(init.rots, init.transls, steps))
    moved = init.normalization.points_to_world(move_means(init.means[:num_dyn], R, t))  # [P, T, 3]
    own = score_track_positions(scene, outputs, dataset, frames, moved, visible[tracks], tracks, max_frames)
    middle = time.perf_counter()
    prior = score_track_positions(scene, outputs, dataset, frames, xyz[tracks], visible[tracks], tracks, max_frames)
    label = f"{num_dyn}/{len(xyz)} tracks"
    return [{"row": f"lifted prior, the init's {label}", **prior, "seconds": time.perf_counter() - middle},
            {"row": f"init trajectories, {label} (no rendering)", **own, "seconds": middle - start}]


def markdown(rows: List[Dict], steps: int) -> str:
    cell = lambda row, key, fmt: format(row[key], fmt) if key in row else "—"  # noqa: E731
    lines = [f"| row ({steps} training steps) | EPE (m) ↓ | δ3D@5cm ↑ | δ3D@10cm ↑ | AJ ↑ | ⟨δ_avg⟩ ↑ | mPSNR ↑ | time (s) |",
             "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for row in rows:
        lines.append(f"| {row['row']} | {cell(row, 'epe', '.4f')} | {cell(row, 'delta_3d_5cm', '.3f')} | "
                     f"{cell(row, 'delta_3d_10cm', '.3f')} | {cell(row, 'aj', '.3f')} | {cell(row, 'delta_avg', '.3f')} | "
                     f"{cell(row, 'mpsnr', '.2f')} | {row['seconds']:.0f} |")  # fmt: skip
    return "\n".join(lines)


if __name__ == "__main__":
    tyro.cli(Benchmark).main()
