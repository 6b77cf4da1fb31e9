"""``ns-train shapeofmotion``: Shape of Motion with the ``iphone`` dataparser.

Learning rates are the reference's foreground ones (static and dynamic Gaussians share one
optimizer per parameter; the reference gives static opacities 5e-2); scales decay to 10% over
training, as in the reference. The per-Gaussian translations of the motion-model ablation use the
bases' translation rate. Runs on CUDA (gsplat) when available, else on the CPU backend.
"""

from __future__ import annotations

import torch
from nerfstudio.configs.base_config import MachineConfig, ViewerConfig
from nerfstudio.engine.schedulers import ExponentialDecaySchedulerConfig
from nerfstudio.engine.trainer import TrainerConfig
from nerfstudio.pipelines.base_pipeline import VanillaPipelineConfig
from nerfstudio.plugins.types import MethodSpecification

from dataparsers.iphone.dataparser import IPhoneDataParserConfig
from shapeofmotion_ns.datamanager import ShapeOfMotionDatamanagerConfig
from shapeofmotion_ns.model import ShapeOfMotionModelConfig
from splat4d.optim import adam

MAX_STEPS = 30000


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
        pipeline=VanillaPipelineConfig(
            datamanager=ShapeOfMotionDatamanagerConfig(dataparser=IPhoneDataParserConfig(), cache_images_type="uint8"),
            model=ShapeOfMotionModelConfig(),
        ),
        optimizers={
            "means": adam(1.6e-4),
            "scales": adam(5e-3, ExponentialDecaySchedulerConfig(lr_final=5e-4, max_steps=MAX_STEPS)),
            "quats": adam(1e-3),
            "features_dc": adam(1e-2),
            "features_rest": adam(1e-2 / 20),
            "opacities": adam(1e-2),
            "motion_coefs": adam(1e-2),
            "is_dynamic": adam(0.0),  # a flag; gsplat's ops need an optimizer for every Gaussian parameter
            "motion_rots": adam(1.6e-4),
            "motion_transls": adam(1.6e-4),
            "translations": adam(1.6e-4),  # per-Gaussian translations (motion_model="per_gaussian_translation")
            "camera_opt": adam(1e-4, ExponentialDecaySchedulerConfig(lr_final=5e-7, max_steps=MAX_STEPS)),
            "bilateral_grid": adam(2e-3, ExponentialDecaySchedulerConfig(lr_final=1e-4, max_steps=MAX_STEPS)),
        },
        viewer=ViewerConfig(num_rays_per_chunk=1 << 15),
        vis="viewer",
    ),
    description="Shape of Motion: dynamic Gaussians moved by shared SE(3) motion bases (monocular video, iphone data)",
)
