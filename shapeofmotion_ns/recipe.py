"""Shape of Motion's training recipe beyond the losses (reference: run_training.py, flow3d/trainer.py
and flow3d/configs.py):

- :class:`ShapeOfMotionPipeline` renders ``frames_per_step`` training frames per optimizer step
  (the reference's batch of 8) and averages their losses, as the reference averages over its batch;
- :func:`merge_render_infos` hands the density control every render of the step at once, its
  screen gradients rescaled by the batch size as the reference's control step does;
- :class:`StaticLearningRates` gives the static (background) Gaussians their own learning rates
  while they share one ParameterDict (and one Adam per parameter) with the dynamic ones: Adam's
  update is lr · m̂ / (√v̂ + ε) with m̂, v̂ independent of lr, so multiplying a row's update by
  lr_static / lr_dynamic after the step is Adam with the static learning rate on that row.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, Callable, Dict, List, Optional, Type

import torch
from nerfstudio.pipelines.base_pipeline import VanillaPipeline, VanillaPipelineConfig
from torch import Tensor

REFERENCE_FRAMES_PER_STEP = 8  # run_training.py: batch_size = 8


@dataclass
class StaticLearningRates:
    """Learning rates of the static (background) Gaussians (the reference's BGLRConfig); the
    dynamic ones use the method's ``optimizers`` entries. Schedules multiply both alike."""

    enabled: bool = True
    """False: static Gaussians use the dynamic ones' rates (one set, before issue 13)."""
    means: float = 1.6e-4
    """Static means."""
    opacities: float = 5e-2
    """Static opacity logits (the reference's only rate that differs from the foreground's 1e-2)."""
    scales: float = 5e-3
    """Static log-scales (before the scale schedule)."""
    quats: float = 1e-3
    """Static rotations."""
    features_dc: float = 1e-2
    """Static colours."""


class RowLearningRates:
    """Scales the update an optimizer makes to each row of its parameter by ``row_factors()`` [N]
    (called after the step, on the rows the parameter has then)."""

    def __init__(self, optimizer: torch.optim.Optimizer, row_factors: Callable[[], Tensor]) -> None:
        self.optimizer, self.row_factors = optimizer, row_factors
        self.before: Optional[Tensor] = None
        optimizer.register_step_pre_hook(self._pre)
        optimizer.register_step_post_hook(self._post)

    def param(self) -> Tensor:
        return self.optimizer.param_groups[0]["params"][0]

    def _pre(self, optimizer, args, kwargs) -> None:
        self.before = self.param().detach().clone()

    @torch.no_grad()
    def _post(self, optimizer, args, kwargs) -> None:
        param, before = self.param(), self.before
        self.before = None
        if before is None or before.shape != param.shape:
            return
        factors = self.row_factors().to(param).reshape(-1, *[1] * (param.dim() - 1))
        param.copy_(before + (param - before) * factors)  # Δ_row ← (lr_static / lr) · Δ_row


def install_static_learning_rates(
    config: StaticLearningRates, optimizers: Dict[str, torch.optim.Optimizer], is_static: Callable[[], Tensor]
) -> List[RowLearningRates]:
    """Hooks on the optimizers of the parameters named in ``config`` whose static rate differs
    from the optimizer's (initial) rate; ``is_static()`` gives the current [N] bool flags."""
    hooks = []
    if not config.enabled:
        return hooks
    for name in ("means", "opacities", "scales", "quats", "features_dc"):
        if name not in optimizers:
            continue
        group = optimizers[name].param_groups[0]
        base = float(group.get("initial_lr", group["lr"]))
        ratio = getattr(config, name) / base if base > 0 else 1.0
        if abs(ratio - 1.0) < 1e-12:
            continue
        hooks.append(RowLearningRates(optimizers[name], lambda r=ratio: torch.where(is_static(), r, 1.0)))
    return hooks


def merge_render_infos(infos: List[Dict[str, Any]]) -> Dict[str, Any]:
    """One render info for the frames of a step (all renders of all Gaussians, after backward):
    screen gradients [F·C, N, 2] and radii concatenated, ``n_cameras`` the number of frames F,
    since each frame's loss was divided by F (the reference multiplies by its batch size)."""
    if len(infos) == 1:
        return infos[0]
    grads = [info["means2d"].grad for info in infos]
    grad = None if any(g is None for g in grads) else torch.cat(grads, dim=0)
    return {
        **infos[-1],
        "means2d": SimpleNamespace(grad=grad),
        "radii": torch.cat([i["radii"] for i in infos]),
        "n_cameras": len(infos),
    }


@dataclass
class ShapeOfMotionPipelineConfig(VanillaPipelineConfig):
    _target: Type = field(default_factory=lambda: ShapeOfMotionPipeline)


class ShapeOfMotionPipeline(VanillaPipeline):
    """nerfstudio's pipeline rendering the model's ``frames_per_step`` training frames per step."""

    def get_train_loss_dict(self, step: int):
        frames = int(getattr(self.model.config, "frames_per_step", 1))
        totals: Dict[str, Tensor] = {}
        metrics: Dict[str, Any] = {}
        outputs: Dict[str, Any] = {}
        for _ in range(frames):
            camera, batch = self.datamanager.next_train(step)
            outputs = self._model(camera)
            frame_metrics = self.model.get_metrics_dict(outputs, batch)
            for key, value in self.model.get_loss_dict(outputs, batch, frame_metrics).items():
                totals[key] = totals.get(key, 0.0) + value / frames  # L = (1/F) Σ_f L_f
            for key, value in frame_metrics.items():
                metrics[key] = metrics.get(key, 0.0) + value / frames
        return outputs, totals, metrics
