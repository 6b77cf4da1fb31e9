"""``ns-train shapeofmotion``: Shape of Motion with the ``iphone`` dataparser.

The reference's recipe (flow3d/configs.py, flow3d/trainer.py, run_training.py): Adam with
torch's default eps 1e-8, the foreground learning rates below for the dynamic Gaussians and the
background ones for the static Gaussians (``pipeline.model.static_learning_rates``: opacities
5e-2), scales decaying to 10% over the reference's 5,000 steps, 8 frames per step
(``pipeline.model.frames_per_step``). The per-Gaussian translations of the motion-model ablation
use the bases' translation rate. :func:`pre_issue13_recipe` restores the recipe before issue 13
(1 frame per step, one set of rates, eps 1e-15, scales decaying over all 30k steps, opacities
clamped, splits sampled). Runs on CUDA (gsplat) when available, else on the CPU backend.
"""

from __future__ import annotations

import torch
from nerfstudio.configs.base_config import MachineConfig, ViewerConfig
from nerfstudio.engine.schedulers import ExponentialDecaySchedulerConfig
from nerfstudio.engine.trainer import TrainerConfig
from nerfstudio.plugins.types import MethodSpecification

from dataparsers.iphone.dataparser import IPhoneDataParserConfig
from shapeofmotion_ns.datamanager import ShapeOfMotionDatamanagerConfig
from shapeofmotion_ns.model import ShapeOfMotionModelConfig
from shapeofmotion_ns.recipe import ShapeOfMotionPipelineConfig
from splat4d.optim import adam

MAX_STEPS = 30000
REFERENCE_ADAM_EPS = 1e-8  # torch.optim.Adam's default, which the reference uses
SCALE_DECAY_STEPS = 5000  # flow3d/configs.py OptimizerConfig.max_steps: scales decay to 10% over it


def ref_adam(lr: float, scheduler=None) -> dict:
    return adam(lr, scheduler, eps=REFERENCE_ADAM_EPS)


shapeofmotion = MethodSpecification(
    config=TrainerConfig(
        method_name="shapeofmotion",
        steps_per_eval_image=100,
        steps_per_eval_batch=0,
        steps_per_save=2000,
        steps_per_eval_all_images=1000,
        max_num_iterations=MAX_STEPS,
        mixed_precision=False,
        machine=MachineConfig(device_type="cuda" if torch.cuda.is_available() else "cpu"),
        pipeline=ShapeOfMotionPipelineConfig(
            datamanager=ShapeOfMotionDatamanagerConfig(dataparser=IPhoneDataParserConfig(), cache_images_type="uint8"),
            model=ShapeOfMotionModelConfig(),
        ),
        optimizers={
            "means": ref_adam(1.6e-4),
            "scales": ref_adam(5e-3, ExponentialDecaySchedulerConfig(lr_final=5e-4, max_steps=SCALE_DECAY_STEPS)),
            "quats": ref_adam(1e-3),
            "features_dc": ref_adam(1e-2),
            "features_rest": ref_adam(1e-2 / 20),
            "opacities": ref_adam(1e-2),
            "motion_coefs": ref_adam(1e-2),
            "is_dynamic": ref_adam(0.0),  # a flag; gsplat's ops need an optimizer for every Gaussian parameter
            "motion_rots": ref_adam(1.6e-4),
            "motion_transls": ref_adam(1.6e-4),
            "translations": ref_adam(1.6e-4),  # per-Gaussian translations (motion_model="per_gaussian_translation")
            "camera_opt": adam(1e-4, ExponentialDecaySchedulerConfig(lr_final=5e-7, max_steps=MAX_STEPS)),
            "bilateral_grid": adam(2e-3, ExponentialDecaySchedulerConfig(lr_final=1e-4, max_steps=MAX_STEPS)),
        },
        viewer=ViewerConfig(num_rays_per_chunk=1 << 15),
        vis="viewer",
    ),
    description="Shape of Motion: dynamic Gaussians moved by shared SE(3) motion bases (monocular video, iphone data)",
)


def pre_issue13_recipe(config: TrainerConfig) -> TrainerConfig:
    """``config`` (a shapeofmotion TrainerConfig, changed in place and returned) with the recipe
    this plugin used before issue 13: 1 frame per step with the control schedule in training
    steps, one set of learning rates, Adam eps 1e-15, scales decaying over 30k steps, opacity
    resets that clamp and splits that sample their means."""
    model = config.pipeline.model
    model.frames_per_step, model.control_schedule = 1, "steps"
    model.static_learning_rates.enabled = False
    model.density_control.opacity_reset, model.density_control.split_mode = "clamp", "sample"
    for entry in config.optimizers.values():
        entry["optimizer"].eps = 1e-15
    config.optimizers["scales"]["scheduler"].max_steps = MAX_STEPS
    return config
