"""SharpTimeGS model: 4D Gaussians with velocity, canonical time, temporal scale and a
learnable temporal radius (lifespan), rendered at the camera's time."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Dict, List, Literal, Tuple, Type

import numpy as np
import torch
from nerfstudio.cameras.cameras import Cameras
from nerfstudio.engine.callbacks import TrainingCallback, TrainingCallbackAttributes
from nerfstudio.utils.rich_utils import CONSOLE
from torch import Tensor
from torch.nn import Parameter

from sharptime_ns import temporal
from sharptime_ns.strategy import SharpTimeStrategy
from splat4d.dynamic_model import DynamicSplatModel, DynamicSplatModelConfig, RenderGaussians
from splat4d.metrics import LPIPSLoss
from splat4d.optim import run_steps, stretch_schedules
from splat4d.strategy_info import ERROR_PROBE, SUBSET_IDS

TimeUnit = Literal["normalized", "seconds", "frames"]
TEMPORAL_PARAMS = ("velocities", "times", "log_tscales", "log_tradii")
PAPER_STEPS = 30000  # the paper's schedule (GPU)
BASE_OPACITY, LIFE = "base_opacity", "temporal_opacity"  # training outputs: O and l(t) of the rendered Gaussians


@dataclass
class SharpTimeModelConfig(DynamicSplatModelConfig):
    _target: Type = field(default_factory=lambda: SharpTimeModel)
    time_unit: TimeUnit = "frames"
    """Unit of t, T, σt, r and velocities: the dataparser's [0,1] time ('normalized'), seconds, or
    frame indices. f(σt, r) = 1 + max(1, (σt + r)²) depends on it: in frames a static Gaussian
    (σt ≈ 3 × sequence length) gets f ≫ 1 and barely moves, as the paper intends."""
    temporal_model: Literal["sharptime", "4dgs"] = "sharptime"
    """sharptime: lifespan-modulated opacity and motion. 4dgs (ablation): f ≡ 1 and a plain
    Gaussian temporal opacity exp(−½((t − T)/σt)²)."""
    learn_radius: bool = True
    """Learn the temporal radius r. False (ablation 'no lifespan'): r ≡ 0."""
    render_cull_threshold: float = 0.01
    """o_th: Gaussians whose temporal opacity l(t) is below this are not rasterized at t."""
    opacity_reg_weight: float = 1e-2
    """Stage 2: weight of the FreeTimeGS opacity regularizer mean(O · sg[l(t)])."""
    lifespan_reg_weight: float = 1e-4
    """Stage 2: weight of L_t = mean(1 / (sqrt(−2 ln o_th · σt²) + r)), which favours long lifespans."""
    densification: Literal["sharptime", "absgs"] = "sharptime"
    """sharptime: AbsGS for the first third, then score-driven relocation at a fixed count.
    absgs (ablation): AbsGS densification throughout."""
    stage1_fraction: float = 1.0 / 3.0
    """Fraction of training in stage 1 (AbsGS densification, canonical times learnable)."""
    total_steps: int = PAPER_STEPS
    """Training length; under ns-train, the run's: the step it resumes from + --max-num-iterations."""
    num_downscales: int = 0
    """Train at full resolution (the multi-view parsers already downscale the videos)."""
    lr_schedule: Literal["run", "paper"] = "paper"
    """paper (default): the exponential learning-rate decays keep the paper's 30k-step length
    whatever the run's (a 3k-step run ends at lr ≈ 0.63 × the initial means lr); run: they are
    stretched to the run's length (the step it resumes from + --max-num-iterations) so a short
    run decays fully. Both are the same at 30k steps. Measured on the benchmark scene, 3000 steps,
    3 seeds (benchmarks/RESULTS.md): paper 36.49 ± 0.05 dB held out, run 35.87 ± 0.08 dB."""
    lpips_loss_weight: float = 0.01
    """The paper's 0.01 · LPIPS (AlexNet) term of the photometric loss. Active only when torchvision's
    ImageNet AlexNet weights are on this machine (nothing is downloaded; the log says when it is
    left out, and the rest of the loss is unchanged). 0 turns it off."""
    relocate_opacity: float = 0.005
    """Stage 2: Gaussians less opaque than this are relocated (removed, and as many top-scored ones
    cloned or split). 0.005 is the "dead Gaussian" threshold of the relocation SharpTimeGS and
    FreeTimeGS take from 3DGS-MCMC; it is not splatfacto's culling threshold (cull_alpha_thresh,
    0.1): a 50k-Gaussian Neural3DV-size run had 86 % of its Gaussians below 0.1 in stage 2."""
    score_error_weight: float = 1.0
    """λe: weight of the accumulated per-Gaussian render error E in the densification score."""
    score_opacity_weight: float = 0.5
    """λo: weight of the opacity O in the densification score."""
    score_motion_weight: float = 0.5
    """λl: weight of 1 − exp(−(‖v‖ + 1)/f) in the densification score."""
    random_init_tscale: float = 0.25
    """Random init (no velocity-aware points): σt as a fraction of the sequence length."""


