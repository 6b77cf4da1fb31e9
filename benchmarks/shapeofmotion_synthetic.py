"""Shape of Motion on a synthetic monocular scene with noisy priors: the lifted 2D-track prior,
the initialization, the trained model, two ablations of the paper's Table 4 and the recipe before
issue 13, on the same long-range tracking metrics (against the exact 3D tracks) and the
validation cameras' masked image metrics, each trained row over several seeds (mean ± std).

    python benchmarks/shapeofmotion_synthetic.py                       # ~60 min on 2 loaded CPU cores
    python benchmarks/shapeofmotion_synthetic.py --epochs 8 --seeds 0 --output-json som.json --output-md som.md

Scene (written once into ``out_dir/scene``, then reused): the articulated scene (articulated.py: a
3-link arm and a rigid rolling sphere), 60 frames of 240×180 from a hand-held camera with
tremor, trained on the 2x images (120×90, as the reference trains DyCheck at 2x).
Rows (all trained ones for ``--epochs`` passes over the training frames, the same renders each,
and the same initialization, cached in the scene):
- prior (this and the init-trajectory rows: shapeofmotion_prior_rows.py): every ground-truth
  track's 2D track lifted at the depth prior (lift.py), unobserved
  frames interpolated as the initialization does; 2D from projecting it;
- init: the initialization after one training step, read out like the trained rows (rendered
  position maps at the annotated pixels, as the reference's validator);
- init trajectories: the initialization's dynamic Gaussians themselves, each scored on the
  ground-truth track whose lifted 2D track it was fitted to (the prior's association, no
  rendering; only the tracks the initialization kept), beside the prior on those same tracks;
- full: Shape of Motion with the reference's recipe (8 frames per step, static learning rates,
  opacity reset / split as the reference);
- per-Gaussian translation: ``motion_model="per_gaussian_translation"``;
- no 2D-track loss: ``w_track = 0``;
- ``coefs_frozen`` / ``bases_lr10`` / ``coefs_frozen_bases_lr10`` / ``coefs_lr01`` (not default
  rows): full with the coefficient logits' learning rate 0 / the bases' ×10 / both / the
  coefficients' ×0.1;
  ``per_gaussian_lr10``: the per-Gaussian-translation ablation with its translations' rate ×10 (the
  same change as ``bases_lr10``, for a like-for-like comparison);
- reference recipe off: config.pre_issue13_recipe (1 frame per step with the same step numbers
  of the control schedule, so control ends after 8× fewer renders; one set of learning rates,
  eps 1e-15, scale decay over 30k steps, clamped resets, sampled splits), 8× the steps.
The density control is the reference's schedule (in its 8-frame steps) scaled by epochs / 500
(the reference trains 500 epochs), without opacity resets unless ``--reset-opacities``; the
densification threshold is 2e-3 (reference 2e-4: too many Gaussians for this CPU budget). The priors are degraded more than MonocularConfig's defaults
(``--degradation.*``): per-frame disparity scale / shift errors and pixel noise, track jitter and
dropouts, mask errors.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np
import tyro
from nerfstudio.engine.trainer import TrainerConfig
from shapeofmotion_prior_rows import init_trajectory_rows, prior_metrics  # a sibling: benchmarks/ is sys.path[0]

from dataparsers.synthetic.monocular import MonocularConfig, write_monocular_scene
from dataparsers.synthetic.monocular_priors import PriorDegradation
from shapeofmotion_ns.config import pre_issue13_recipe, shapeofmotion
from shapeofmotion_ns.eval_tracks import EvalTracks
from shapeofmotion_ns.init import InitConfig
from shapeofmotion_ns.recipe import REFERENCE_FRAMES_PER_STEP
from splat4d.training import train_in_process

NOISY = PriorDegradation(
    disparity_scale_error=0.1,
    disparity_shift_error=0.05,
    disparity_noise=0.03,
    track_jitter=1.0,
    track_dropout=0.15,
    mask_error=1,
    track_stride=8,
)
REFERENCE_EPOCHS = 500  # run_training.py num_epochs
METRICS = ("epe", "delta_3d_5cm", "delta_3d_10cm", "aj", "delta_avg", "mpsnr", "mssim", "mlpips", "seconds")


def scene_config() -> MonocularConfig:
    return MonocularConfig(
        num_frames=60,
        width=240,
        height=180,
        scene="articulated",
        handheld_tremor=0.02,
        degradation=dataclasses.replace(NOISY),
    )


def pre_issue13(cfg: TrainerConfig) -> TrainerConfig:
    """The recipe before issue 13 at the same renders: 1 frame per step, 8× the steps."""
    cfg.max_num_iterations *= cfg.pipeline.model.frames_per_step
    return pre_issue13_recipe(cfg)


def with_learning_rates(**factors: float) -> Callable[[TrainerConfig], TrainerConfig]:
    """The full model with the learning rates of the named optimizer groups multiplied."""

    def change(cfg: TrainerConfig) -> TrainerConfig:
        for group, factor in factors.items():
            cfg.optimizers[group]["optimizer"].lr *= factor
        return cfg

    return change


def with_model(**fields) -> Callable[[TrainerConfig], TrainerConfig]:
    def change(cfg: TrainerConfig) -> TrainerConfig:
        for name, value in fields.items():
            target = cfg.pipeline.model.loss_weights if name.startswith("w_") else cfg.pipeline.model
            setattr(target, name, value)
        return cfg

    return change


@dataclass
class Benchmark:
    out_dir: Path = Path("outputs/shapeofmotion_synthetic")
    """Scene (reused when present) and training runs."""
    scene: MonocularConfig = field(default_factory=scene_config)
    """The scene written when ``out_dir/scene`` does not exist."""
    factor: int = 2
    """Training / evaluation resolution: rgb/<factor>x (the reference trains DyCheck at 2x)."""
    epochs: int = 40
    """Passes over the training frames of every trained row (the reference: 500)."""
    seeds: Tuple[int, ...] = (0, 1, 2)
    """Training seeds of every trained row (sampling of frames / targets, splits, ...)."""
    densify_threshold: float = 0.002
    """Densification's screen-gradient threshold (the reference's 2e-4 grows too many Gaussians here)."""
    reset_opacities: bool = False
    """Opacity resets at the reference's period scaled like the rest of the schedule (its first at
    80 % of the run). Off: none within these short runs, since recovering from a reset takes a
    fixed number of Adam steps (opacity rate × steps), not a fraction of the run."""
    num_dynamic: int = 2000
    """Lifted tracks the initialization requests (dynamic Gaussians)."""
    num_static: int = 3000
    """Static points of the initialization."""
    init_optim_steps: int = 1000
    """Steps of the initialization's fit of the motion bases."""
    num_bases: int = 10
    """k-means clusters / motion bases of the initialization (the reference's num_motion_bases)."""
    coef_init: str = "distance"
    """InitConfig.coef_init (distance: the reference's)."""
    cluster_by: str = "velocity"
    """InitConfig.cluster_by (velocity: the reference's k-means)."""
    max_eval_frames: int = 12
    """Annotated frames of the tracking metrics (all ordered pairs are evaluated)."""
    max_eval_images: int = 24
    """Validation images of the masked image metrics (evenly spaced over both cameras)."""
    rows: Tuple[str, ...] = ("init", "full", "per_gaussian", "no_track", "recipe_off")
    """Trained rows to run (names of ``variants``)."""
    output_json: Optional[Path] = None
    """Where to save the config, every run and the summarized rows (JSON)."""
    output_md: Optional[Path] = None
    """Where to save the table (markdown)."""

    def variants(self) -> Dict[str, Tuple[str, Callable[[TrainerConfig], TrainerConfig]]]:
        identity = lambda cfg: cfg  # noqa: E731
        return {
            "init": ("initialization (1 step)", lambda cfg: dataclasses.replace(cfg, max_num_iterations=1)),
            "full": ("full", identity),
            "per_gaussian": ("per-Gaussian translation", with_model(motion_model="per_gaussian_translation")),
            "no_track": ("no 2D-track loss", with_model(w_track=0.0)),
            "recipe_off": ("reference recipe off (before issue 13)", pre_issue13),
            "coefs_frozen": ("full, motion coefficients frozen", with_learning_rates(motion_coefs=0.0)),
            "bases_lr10": (
                "full, motion-basis learning rates ×10",
                with_learning_rates(motion_rots=10, motion_transls=10),
            ),
            "coefs_frozen_bases_lr10": (
                "full, coefficients frozen, basis learning rates ×10",
                with_learning_rates(motion_coefs=0.0, motion_rots=10, motion_transls=10),
            ),
            "coefs_lr01": ("full, coefficient learning rate ×0.1", with_learning_rates(motion_coefs=0.1)),
            "per_gaussian_lr10": (
                "per-Gaussian translation, translation learning rate ×10",
                lambda cfg: with_learning_rates(translations=10)(
                    with_model(motion_model="per_gaussian_translation")(cfg)
                ),
            ),
        }

    def main(self) -> List[Dict]:
        scene = self.out_dir / "scene"
        if not scene.exists():
            start = time.perf_counter()
            write_monocular_scene(scene, self.scene)
            print(f"scene written in {time.perf_counter() - start:.0f} s")
        runs: List[Dict] = [
            timed("lifted 2D-track prior", None, lambda: prior_metrics(scene, self.max_eval_frames, self.factor))
        ]
        variants = self.variants()
        for key in self.rows:
            name, change = variants[key]
            for seed in self.seeds:
                out = self.out_dir / f"{key}_seed{seed}"
                runs.append(timed(name, seed, lambda: self.trained_metrics(scene, out, seed, change)))
                self.save(runs)
            if key == "init":  # the initialization is cached now
                runs[1:1] = init_trajectory_rows(scene, self.init_config(), self.max_eval_frames, self.factor)
        self.save(runs)
        return runs

    def save(self, runs: List[Dict]) -> None:
        table = markdown(summarize(runs), self.epochs, len(self.seeds))
        print(table)
        if self.output_md is not None:
            self.output_md.write_text(table + "\n")
        if self.output_json is not None:
            config = json.loads(json.dumps(dataclasses.asdict(self), default=str))
            self.output_json.write_text(json.dumps({"config": config, "runs": runs, "rows": summarize(runs)}, indent=2))

    def trained_metrics(self, scene: Path, out: Path, seed: int, change) -> Dict[str, float]:
        config = train(change(self.base_config(scene, out, seed)))
        return EvalTracks(
            config,
            out / "tracks.json",
            ground_truth="tracks",
            max_frames=self.max_eval_frames,
            max_images=self.max_eval_images,
        ).main()

    def base_config(self, scene: Path, out: Path, seed: int) -> TrainerConfig:
        """The full model's config: the reference's schedule scaled to ``epochs`` (module docstring)."""
        cfg = copy.deepcopy(shapeofmotion.config)
        cfg.pipeline.datamanager.data = scene
        cfg.pipeline.datamanager.dataparser.factor = self.factor
        cfg.pipeline.datamanager.init = self.init_config()
        cfg.pipeline.datamanager.seed = cfg.machine.seed = seed
        frames = self.scene.num_frames
        cfg.max_num_iterations = max(2, round(self.epochs * frames / REFERENCE_FRAMES_PER_STEP))
        scale = self.epochs / REFERENCE_EPOCHS  # the reference's schedule, shrunk like its length
        control = cfg.pipeline.model.density_control
        for name in (
            "warmup_steps",
            "control_every",
            "stop_control_by_screen_steps",
            "stop_control_steps",
            "stop_densify_steps",
        ):
            setattr(control, name, max(1, round(getattr(control, name) * scale)))
        control.densify_pause_after_reset = max(1, round(frames * scale))  # reference: num_frames steps
        control.cull_pause_after_reset = max(1, round(min(3 * frames, 1000) * scale))
        control.densify_xys_grad_threshold = self.densify_threshold
        if not self.reset_opacities:
            control.reset_opacity_every_n_controls = 10**6
        cfg.optimizers["scales"]["scheduler"].max_steps = max(1, round(5000 * scale))
        cfg.output_dir, cfg.vis = out, "tensorboard"
        cfg.steps_per_eval_image = cfg.steps_per_eval_all_images = cfg.steps_per_eval_batch = 10**9
        cfg.steps_per_save = 10**9
        return cfg

    def init_config(self) -> InitConfig:
        return InitConfig(
            num_dynamic=self.num_dynamic,
            num_static=self.num_static,
            num_bases=self.num_bases,
            coef_init=self.coef_init,  # type: ignore[arg-type]
            cluster_by=self.cluster_by,  # type: ignore[arg-type]
            min_cluster_points=20,
            optim_steps=self.init_optim_steps,
        )


