"""``ns-train sharptime``: SharpTimeGS on synchronized multi-view video.

``ns-train sharptime --data DIR`` auto-detects Neural3DV / ENeRF-Outdoor / SelfCap / EasyVolcap
folders; the defaults are the paper's schedule (30k iterations). With no ``--data`` it trains on
the synthetic demo scene (generated on first use in data/splat4d-demo) with the CPU-friendly
``demo_steps`` schedule. Runs on CUDA (gsplat) when available, else on the CPU backend.
Learning rates of the temporal parameters assume the default time unit (frames).
"""

from __future__ import annotations

import torch
from nerfstudio.configs.base_config import MachineConfig, ViewerConfig
from nerfstudio.engine.schedulers import ExponentialDecaySchedulerConfig
from nerfstudio.engine.trainer import TrainerConfig
from nerfstudio.pipelines.base_pipeline import VanillaPipelineConfig
from nerfstudio.plugins.types import MethodSpecification

from sharptime_ns.datamanager import SharpTimeDatamanagerConfig
from sharptime_ns.model import PAPER_STEPS, SharpTimeModelConfig
from splat4d.optim import adam

sharptime = MethodSpecification(
    config=TrainerConfig(
        method_name="sharptime",
        steps_per_eval_image=500,
        steps_per_eval_batch=0,
        steps_per_save=1000,
        steps_per_eval_all_images=0,
        max_num_iterations=PAPER_STEPS,
        mixed_precision=False,
        machine=MachineConfig(device_type="cuda" if torch.cuda.is_available() else "cpu"),
        pipeline=VanillaPipelineConfig(
            datamanager=SharpTimeDatamanagerConfig(),
            model=SharpTimeModelConfig(),
        ),
        optimizers={
            "means": adam(1.6e-4, ExponentialDecaySchedulerConfig(lr_final=1.6e-6, max_steps=PAPER_STEPS)),
            "features_dc": adam(0.0025),
            "features_rest": adam(0.0025 / 20),
            "opacities": adam(0.05),
            "scales": adam(0.005),
            "quats": adam(0.001),
            "velocities": adam(1.6e-4, ExponentialDecaySchedulerConfig(lr_final=1.6e-6, max_steps=PAPER_STEPS)),
            "times": adam(1e-2),
            "log_tscales": adam(1e-2),
            "log_tradii": adam(1e-2),
            "camera_opt": adam(1e-4, ExponentialDecaySchedulerConfig(lr_final=5e-7, max_steps=PAPER_STEPS)),
            "bilateral_grid": adam(2e-3, ExponentialDecaySchedulerConfig(lr_final=1e-4, max_steps=PAPER_STEPS)),
        },
        viewer=ViewerConfig(num_rays_per_chunk=1 << 15),
        vis="viewer",
    ),
    description="SharpTimeGS: lifespan-modulated 4D Gaussians for multi-view video",
)