class SharpTimeModel(DynamicSplatModel):
    config: SharpTimeModelConfig

    def populate_modules(self) -> None:
        meta = self.kwargs.get("metadata") or {}
        num_frames = int(meta.get("num_frames", 2))
        fps = float(meta.get("fps", 30.0))
        # units per normalised time: the whole sequence spans 1, (F − 1)/fps seconds or F − 1 frames
        self.time_scale = {"normalized": 1.0, "seconds": (num_frames - 1) / fps, "frames": float(num_frames - 1)}[
            self.config.time_unit
        ]
        self.frame_interval = self.time_scale / max(num_frames - 1, 1)
        self.init_points = meta.get("sharptime_init")
        super().populate_modules()
        self.lpips_loss = LPIPSLoss() if self.config.lpips_loss_weight > 0 else None  # built at the first loss

    # ----- parameters -----
    def initial_gaussians(self) -> Dict[str, Parameter]:
        params = super().initial_gaussians()
        n = params["means"].shape[0]
        init = self.init_points
        if init is not None and not self.config.random_init and len(init["times"]) == n:
            velocities, times, tscales, radii = self.init_in_time_unit(init)
            CONSOLE.log(f"SharpTimeGS: {n} Gaussians from the velocity-aware initialization")
        else:
            velocities = torch.zeros(n, 3)
            times = torch.rand(n, 1) * self.time_scale
            tscales = torch.full((n, 1), self.config.random_init_tscale * self.time_scale)
            radii = torch.full((n, 1), temporal.TINY_RADIUS)
        params["velocities"] = Parameter(velocities)
        params["times"] = Parameter(times)
        params["log_tscales"] = Parameter(torch.log(tscales.clamp(min=1e-6)))
        params["log_tradii"] = Parameter(torch.log(radii.clamp(min=1e-12)))  # unused when learn_radius=False
        return params

    def init_in_time_unit(self, init: Dict[str, np.ndarray]) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        """Velocity-aware init points (normalised time, v stored as measured velocity × f) in
        this model's time unit: T, σt, r scale by time_scale; v is re-derived with the f this model
        moves Gaussians by (r ≡ 0 without a learned radius, f ≡ 1 for the 4DGS-style model), so
        every variant starts with the measured velocities."""
        as_column = lambda key: torch.as_tensor(init[key], dtype=torch.float32).reshape(-1, 1)  # noqa: E731
        tscales_n, radii_n = as_column("tscales"), as_column("radii")
        measured = torch.as_tensor(init["velocities"], dtype=torch.float32) / temporal.motion_factor(tscales_n, radii_n)
        s = self.time_scale
        times, tscales, radii = as_column("times") * s, tscales_n * s, radii_n * s
        if self.config.temporal_model == "4dgs":
            return measured / s, times, tscales, radii
        moving_radii = radii if self.config.learn_radius else torch.zeros_like(radii)
        return measured / s * temporal.motion_factor(tscales, moving_radii), times, tscales, radii

    def get_gaussian_param_groups(self) -> Dict[str, List[Parameter]]:
        groups = super().get_gaussian_param_groups()
        for name in TEMPORAL_PARAMS:  # gsplat's ops need an optimizer for every parameter
            groups[name] = [self.gauss_params[name]]
        return groups

    def build_strategy(self) -> SharpTimeStrategy:
        cfg = self.config
        return SharpTimeStrategy(
            absgs=super().build_strategy(),
            total_steps=cfg.total_steps,
            stage1_fraction=cfg.stage1_fraction,
            custom_densification=cfg.densification == "sharptime",
            refine_every=cfg.refine_every,
            relocate_opacity=cfg.relocate_opacity,
            grow_scale3d=cfg.densify_size_thresh,
            score_weights=(cfg.score_error_weight, cfg.score_opacity_weight, cfg.score_motion_weight),
            learn_radius=cfg.learn_radius,
        )

    def get_training_callbacks(self, attributes: TrainingCallbackAttributes) -> List[TrainingCallback]:
        if attributes.trainer is not None:
            self.strategy.total_steps = total = run_steps(attributes.trainer)
            if self.config.lr_schedule == "run" and attributes.optimizers is not None:
                stretched = stretch_schedules(attributes.optimizers, total)
                if stretched:
                    CONSOLE.log(f"learning-rate decays of {', '.join(stretched)} stretched to the run's {total} steps")
        return super().get_training_callbacks(attributes)

    # ----- temporal attributes -----
    @property
    def tscales(self) -> Tensor:
        return torch.exp(self.gauss_params["log_tscales"])

    @property
    def tradii(self) -> Tensor:
        return temporal.temporal_radius(self.gauss_params["log_tradii"], self.config.learn_radius)

    @property
    def canonical_times(self) -> Tensor:
        times = self.gauss_params["times"]
        return times.detach() if self.strategy.in_stage2(self.step) else times  # frozen in stage 2

    def temporal_opacity(self, t: float, times: Tensor, tscales: Tensor, tradii: Tensor) -> Tensor:
        if self.config.temporal_model == "4dgs":
            return temporal.gaussian_lifespan(times, tscales, t)
        return temporal.lifespan(times, tscales, tradii, t)

    def alive(self, t: float) -> Tensor:
        with torch.no_grad():
            times, tscales, tradii = self.gauss_params["times"], self.tscales, self.tradii
            if self.config.temporal_model == "4dgs":  # exp(−½x²) ≥ o_th  ⇔  |x| ≤ √2·sqrt(−ln o_th)
                tscales, tradii = tscales * math.sqrt(2.0), torch.zeros_like(tradii)
            return temporal.alive_at(times, tscales, tradii, t, self.config.render_cull_threshold).squeeze(-1)

    def gaussians_at(self, t: float) -> RenderGaussians:
        t_unit = t * self.time_scale
        keep = self.alive(t_unit).nonzero().squeeze(-1)
        static = self.static_gaussians().select(keep)
        times, tscales, tradii = self.canonical_times[keep], self.tscales[keep], self.tradii[keep]
        velocities = self.gauss_params["velocities"][keep]
        if self.config.temporal_model == "4dgs":
            means = static.means + velocities * (t_unit - times)
        else:
            means = temporal.position_at(static.means, velocities, times, tscales, tradii, t_unit)
        life = self.temporal_opacity(t_unit, times, tscales, tradii).squeeze(-1)
        return RenderGaussians(
            means=means,
            quats=static.quats,
            scales=static.scales,
            opacities=static.opacities * life,
            colors=static.colors,
            sh_degree=static.sh_degree,
            subset_ids=keep,
            loss_inputs={BASE_OPACITY: static.opacities, LIFE: life},  # for the opacity regularizer
        )

    # ----- rendering with the error probe -----
    def prepare_for_render(self, gaussians: RenderGaussians, camera: Cameras, viewmats: Tensor) -> RenderGaussians:
        """In stage 2 of training, add a zero 'error probe' channel: rendering it changes nothing,
        but its gradient under Σ_p e(p)·probe(p) is Σ_p e(p)·w_i(p), each Gaussian's
        blend-weighted render error (the strategy reads it from its info)."""
        if not (self.training and self.strategy.in_stage2(self.step)):
            return gaussians
        probe = torch.zeros((gaussians.means.shape[0], 1), requires_grad=True, device=gaussians.means.device)
        return dataclasses.replace(gaussians.with_features([probe], viewmats), error_probe=probe)

    def get_metrics_dict(self, outputs, batch) -> Dict[str, Tensor]:
        metrics = super().get_metrics_dict(outputs, batch)
        if self.training and self.strategy.in_stage2(self.step):  # Gaussians relocated since stage 2 began
            metrics["relocated"] = float(self.strategy_state["relocated"])
        return metrics

    def get_loss_dict(self, outputs, batch, metrics_dict=None) -> Dict[str, Tensor]:
        losses = super().get_loss_dict(outputs, batch, metrics_dict)
        if not self.training:
            return losses
        use_lpips = self.lpips_loss is not None and self.lpips_loss.available
        probe = self.info[ERROR_PROBE]
        if use_lpips or probe is not None:  # the target image, only when a term below needs it
            gt = self.composite_with_background(self.get_gt_img(batch["image"]), outputs["background"])
        if use_lpips:
            losses["lpips_loss"] = self.config.lpips_loss_weight * self.lpips_loss(outputs["rgb"], gt)
        if not self.strategy.in_stage2(self.step):
            return losses
        opacity, life = outputs[BASE_OPACITY], outputs[LIFE]
        losses["opacity_reg"] = self.config.opacity_reg_weight * (opacity * life.detach()).mean()
        if self.config.lifespan_reg_weight > 0 and self.config.temporal_model == "sharptime":
            ids = self.info[SUBSET_IDS]
            losses["lifespan_reg"] = self.config.lifespan_reg_weight * temporal.lifespan_loss(
                self.tscales[ids], self.tradii[ids], self.config.render_cull_threshold
            )
        if probe is not None:
            error = (outputs["rgb"] - gt).abs().mean(dim=-1).detach()
            # value 0 (the probe channel renders zeros); its gradient fills the probe
            losses["error_probe"] = (outputs["features"][..., 0] * error).sum()
        return losses
