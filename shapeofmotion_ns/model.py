"""Shape of Motion (Wang et al.) on splat4d's dynamic Gaussian model.

One ParameterDict holds static and dynamic Gaussians (flag ``is_dynamic``) in the normalized scene
frame of normalization.py; dynamic ones also have motion coefficient logits [N, B] and move with
the B shared SE(3) motion bases (motion.py) kept in ``motion_bases``, or, with
``motion_model="per_gaussian_translation"`` (the paper's ablation), have their own translation
per time step ``translations`` [N, T, 3] (initialized to the bases' motion) and no rotation. ``gaussians_at(t)`` moves
the dynamic Gaussians to time t and maps everything to the dataparser's world for rendering.
Colours are RGB (sigmoid of ``features_dc``) with sh_degree 0, as in the reference; sh_degree > 0
uses spherical harmonics.

In training, each render adds feature channels: the dynamic flag (for the mask loss) and, for
each target frame of the step's track batch, the Gaussians' positions at the target time in the
target camera's coordinates (for the 2D track and track-depth losses).

In the viewer, "Show trajectories" (Custom Elements) draws the trajectories of a sample of the
dynamic Gaussians over all time steps (trajectories.py), as they are when it is ticked or the
count changes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Literal, Optional, Tuple, Type

import torch
import torch.nn.functional as F
from nerfstudio.cameras.cameras import Cameras
from nerfstudio.engine.callbacks import TrainingCallback, TrainingCallbackAttributes
from nerfstudio.models.splatfacto import RGB2SH, num_sh_bases
from nerfstudio.utils.rich_utils import CONSOLE
from nerfstudio.viewer.viewer_elements import ViewerCheckbox, ViewerControl, ViewerSlider
from torch import Tensor
from torch.nn import Parameter

from shapeofmotion_ns import losses as L
from shapeofmotion_ns.datamanager import INIT_KEY
from shapeofmotion_ns.geometry import sample_image
from shapeofmotion_ns.init import SceneInit, empty_init
from shapeofmotion_ns.masked_metrics import MaskedLPIPS, masked_psnr, masked_ssim
from shapeofmotion_ns.model_losses import regularizers, track_losses
from shapeofmotion_ns.motion import (
    bases_at,
    blend,
    displacements_from_bases,
    interpolate_frames,
    matrix_to_quat,
    move_means,
    move_quats,
    quat_multiply,
)
from shapeofmotion_ns.normalization import SceneNormalization
from shapeofmotion_ns.recipe import (
    REFERENCE_FRAMES_PER_STEP,
    StaticLearningRates,
    install_static_learning_rates,
    merge_render_infos,
)
from shapeofmotion_ns.strategy import DensityControlConfig, ShapeOfMotionStrategy
from shapeofmotion_ns.track_batch import TrackTargets
from shapeofmotion_ns.trajectories import draw_trajectories, sample_trajectories
from splat4d.dynamic_model import DynamicSplatModel, DynamicSplatModelConfig, RenderGaussians
from splat4d.optim import run_steps

MOTION_GROUPS = {"motion_rots": "rots", "motion_transls": "transls"}


@dataclass
class ShapeOfMotionModelConfig(DynamicSplatModelConfig):
    _target: Type = field(default_factory=lambda: ShapeOfMotionModel)
    sh_degree: int = 0
    """0: RGB colours (Shape of Motion); > 0: view-dependent spherical harmonics of this degree."""
    background_color: Literal["random", "black", "white"] = "white"
    """Background behind the Gaussians (the reference renders on white)."""
    num_downscales: int = 0
    """Shape of Motion trains at full resolution."""
    output_depth_during_training: bool = True
    """The depth losses need the rendered depth."""
    loss_weights: L.LossWeights = field(default_factory=L.LossWeights)
    """Weights of the loss terms."""
    motion_model: Literal["bases", "per_gaussian_translation"] = "bases"
    """How dynamic Gaussians move. bases: rigidly with a blend of the shared SE(3) motion bases
    (Shape of Motion); per_gaussian_translation: the paper's ablation, a translation per Gaussian
    and time step (Gaussian parameter ``translations``, initialized to the motion of the bases)
    and no rotation."""
    density_control: DensityControlConfig = field(default_factory=DensityControlConfig)
    """Adaptive density control (clone / split / cull / opacity reset); splatfacto's refinement
    fields (warmup_length, densify_grad_thresh, cull_alpha_thresh, ...) are not used."""
    frames_per_step: int = REFERENCE_FRAMES_PER_STEP
    """Training frames rendered per optimizer step, their losses averaged (the reference's batch
    of 8; 1 before issue 13). Needs the shapeofmotion pipeline (recipe.py)."""
    control_schedule: Literal["renders", "steps"] = "renders"
    """renders: density_control's step numbers are steps of 8 frames, as the reference's, and
    are scaled by 8 / frames_per_step, so control sees the reference's number of renders whatever
    the batch; steps: they are training steps as they stand (before issue 13)."""
    static_learning_rates: StaticLearningRates = field(default_factory=StaticLearningRates)
    """Learning rates of the static (background) Gaussians, separate from the dynamic ones' as in
    the reference (static opacities 5e-2)."""


class ShapeOfMotionModel(DynamicSplatModel):
    config: ShapeOfMotionModelConfig

    def populate_modules(self) -> None:
        meta = self.kwargs.get("metadata") or {}
        self.num_time_steps = int(meta.get("num_time_steps", 1))
        self.num_train_frames = len(meta.get("frame_names", ())) or self.num_time_steps
        # without an initialization (ns-eval, ns-render) the checkpoint's shapes are loaded into an empty one
        self.scene_init: SceneInit = meta.get(INIT_KEY) or empty_init(self.num_time_steps)
        init = self.scene_init
        self.register_buffer("norm_rotation", init.normalization.rotation.float())
        self.register_buffer("norm_centre", init.normalization.centre.float())
        self.register_buffer("norm_scale", torch.tensor(float(init.normalization.scale)))
        self.register_buffer("static_extent", torch.tensor(float(init.static_extent)))
        super().populate_modules()
        bases = {"rots": Parameter(init.rots.float()), "transls": Parameter(init.transls.float())}
        self.motion_bases = torch.nn.ParameterDict(bases if self.uses_bases else {})
        del self.scene_init  # the parameters hold it now
        self.viewer_control = ViewerControl()  # gives the viser scene once a viewer runs
        self.viewer_show_trajectories = ViewerCheckbox(
            "Show trajectories",
            False,
            cb_hook=self.show_trajectories,
            hint="3D trajectories of a sample of dynamic Gaussians",
        )
        self.viewer_num_trajectories = ViewerSlider(
            "Trajectories shown", 200, 10, 2000, 10, cb_hook=self.show_trajectories
        )
        self.trajectory_handles: List = []
        self.masked_lpips = MaskedLPIPS()  # built on first use, when its weights are local

    # ----- parameters -----
    def initial_gaussians(self) -> Dict[str, Parameter]:
        init = self.scene_init
        colors = init.colors.clamp(1e-4, 1 - 1e-4)
        dc = RGB2SH(colors) if self.config.sh_degree > 0 else torch.logit(colors)
        return {
            "means": Parameter(init.means.float()),
            "scales": Parameter(init.log_scales.float()),
            "quats": Parameter(init.quats.float()),
            "features_dc": Parameter(dc.float()),
            "features_rest": Parameter(torch.zeros(len(init.means), num_sh_bases(self.config.sh_degree) - 1, 3)),
            "opacities": Parameter(torch.logit(init.opacities.float())[:, None]),
            "is_dynamic": Parameter(init.is_dynamic.float(), requires_grad=False),
            **self.initial_motion(),
        }

    def initial_motion(self) -> Dict[str, Parameter]:
        """Motion coefficient logits, or the per-time-step translations the bases give (0 for
        static Gaussians)."""
        init = self.scene_init
        if self.uses_bases:
            return {"motion_coefs": Parameter(init.coef_logits.float())}
        moved = displacements_from_bases(init.means, init.coef_logits, init.rots, init.transls)
        return {"translations": Parameter((moved * init.is_dynamic[:, None, None]).float())}

    def load_state_dict(self, state_dict, **kwargs):  # type: ignore[override]
        """Resize every Gaussian and motion-basis parameter to the checkpoint's shapes first."""
        self.step = 30000
        for prefix, params in (("gauss_params.", self.gauss_params), ("motion_bases.", self.motion_bases)):
            for name, param in params.items():
                shape = state_dict[prefix + name].shape
                params[name] = Parameter(torch.zeros(shape, device=param.device), requires_grad=param.requires_grad)
        result = torch.nn.Module.load_state_dict(self, state_dict, **kwargs)
        self.strategy.static_scale = float(self.static_extent)
        return result

    def get_gaussian_param_groups(self) -> Dict[str, List[Parameter]]:
        return {name: [param] for name, param in self.gauss_params.items()}  # gsplat's ops need them all

    def get_param_groups(self) -> Dict[str, List[Parameter]]:
        groups = super().get_param_groups()
        for group, name in MOTION_GROUPS.items():
            if name in self.motion_bases:
                groups[group] = [self.motion_bases[name]]
        return groups

    def build_strategy(self) -> ShapeOfMotionStrategy:
        cfg = self.config
        if cfg.frames_per_step < 1:
            raise ValueError(f"frames_per_step must be at least 1, got {cfg.frames_per_step}")
        step_scale = REFERENCE_FRAMES_PER_STEP / cfg.frames_per_step if cfg.control_schedule == "renders" else 1.0
        strategy = ShapeOfMotionStrategy(
            cfg.density_control,
            num_frames=self.num_train_frames,
            static_scale=float(self.static_extent),
            step_scale=step_scale,
        )
        CONSOLE.log(
            f"Shape of Motion: {cfg.frames_per_step} frames per step; opacity reset every "
            f"{strategy.reset_every} steps; densification pauses {strategy.densify_pause} and culling "
            f"{strategy.cull_pause} steps after each reset"
        )
        self._step_infos: List[Dict] = []
        self._infos_step = -1
        self._lr_hooks: Optional[List] = None
        return strategy

    def get_training_callbacks(self, attributes: TrainingCallbackAttributes) -> List[TrainingCallback]:
        if attributes.trainer is not None:
            self.strategy.run_steps = total = run_steps(attributes.trainer)
            for step in (s for s in self.strategy.reset_steps() if s > total / 2):
                CONSOLE.log(
                    f"[yellow]Shape of Motion: the opacity reset at step {step} comes at {step / total:.0%} of "
                    f"this {total}-step run and leaves {total - step} steps to recover; "
                    "--pipeline.model.density-control.no-reset-after-fraction 0.5 skips resets in its second half"
                )
        return super().get_training_callbacks(attributes)

    def step_cb(self, optimizers, step) -> None:
        """As splatfacto's; the first time, also installs the static Gaussians' learning rates."""
        super().step_cb(optimizers, step)
        if self._lr_hooks is None:
            is_static = lambda: self.gauss_params["is_dynamic"].detach() <= 0.5  # noqa: E731
            self._lr_hooks = install_static_learning_rates(
                self.config.static_learning_rates, self.optimizers, is_static
            )

    def step_post_backward(self, step: int) -> None:
        """Density control over all the frames rendered in this step."""
        assert step == self.step
        infos = self._step_infos if self._infos_step == self.step and self._step_infos else [self.info]
        self.strategy.step_post_backward(
            params=self.gauss_params,
            optimizers=self.optimizers,
            state=self.strategy_state,
            step=self.step,
            info=merge_render_infos(infos),
        )
        self._step_infos = []

    # ----- motion -----
    @property
    def uses_bases(self) -> bool:
        return self.config.motion_model == "bases"

    @property
    def dynamic_ids(self) -> Tensor:
        return (self.gauss_params["is_dynamic"].detach() > 0.5).nonzero().squeeze(-1)

    def frame_of(self, t: Tensor) -> Tensor:
        """Fractional time step of the dataparser's normalized time."""
        return t * (self.num_time_steps - 1)

    def dynamic_poses(self, frames: Tensor) -> Tuple[Tensor, Tensor]:
        """Means [G, K, 3] and quats [G, K, 4] of the dynamic Gaussians at K frames (normalized frame)."""
        ids = self.dynamic_ids
        means, quats = self.means[ids], self.quats[ids]
        if not self.uses_bases:  # μ_f = μ_0 + d_f, no rotation
            moved = means[:, None] + interpolate_frames(self.gauss_params["translations"][ids], frames)
            return moved, F.normalize(quats, dim=-1)[:, None].expand(-1, len(frames), -1)
        bases = bases_at(self.motion_bases["rots"], self.motion_bases["transls"], frames)
        R, t = blend(self.gauss_params["motion_coefs"][ids], *bases)
        return move_means(means, R, t), move_quats(quats, R)

    @property
    def normalization(self) -> SceneNormalization:
        return SceneNormalization(self.norm_rotation, self.norm_centre, self.norm_scale)

    def positions_at(self, frames: Tensor) -> Tensor:
        """World positions [N, K, 3] of all Gaussians at K frames."""
        means = self.means[:, None].expand(-1, len(frames), -1).clone()
        moved, _ = self.dynamic_poses(frames)
        means[self.dynamic_ids] = moved
        return self.normalization.points_to_world(means)

    def gaussians_at(self, t: float) -> RenderGaussians:
        frame = self.frame_of(torch.tensor([t], device=self.device))
        static = self.static_gaussians()
        means, quats = static.means.clone(), F.normalize(static.quats, dim=-1).clone()
        moved_means, moved_quats = self.dynamic_poses(frame)
        ids = self.dynamic_ids
        means[ids], quats[ids] = moved_means[:, 0], moved_quats[:, 0]
        quats = quat_multiply(matrix_to_quat(self.norm_rotation.T), quats)  # q_world = quat(Rᵀ) ⊗ q
        return RenderGaussians(
            means=self.normalization.points_to_world(means),
            quats=quats,
            scales=static.scales * self.norm_scale,
            opacities=static.opacities,
            colors=static.colors,
            sh_degree=static.sh_degree,
        )

    # ----- viewer -----
    @torch.no_grad()
    def show_trajectories(self, element=None) -> None:
        """(Re)draws the trajectories when ticked, removes them when not; nothing without a viewer."""
        server = getattr(self.viewer_control, "viser_server", None)
        if server is None:
            return
        for handle in self.trajectory_handles:
            handle.remove()
        self.trajectory_handles = []
        ids = self.dynamic_ids
        if not self.viewer_show_trajectories.value or len(ids) == 0:
            return
        from nerfstudio.viewer.viewer import VISER_NERFSTUDIO_SCALE_RATIO  # the viewer's world scale

        moved, _ = self.dynamic_poses(torch.arange(self.num_time_steps, device=self.device))
        sample = sample_trajectories(
            self.normalization.points_to_world(moved).cpu(),
            torch.sigmoid(self.opacities[ids, 0]).cpu(),
            int(self.viewer_num_trajectories.value),
        )
        self.trajectory_handles = draw_trajectories(server.scene, sample, VISER_NERFSTUDIO_SCALE_RATIO)

    # ----- rendering -----
    def get_outputs(self, camera):
        """Renders like the base model; in training also the camera centre (``camera_centre``, for
        the regularizers)."""
        centre = camera.camera_to_worlds[0, :3, 3].to(self.device)
        outputs = super().get_outputs(camera)
        if self.training:  # every render of the step goes to the density control
            outputs["camera_centre"] = centre
            if self._infos_step != self.step:
                self._step_infos, self._infos_step = [], self.step
            self._step_infos.append(self.info)
        return outputs

    def prepare_for_render(self, gaussians: RenderGaussians, camera: Cameras, viewmats: Tensor) -> RenderGaussians:
        """Adds the dynamic flag and, with track targets (``camera.metadata["track_targets"]``),
        each target's camera-space positions."""
        targets: Optional[TrackTargets] = (camera.metadata or {}).get("track_targets")
        if not self.training and targets is None:
            return gaussians
        channels = [self.gauss_params["is_dynamic"].detach()[:, None]]
        if targets is not None:
            world = self.positions_at(self.frame_of(targets.times))  # [N, K, 3]
            cam = torch.einsum("kij,nkj->nki", targets.viewmats[:, :3, :3], world) + targets.viewmats[:, :3, 3]
            channels.append(cam.flatten(1))
        return gaussians.with_features(channels, viewmats)

    def track_points(self, outputs: Dict[str, Tensor], query_xy: Tensor) -> Tensor:
        """Rendered target-camera positions [K, P, 3] (world units) at query pixels [P, 2]."""
        maps = outputs["features"][..., 1:]
        points = sample_image(maps, query_xy)  # [P, 3K]
        return points.reshape(len(query_xy), -1, 3).transpose(0, 1)

    # ----- evaluation -----
    def get_image_metrics_and_images(self, outputs, batch):
        """The base metrics plus DyCheck's masked mPSNR / mSSIM / mLPIPS (when the LPIPS weights
        are local) over the valid pixels, restricted to the ones the training camera saw when the
        batch has a ``covisible_mask``."""
        metrics, images = super().get_image_metrics_and_images(outputs, batch)
        mask = torch.ones_like(outputs["rgb"][..., 0])
        for key in ("mask", "covisible_mask"):
            if key in batch:
                mask = mask * batch[key][..., 0].to(mask)
        gt = self.composite_with_background(self.get_gt_img(batch["image"]), outputs["background"])
        metrics["mpsnr"] = float(masked_psnr(outputs["rgb"], gt, mask))
        metrics["mssim"] = float(masked_ssim(outputs["rgb"], gt, mask))
        if self.masked_lpips.available:
            metrics["mlpips"] = float(self.masked_lpips(outputs["rgb"], gt, mask))
        return metrics, images

    # ----- losses -----
    def downscale_prior(self, prior: Tensor) -> Tensor:
        """A batch prior [H, W, ...] at the render resolution (nearest pixel)."""
        d = self._get_downscale_factor()
        if d == 1:
            return prior
        H, W = prior.shape[0] // d, prior.shape[1] // d
        return prior[d // 2 :: d, d // 2 :: d][:H, :W]

    def get_loss_dict(self, outputs, batch, metrics_dict=None) -> Dict[str, Tensor]:
        w = self.config.loss_weights
        background = outputs["background"]
        valid = self.downscale_prior(batch["mask"]).to(self.device) if "mask" in batch else None
        gt = self.get_gt_img(batch["image"])[..., :3]
        pred = outputs["rgb"]
        if valid is not None:  # invalid pixels show the background in both
            gt = torch.where(valid, gt, background)
            pred = torch.where(valid, pred, background)
        losses = {"rgb_loss": w.w_rgb * L.rgb_loss(pred, gt, self.ssim)}
        if not self.training:
            return losses
        valid = valid[..., 0] if valid is not None else torch.ones_like(pred[..., 0], dtype=torch.bool)
        if "motion_mask" in batch:
            motion = self.downscale_prior(batch["motion_mask"]).to(self.device)[..., 0] * valid
            alpha, dynamic = outputs["accumulation"][..., 0], outputs["features"][..., 0]
            losses["mask_loss"] = w.w_mask * L.mask_loss(alpha, dynamic, motion)
        if "depth_image" in batch and outputs["depth"] is not None:
            prior = self.downscale_prior(batch["depth_image"]).to(self.device)[..., 0] / self.norm_scale
            depth = outputs["depth"][..., 0] / self.norm_scale
            known = valid & (prior > 0)
            losses["depth_loss"] = w.w_depth_reg * L.disparity_loss(depth, prior, known)
            losses["depth_gradient_loss"] = w.w_depth_grad * L.depth_gradient_loss(depth, prior, known)
        if "track_batch" in batch:
            image_size = batch["image"].shape[:2]
            losses.update(
                track_losses(
                    self, outputs, batch["track_batch"], outputs["time"], pred.shape[1] / image_size[1], max(image_size)
                )
            )
        losses.update(regularizers(self, outputs["time"], outputs["camera_centre"]))
        return losses
