"""Optimizer entries of nerfstudio method configs."""

from typing import Optional

from nerfstudio.engine.optimizers import AdamOptimizerConfig
from nerfstudio.engine.schedulers import SchedulerConfig


def adam(lr: float, scheduler: Optional[SchedulerConfig] = None) -> dict:
    """One ``TrainerConfig.optimizers`` entry: Adam (eps 1e-15, as splatfacto) and a schedule."""
    return {"optimizer": AdamOptimizerConfig(lr=lr, eps=1e-15), "scheduler": scheduler}
