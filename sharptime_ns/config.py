"""``ns-train sharptime``: SharpTimeGS on synchronized multi-view video.

``ns-train sharptime --data DIR`` auto-detects Neural3DV / ENeRF-Outdoor / SelfCap / EasyVolcap
folders; the defaults are the paper's schedule (30k iterations). ``ns-train sharptime-demo`` is the
demo preset (what ``make demo``, the benchmark and the tests train): the synthetic demo scene
(generated on first use in data/sharptime-demo) with a CPU-friendly schedule. Runs on CUDA
(gsplat) when available, else on the CPU backend. Learning rates of the temporal parameters
assume the default time unit (frames).
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

DEMO_STEPS = 3000
"""The demo preset's schedule (CPU-friendly)."""
DEMO_GRAD_THRESH = 0.002
"""The demo preset's AbsGS densification threshold (160×120 images give small screen-space gradients)."""


def sharptime_config(method_name: str = "sharptime") -> TrainerConfig:
    """The paper's configuration (30k steps, every default as the paper)."""
    return TrainerConfig(
        method_name=method_name,
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
    )


def sharptime_demo_config() -> TrainerConfig:
    """The demo preset: the synthetic demo scene (Neural3DV format, trained at its 160×120 instead of
    Neural3DV's half resolution), DEMO_STEPS steps, DEMO_GRAD_THRESH."""
    config = sharptime_config("sharptime-demo")
    config.max_num_iterations = DEMO_STEPS
    config.pipeline.model.densify_grad_thresh = DEMO_GRAD_THRESH
    config.pipeline.datamanager.dataparser.neural3dv.downscale = 1.0  # rendered at the training size
    return config


sharptime = MethodSpecification(
    config=sharptime_config(),
    description="SharpTimeGS: lifespan-modulated 4D Gaussians for multi-view video",
)
sharptime_demo = MethodSpecification(
    config=sharptime_demo_config(),
    description="SharpTimeGS demo preset: the synthetic demo scene with a CPU-friendly schedule",
)