def timed(name: str, seed: Optional[int], run) -> Dict:
    start = time.perf_counter()
    metrics = run()
    return {"row": name, "seed": seed, **metrics, "seconds": time.perf_counter() - start}


def train(cfg: TrainerConfig) -> Path:
    """Trains a shapeofmotion TrainerConfig; returns its config.yml."""
    train_in_process(cfg)
    return cfg.get_base_dir() / "config.yml"


def summarize(runs: List[Dict]) -> List[Dict]:
    """Per row (in order of appearance): mean and std over its runs of every metric present."""
    rows: Dict[str, List[Dict]] = {}
    for run in runs:
        rows.setdefault(run["row"], []).append(run)
    out = []
    for name, group in rows.items():
        row: Dict = {"row": name, "runs": len(group)}
        for key in METRICS:
            values = [r[key] for r in group if isinstance(r.get(key), (int, float))]
            if values:
                row[key], row[key + "_std"] = (
                    float(np.mean(values)),
                    float(np.std(values, ddof=1) if len(values) > 1 else 0.0),
                )
        out.append(row)
    return out


def markdown(rows: List[Dict], epochs: int, seeds: int) -> str:
    """One line per row: mean ± std over its runs (seeds)."""

    def cell(row: Dict, key: str, fmt: str) -> str:
        if key not in row:
            return "—"
        std = row.get(key + "_std", 0.0)
        return format(row[key], fmt) + (f" ± {format(std, fmt)}" if row["runs"] > 1 else "")

    lines = [
        f"| row ({epochs} epochs, {seeds} seeds) | runs | EPE (m) ↓ | δ3D@5cm ↑ | δ3D@10cm ↑ | AJ ↑ | ⟨δ_avg⟩ ↑ | "
        "mPSNR ↑ | mSSIM ↑ | mLPIPS ↓ | time (s) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['row']} | {row['runs']} | {cell(row, 'epe', '.4f')} | {cell(row, 'delta_3d_5cm', '.3f')} | "
            f"{cell(row, 'delta_3d_10cm', '.3f')} | {cell(row, 'aj', '.3f')} | {cell(row, 'delta_avg', '.3f')} | "
            f"{cell(row, 'mpsnr', '.2f')} | {cell(row, 'mssim', '.3f')} | {cell(row, 'mlpips', '.3f')} | "
            f"{row.get('seconds', 0.0):.0f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    tyro.cli(Benchmark).main()
