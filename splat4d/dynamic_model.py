"""Time-conditioned Gaussian splatting model shared by SharpTimeGS and Shape of Motion.

It keeps splatfacto's training features (SH schedule, L1+SSIM loss, background handling,
crop box, resolution schedule, camera optimizer, depth output) and changes four things:
- rendering goes through ``splat4d.rasterize`` (gsplat on CUDA, our compiled kernel on CPU);
- the device is the model's: nothing calls ``.cuda()``;
- each render happens at ``camera.times`` (t = 0, said once in the log, when a caller such as
  ``ns-render interpolate`` sends no times); subclasses say where the Gaussians are at t by
  overriding :meth:`DynamicSplatModel.gaussians_at`;
- LPIPS is built lazily and left out when its weights are not on this machine.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple, Type, Union

import torch
from gsplat.strategy import DefaultStrategy
from nerfstudio.cameras.cameras import Cameras
from nerfstudio.model_components.lib_bilagrid import BilateralGrid
from nerfstudio.models.base_model import Model
from nerfstudio.models.splatfacto import (
    RGB2SH,
    SplatfactoModel,
    SplatfactoModelConfig,
    get_viewmat,
    num_sh_bases,
    random_quat_tensor,
)
from nerfstudio.utils.colors import get_color
from nerfstudio.utils.rich_utils import CONSOLE
from pytorch_msssim import SSIM
from torch import Tensor
from torch.nn import Parameter

from splat4d.metrics import LazyLPIPS, image_metrics, psnr
from splat4d.rasterization import Backend, rasterize
from splat4d.sh import view_dependent_colors
from splat4d.strategy_info import SUBSET_IDS, packed_info_for_subset, render_info

# The viewer's default background (splatfacto uses it when the training background is random).
VIEWER_BACKGROUND = (0.1490, 0.1647, 0.2157)


@dataclass
class RenderGaussians:
    """Activated Gaussian attributes at one time, ready for the rasterizer."""

    means: Tensor  # [N, 3]
    quats: Tensor  # [N, 4]
    scales: Tensor  # [N, 3] (after exp)
    opacities: Tensor  # [N] (after sigmoid and any temporal factor)
    colors: Tensor  # [N, K, 3] SH coefficients, or [N, D] features when sh_degree is None
    sh_degree: Optional[int]
    subset_ids: Optional[Tensor] = None  # ids in gauss_params when only a subset is rendered
    loss_inputs: Dict[str, Tensor] = field(default_factory=dict)
    """Per-Gaussian values [N, ...] the training loss reads; training outputs carry them under their keys."""
    error_probe: Optional[Tensor] = None
    """The zero feature channel whose gradient the strategy reads (splat4d/strategy_info.py);
    set by prepare_for_render, after any selection."""

    def select(self, keep: Tensor) -> "RenderGaussians":
        ids = keep.nonzero().squeeze(-1) if keep.dtype == torch.bool else keep
        return RenderGaussians(
            self.means[ids],
            self.quats[ids],
            self.scales[ids],
            self.opacities[ids],
            self.colors[ids],
            self.sh_degree,
            ids if self.subset_ids is None else self.subset_ids[ids],
            {key: value[ids] for key, value in self.loss_inputs.items()},
        )

    def with_features(self, extra: List[Tensor], viewmats: Tensor) -> "RenderGaussians":
        """The colours (SH evaluated for this view) followed by the extra channels [N, k] of
        ``extra``, rendered as plain features."""
        colors = self.colors
        if self.sh_degree is not None:
            colors = view_dependent_colors(self.sh_degree, self.means, colors, viewmats)[0]
        return dataclasses.replace(self, colors=torch.cat([colors, *extra], dim=-1), sh_degree=None)


@dataclass
class DynamicSplatModelConfig(SplatfactoModelConfig):
    _target: Type = field(default_factory=lambda: DynamicSplatModel)
    rasterizer_backend: Backend = "auto"
    """auto: gsplat on CUDA, the compiled kernel on CPU; cpu / reference / gsplat force one."""
    enable_collider: bool = False
    """Rasterization needs no ray near/far collider (nerfstudio's default one breaks on Cameras)."""
    pause_refine_after_reset: int = 0
    """Steps after each opacity reset during which densification is paused. 0 (the default) is
    3DGS / AbsGS: refinement goes on right after a reset. splatfacto pauses for
    ``num_train_data + refine_every`` steps (one image per view, each seen once); with several
    thousand training images (Neural3DV: 19 cameras × 300 frames) that pause outlasts the
    3000-step reset period and stage 1 would never densify, so the pause here is in steps and
    never depends on the image count."""


class DynamicSplatModel(SplatfactoModel):
    config: DynamicSplatModelConfig

    def populate_modules(self) -> None:
        Model.populate_modules(self)
        self.gauss_params = torch.nn.ParameterDict(self.initial_gaussians())
        self.camera_optimizer = self.config.camera_optimizer.setup(num_cameras=self.num_train_data, device="cpu")
        self.psnr = psnr
        self.ssim = SSIM(data_range=1.0, size_average=True, channel=3)
        self.lpips = LazyLPIPS()
        self.step = 0
        self.crop_box = None
        self.background_color = (
            torch.tensor(VIEWER_BACKGROUND)
            if self.config.background_color == "random"
            else get_color(self.config.background_color)
        )
        if self.config.use_bilateral_grid:
            self.bil_grids = BilateralGrid(
                num=self.num_train_data,
                grid_X=self.config.grid_shape[0],
                grid_Y=self.config.grid_shape[1],
                grid_W=self.config.grid_shape[2],
            )
        self.strategy = self.build_strategy()
        self.strategy_state = self.strategy.initialize_state(scene_scale=1.0)
        self._said_no_time = False

    # ----- initialisation and strategy (subclasses extend) -----
    def initial_gaussians(self) -> Dict[str, Parameter]:
        """Splatfacto's initialisation: seed points (or a random box), scales from the mean
        distance to the 3 nearest neighbours, random rotations, opacity 0.1, colour as SH DC."""
        cfg = self.config
        if self.seed_points is not None and not cfg.random_init:
            means = self.seed_points[0].float()
            rgb = self.seed_points[1].float() / 255.0 if self.seed_points[1].shape[0] > 0 else None
        else:
            means = (torch.rand((cfg.num_random, 3)) - 0.5) * cfg.random_scale
            rgb = None
        n = means.shape[0]
        distances, _ = self.k_nearest_sklearn(means, 3)
        log_scales = torch.log(torch.from_numpy(distances).mean(-1, keepdim=True).clamp(min=1e-7)).repeat(1, 3)
        shs = torch.zeros((n, num_sh_bases(cfg.sh_degree), 3))
        if rgb is None:
            shs[:, 0] = torch.rand(n, 3)
        elif cfg.sh_degree > 0:
            shs[:, 0] = RGB2SH(rgb)
        else:
            shs[:, 0] = torch.logit(rgb, eps=1e-10)
        return {
            "means": Parameter(means),
            "scales": Parameter(log_scales),
            "quats": Parameter(random_quat_tensor(n)),
            "features_dc": Parameter(shs[:, 0].contiguous()),
            "features_rest": Parameter(shs[:, 1:].contiguous()),
            "opacities": Parameter(torch.logit(0.1 * torch.ones(n, 1))),
        }

    def build_strategy(self):
        cfg = self.config
        reset_every = cfg.reset_alpha_every * cfg.refine_every
        if cfg.pause_refine_after_reset >= reset_every:
            raise ValueError(
                f"pause_refine_after_reset = {cfg.pause_refine_after_reset} steps is not shorter than the opacity "
                f"reset period (reset_alpha_every × refine_every = {reset_every} steps): densification would never run"
            )
        return DefaultStrategy(
            prune_opa=cfg.cull_alpha_thresh,
            grow_grad2d=cfg.densify_grad_thresh,
            grow_scale3d=cfg.densify_size_thresh,
            grow_scale2d=cfg.split_screen_size,
            prune_scale3d=cfg.cull_scale_thresh,
            prune_scale2d=cfg.cull_screen_size,
            refine_scale2d_stop_iter=cfg.stop_screen_size_at,
            refine_start_iter=cfg.warmup_length,
            refine_stop_iter=cfg.stop_split_at,
            reset_every=reset_every,
            refine_every=cfg.refine_every,
            pause_refine_after_reset=cfg.pause_refine_after_reset,
            absgrad=cfg.use_absgrad,
            revised_opacity=False,
            verbose=False,
        )

    def step_post_backward(self, step: int) -> None:
        assert step == self.step
        info, packed = self.info, False
        if info.get(SUBSET_IDS) is not None:
            info, packed = packed_info_for_subset(info, info[SUBSET_IDS]), True
        self.strategy.step_post_backward(
            params=self.gauss_params,
            optimizers=self.optimizers,
            state=self.strategy_state,
            step=self.step,
            info=info,
            packed=packed,
        )

    # ----- time -----
    def camera_time(self, camera: Cameras) -> float:
        """The render time in the dataparser's normalised [0, 1] sequence time."""
        if camera.times is None:
            if not self._said_no_time:
                CONSOLE.log("[yellow]camera has no time (e.g. ns-render interpolate): rendering at t = 0")
                self._said_no_time = True
            return 0.0
        return float(camera.times.flatten()[0])

    def sh_degree_now(self) -> Optional[int]:
        if self.config.sh_degree == 0:
            return None
        return min(self.step // self.config.sh_degree_interval, self.config.sh_degree)

    def gaussians_at(self, t: float) -> RenderGaussians:
        """Where the Gaussians are at time t. The base model is static."""
        return self.static_gaussians()

    def static_gaussians(self) -> RenderGaussians:
        colors = torch.cat([self.features_dc[:, None, :], self.features_rest], dim=1)
        sh_degree = self.sh_degree_now()
        if sh_degree is None:
            colors = torch.sigmoid(colors[:, 0])
        return RenderGaussians(
            means=self.means,
            quats=self.quats,
            scales=torch.exp(self.scales),
            opacities=torch.sigmoid(self.opacities).squeeze(-1),
            colors=colors,
            sh_degree=sh_degree,
        )

    def prepare_for_render(self, gaussians: RenderGaussians, camera: Cameras, viewmats: Tensor) -> RenderGaussians:
        """Last change before rasterizing (e.g. extra feature channels, an error probe); identity here."""
        return gaussians

    # ----- rendering -----
    def get_outputs(self, camera: Cameras) -> Dict[str, Union[Tensor, List, float]]:
        """The render at the camera's time; in training also ``time`` (that normalized time) and the
        Gaussians' ``loss_inputs``. The strategy's info is kept as ``self.info`` (splat4d/strategy_info.py)."""
        if not isinstance(camera, Cameras):
            raise TypeError(f"get_outputs needs a Cameras object, got {type(camera).__name__}")
        if self.training:
            assert camera.shape[0] == 1, "Only one camera at a time"
            camera_to_world = self.camera_optimizer.apply_to_camera(camera)
        else:
            camera_to_world = camera.camera_to_worlds
        t = self.camera_time(camera)
        gaussians = self.gaussians_at(t)
        if self.crop_box is not None and not self.training:
            inside = self.crop_box.within(gaussians.means).squeeze()
            if inside.sum() == 0:
                return self.get_empty_outputs(
                    int(camera.width.item()), int(camera.height.item()), self.background_color
                )
            gaussians = gaussians.select(inside)

        scale = self._get_downscale_factor()
        camera.rescale_output_resolution(1 / scale)
        viewmat = get_viewmat(camera_to_world)
        K = camera.get_intrinsics_matrices().to(self.device)
        W, H = int(camera.width.item()), int(camera.height.item())
        self.last_size = (H, W)
        camera.rescale_output_resolution(scale)

        gaussians = self.prepare_for_render(gaussians, camera, viewmat)
        render_mode = "RGB+ED" if self.config.output_depth_during_training or not self.training else "RGB"
        render, alpha, raster_info = rasterize(
            means=gaussians.means,
            quats=gaussians.quats,
            scales=gaussians.scales,
            opacities=gaussians.opacities,
            colors=gaussians.colors,
            viewmats=viewmat,
            Ks=K,
            width=W,
            height=H,
            packed=False,
            render_mode=render_mode,
            sh_degree=gaussians.sh_degree,
            absgrad=self.strategy.absgrad,
            rasterize_mode=self.config.rasterize_mode,
            backend=self.config.rasterizer_backend,
        )
        self.info = render_info(raster_info, gaussians.subset_ids, gaussians.error_probe)
        if self.training:
            self.strategy.step_pre_backward(
                self.gauss_params, self.optimizers, self.strategy_state, self.step, self.info
            )

        background = self._get_background_color()
        rgb = torch.clamp(render[..., :3] + (1 - alpha) * background, 0.0, 1.0)
        if self.config.use_bilateral_grid and self.training and camera.metadata and "cam_idx" in camera.metadata:
            rgb = self._apply_bilateral_grid(rgb, camera.metadata["cam_idx"], H, W)
        outputs = {"rgb": rgb.squeeze(0), "accumulation": alpha.squeeze(0), "depth": None}
        channels = 3 if gaussians.sh_degree is not None else gaussians.colors.shape[-1]
        if channels > 3:  # extra feature channels rendered beside RGB
            outputs["features"] = render[0, ..., 3:channels]
        if render_mode == "RGB+ED":
            depth = render[..., channels : channels + 1]
            outputs["depth"] = torch.where(alpha > 0, depth, depth.detach().max()).squeeze(0)
        outputs["background"] = background if self.training else background.expand(H, W, 3)
        if self.training:
            outputs.update(time=t, **gaussians.loss_inputs)
        return outputs

    # ----- evaluation -----
    def get_image_metrics_and_images(
        self, outputs: Dict[str, Tensor], batch: Dict[str, Tensor]
    ) -> Tuple[Dict[str, float], Dict[str, Tensor]]:
        gt = self.composite_with_background(self.get_gt_img(batch["image"]), outputs["background"])
        pred = outputs["rgb"]
        metrics = image_metrics(pred.permute(2, 0, 1)[None], gt.permute(2, 0, 1)[None], self.lpips)
        return metrics, {"img": torch.cat([gt, pred], dim=1)}
