"""Shape of Motion's adaptive density control (reference: Trainer.run_control_steps) as a gsplat
Strategy over one ParameterDict holding static and dynamic Gaussians (flag ``is_dynamic``).

Screen-space gradient norms (in units of half the image size), visibility counts and the largest
screen radius (fraction of the image size) are accumulated every step. Every ``control_every``
steps after ``warmup_steps`` and before ``stop_control_steps``, with R = the opacity reset period:
- densify (before ``stop_densify_steps``, and not in the first ``densify_pause_after_reset``
  steps after a reset; the reference's rule, the default, is ``num_frames`` steps): Gaussians whose mean gradient exceeds the threshold are duplicated when small and
  split in two when large in the world or, before ``stop_control_by_screen_steps``, on screen
  (``split_mode``: the reference copies the Gaussian twice with scales / 1.6; gsplat samples the
  two means from the Gaussian);
- cull (not in the first ``cull_pause_after_reset`` steps after a reset; reference:
  min(3·num_frames, 1000)): opacity below
  ``cull_opacity_threshold``; after the first reset also larger than ``cull_scale_threshold``
  (× ``static_scale`` for static Gaussians) or, before ``stop_control_by_screen_steps``, than
  ``cull_screen_threshold`` of the image;
- every R steps: opacities are reset to 0.8 × ``cull_opacity_threshold`` (``opacity_reset``: the
  reference sets them all to that value; gsplat's reset_opa clamps them to at most it);
then the statistics restart. The config's step numbers are in steps of the reference's batches of
8 frames; ``step_scale`` (8 / frames_per_step by default, see model.py) turns them into training
steps, so the control sees as many renders as the reference's. gsplat's ops move every parameter of the dict (motion coefficients
and flags included) and its Adam state together.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Dict, List, Literal, Optional

import torch
from gsplat.strategy import Strategy
from gsplat.strategy.ops import _update_param_with_optimizer, duplicate, remove, reset_opa, split
from torch import Tensor

SPLIT_SCALE_DIVISOR = 1.6  # both halves of a split get scales / 1.6

REQUIRED_PARAMS = ("means", "scales", "quats", "opacities", "is_dynamic")


@dataclass
class DensityControlConfig:
    """Adaptive density control of Shape of Motion (the reference's defaults; steps are training steps)."""

    warmup_steps: int = 200
    """No control up to this step."""
    control_every: int = 100
    """Steps between control steps."""
    reset_opacity_every_n_controls: int = 30
    """Opacities are reset every this many control steps."""
    stop_control_by_screen_steps: int = 4000
    """Screen-size criteria of splitting and culling stop at this step."""
    stop_control_steps: int = 4000
    """All control (statistics included) stops at this step."""
    densify_xys_grad_threshold: float = 0.0002
    """Mean screen-space gradient norm (in half image sizes) above which a Gaussian is densified."""
    densify_scale_threshold: float = 0.01
    """Largest scale (normalized scene units) above which a densified Gaussian is split, not duplicated."""
    densify_screen_threshold: float = 0.05
    """Largest screen radius (fraction of the image size) above which a densified Gaussian is split."""
    stop_densify_steps: int = 15000
    """Densification stops at this step."""
    cull_opacity_threshold: float = 0.1
    """Gaussians less opaque than this are removed."""
    cull_scale_threshold: float = 0.5
    """Gaussians larger than this (× the static extent for static ones) are removed after the first reset."""
    cull_screen_threshold: float = 0.15
    """Gaussians larger than this fraction of the image are removed (after the first reset)."""
    densify_pause_after_reset: Optional[int] = None
    """Steps after an opacity reset without densification. None: the reference's rule, the number
    of training frames (said in the log; refused when it reaches the reset period, since
    densification would then never run)."""
    cull_pause_after_reset: Optional[int] = None
    """Steps after an opacity reset without culling. None: the reference's min(3 · frames, 1000)."""
    opacity_reset: Literal["set", "clamp"] = "set"
    """set: every opacity becomes 0.8 × cull_opacity_threshold (the reference); clamp: opacities
    above it are lowered to it (gsplat's reset_opa, this plugin's behaviour before issue 13)."""
    no_reset_after_fraction: float = 1.0
    """Opacity resets due after this fraction of the run's steps are skipped, and so are the pauses
    after them. 1.0: the reference, which resets whenever due. Its one reset (step 3000, before
    control stops at 4000) falls in the first 25 % of a 500-epoch run on its captures of 200 frames
    or more, but at 80 % on 60 frames (3750 steps), too late to recover from: there it cost 2.8–3.0
    dB of validation mPSNR (benchmarks/RESULTS.md, issue 13, fifth pass). Training warns when a reset
    falls in the second half of the run."""
    split_mode: Literal["copy", "sample"] = "copy"
    """copy: a split Gaussian becomes two copies of itself with scales / 1.6 (the reference);
    sample: gsplat's split, the two means drawn from the Gaussian (before issue 13)."""


@dataclass
class ShapeOfMotionStrategy(Strategy):
    config: DensityControlConfig
    num_frames: int
    """Training frames; the pauses after an opacity reset are counted in them."""
    static_scale: float = 1.0
    """Multiplies cull_scale_threshold for static Gaussians (the static points' half extent)."""
    absgrad: bool = False  # read by splat4d's DynamicSplatModel when rasterizing

    step_scale: float = 1.0
    """Training steps per step of the config's schedule (every step number of the config, the
    pauses included, is multiplied by it): 8 / frames_per_step keeps the reference's schedule,
    given in steps of 8 rendered frames, at the same number of renders."""

    run_steps: Optional[int] = None
    """Steps of the run, set by the model when training starts; None: every due reset happens."""

    def __post_init__(self) -> None:
        if self.densify_pause >= self.reset_every:
            raise ValueError(
                f"densify_pause_after_reset = {self.densify_pause} steps (None: the number of training frames, "
                f"{self.num_frames}, × step_scale {self.step_scale:g}) is not shorter than the opacity reset period "
                f"({self.reset_every} steps): densification would never run; set "
                "--pipeline.model.density-control.densify-pause-after-reset"
            )

    def steps(self, config_steps: float) -> int:
        """Training steps of a step count of the schedule (at least 1)."""
        return max(1, round(config_steps * self.step_scale))  # steps = config steps × step_scale

    @property
    def reset_every(self) -> int:
        return self.config.reset_opacity_every_n_controls * self.steps(self.config.control_every)

    @property
    def densify_pause(self) -> int:
        pause = self.config.densify_pause_after_reset
        return self.steps(self.num_frames if pause is None else pause)

    @property
    def cull_pause(self) -> int:
        pause = self.config.cull_pause_after_reset
        return self.steps(min(3 * self.num_frames, 1000) if pause is None else pause)

    def last_reset(self, step: int) -> int:
        """The step of the last opacity reset at or before ``step`` (0: none yet)."""
        due = step - step % self.reset_every
        if self.run_steps is None:
            return due
        latest = int(self.config.no_reset_after_fraction * self.run_steps)
        return min(due, latest - latest % self.reset_every)

    def reset_steps(self) -> List[int]:
        """Steps of this run (``run_steps`` set) at which the opacities are reset."""
        end = min(self.steps(self.config.stop_control_steps), self.run_steps or 0)
        return [s for s in range(self.reset_every, end, self.reset_every) if self.last_reset(s) == s]

    def initialize_state(self, scene_scale: float = 1.0) -> Dict[str, Any]:
        return {"grad2d": None, "count": None, "radii": None}

    def check_sanity(self, params, optimizers) -> None:
        missing = [name for name in REQUIRED_PARAMS if name not in params]
        if missing:
            raise ValueError(f"ShapeOfMotionStrategy needs the parameters {missing}")
        without = [name for name in params if name not in optimizers]
        if without:
            raise ValueError(f"parameters {without} have no optimizer (gsplat's ops need one for each)")

    def step_pre_backward(self, params, optimizers, state, step: int, info: Dict[str, Any]) -> None:
        info["means2d"].retain_grad()  # its gradient is read after backward

    def step_post_backward(
        self, params, optimizers, state, step: int, info: Dict[str, Any], packed: bool = False
    ) -> None:
        if packed:
            raise ValueError("ShapeOfMotionStrategy expects renders of all Gaussians (packed=False)")
        cfg = self.config
        if step >= self.steps(cfg.stop_control_steps):
            return
        self._accumulate(params, state, info)
        if step <= self.steps(cfg.warmup_steps) or step % self.steps(cfg.control_every) != 0:
            return
        since_reset = step - self.last_reset(step)
        if step < self.steps(cfg.stop_densify_steps) and since_reset > self.densify_pause:
            self._densify(params, optimizers, state, step)
        if since_reset > self.cull_pause:
            self._cull(params, optimizers, state, step)
        if since_reset == 0:
            self._reset_opacities(params, optimizers, state)
        for key in state:
            state[key].zero_()

    @torch.no_grad()
    def _accumulate(self, params, state: Dict[str, Any], info: Dict[str, Any]) -> None:
        n = len(params["means"])
        if state["grad2d"] is None or len(state["grad2d"]) != n:
            device = params["means"].device
            state.update(
                grad2d=torch.zeros(n, device=device),
                count=torch.zeros(n, device=device),
                radii=torch.zeros(n, device=device),
            )
        grads = info["means2d"].grad
        if grads is None:
            return
        width, height = info["width"], info["height"]
        grads = grads.clone()
        grads[..., 0] *= width / 2.0 * info["n_cameras"]  # to units of half the image size
        grads[..., 1] *= height / 2.0 * info["n_cameras"]
        seen = info["radii"] > 0  # [C, N]
        ids = seen.nonzero()[:, 1]
        state["grad2d"].index_add_(0, ids, grads[seen].norm(dim=-1))
        state["count"].index_add_(0, ids, torch.ones_like(ids, dtype=torch.float32))
        radii = info["radii"][seen].float() / max(width, height)
        state["radii"].scatter_reduce_(0, ids, radii, reduce="amax")

    @torch.no_grad()
    def _densify(self, params, optimizers, state: Dict[str, Tensor], step: int) -> None:
        high = state["grad2d"] / state["count"].clamp(min=1) > self.config.densify_xys_grad_threshold
        large = torch.exp(params["scales"]).amax(dim=-1) > self.config.densify_scale_threshold
        on_screen = self._screen_check(state, self.config.densify_screen_threshold, step)
        to_split = high & (large | on_screen)
        to_duplicate = high & ~large
        if to_duplicate.any():
            duplicate(params, optimizers, state, to_duplicate)
            to_split = torch.cat(
                [to_split, torch.zeros(int(to_duplicate.sum()), dtype=torch.bool, device=to_split.device)]
            )
        if to_split.any():
            (split if self.config.split_mode == "sample" else split_by_copying)(params, optimizers, state, to_split)

    @torch.no_grad()
    def _reset_opacities(self, params, optimizers, state: Dict[str, Tensor]) -> None:
        value = 0.8 * self.config.cull_opacity_threshold
        if self.config.opacity_reset == "clamp":
            reset_opa(params, optimizers, state, value=value)
            return
        logit = float(torch.logit(torch.tensor(value)))

        def param_fn(name: str, p: Tensor) -> Tensor:
            return torch.nn.Parameter(torch.full_like(p, logit))

        _update_param_with_optimizer(
            param_fn, lambda key, v: torch.zeros_like(v), params, optimizers, names=["opacities"]
        )

    @torch.no_grad()
    def _cull(self, params, optimizers, state: Dict[str, Tensor], step: int) -> None:
        cull = torch.sigmoid(params["opacities"]).flatten() < self.config.cull_opacity_threshold
        if step > self.reset_every:
            dynamic = params["is_dynamic"].detach().flatten() > 0.5
            limit = self.config.cull_scale_threshold * torch.where(dynamic, 1.0, self.static_scale)
            cull |= torch.exp(params["scales"]).amax(dim=-1) > limit
            cull |= self._screen_check(state, self.config.cull_screen_threshold, step)
        if cull.any():
            remove(params, optimizers, state, cull)

    def _screen_check(self, state: Dict[str, Tensor], threshold: float, step: int) -> Tensor:
        if step < self.steps(self.config.stop_control_by_screen_steps):
            return state["radii"] > threshold
        return torch.zeros_like(state["radii"], dtype=torch.bool)


@torch.no_grad()
def split_by_copying(params, optimizers, state: Dict[str, Tensor], mask: Tensor) -> None:
    """The reference's split: each masked Gaussian is replaced by two copies of itself (every
    parameter, means included) whose scales are divided by 1.6; their Adam state starts at 0 and
    their running statistics are copied."""
    sel, rest = torch.where(mask)[0], torch.where(~mask)[0]

    def param_fn(name: str, p: Tensor) -> Tensor:
        halves = p[sel].repeat([2] + [1] * (p.dim() - 1))
        if name == "scales":
            halves = halves - math.log(SPLIT_SCALE_DIVISOR)  # log(s / 1.6)
        return torch.nn.Parameter(torch.cat([p[rest], halves]), requires_grad=p.requires_grad)

    def optimizer_fn(key: str, v: Tensor) -> Tensor:
        return torch.cat([v[rest], torch.zeros((2 * len(sel), *v.shape[1:]), device=v.device, dtype=v.dtype)])

    _update_param_with_optimizer(param_fn, optimizer_fn, params, optimizers)
    for key, v in state.items():
        if isinstance(v, Tensor):
            state[key] = torch.cat([v[rest], v[sel].repeat([2] + [1] * (v.dim() - 1))])
