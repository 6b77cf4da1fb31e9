"""SharpTimeGS densification: AbsGS for the first stage, then lifespan-velocity-aware
relocation at a fixed Gaussian count.

Stage 1 (first ``stage1_fraction`` of training): gsplat's DefaultStrategy with absgrad
(AbsGS clone/split/prune, opacity resets). At its end the count N is recorded; in stage 2 the
canonical times are frozen (the model detaches them), opacity resets stop, and every
``refine_every`` steps the Gaussians with opacity < ``relocate_opacity`` are removed and the
count is brought back to exactly N by cloning (small) or splitting (large) the top-scored ones,
with s = λe·E + λo·O + λl·(1 − exp(−(‖v‖ + 1)/f)) (:func:`sharptime_ns.temporal.densification_score`;
E: blend-weighted render error accumulated since the last refinement from the ``error_probe`` of
each render's info, splat4d/strategy_info.py). When more Gaussians are removed than remain, the top-scored are
copied in rounds (each round copies at most every current Gaussian once, copies included), so
the count holds whatever fraction is transparent. gsplat's ops keep every parameter and its
Adam state in step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Tuple

import torch
from gsplat.strategy import DefaultStrategy, Strategy
from gsplat.strategy.ops import duplicate, remove, split
from torch import Tensor

from sharptime_ns import temporal
from splat4d.strategy_info import ERROR_PROBE, SUBSET_IDS


@dataclass
class SharpTimeStrategy(Strategy):
    absgs: DefaultStrategy
    total_steps: int
    stage1_fraction: float = 1.0 / 3.0
    custom_densification: bool = True
    refine_every: int = 100
    relocate_opacity: float = 0.005
    grow_scale3d: float = 0.01
    score_weights: Tuple[float, float, float] = (1.0, 0.5, 0.5)  # (λe, λo, λl)
    learn_radius: bool = True  # False: r ≡ 0 in the score's f(σt, r), as in the model

    @property
    def stage2_start(self) -> int:
        return int(self.total_steps * self.stage1_fraction)

    def in_stage2(self, step: int) -> bool:
        return self.custom_densification and step >= self.stage2_start

    @property
    def absgrad(self) -> bool:
        return self.absgs.absgrad

    def initialize_state(self, scene_scale: float = 1.0) -> Dict[str, Any]:
        return {
            "absgs": self.absgs.initialize_state(scene_scale),
            "scene_scale": scene_scale,
            "error": None,
            "error_count": None,
            "fixed_count": None,
            "relocated": 0,
        }

    def check_sanity(self, params, optimizers) -> None:
        self.absgs.check_sanity(params, optimizers)

    def step_pre_backward(self, params, optimizers, state, step: int, info: Dict[str, Any]) -> None:
        if not self.in_stage2(step):
            self.absgs.step_pre_backward(params, optimizers, state["absgs"], step, info)

    def step_post_backward(
        self, params, optimizers, state, step: int, info: Dict[str, Any], packed: bool = False
    ) -> None:
        if not self.in_stage2(step):  # AbsGS is never called past the start of stage 2
            self.absgs.step_post_backward(params, optimizers, state["absgs"], step, info, packed)
            return
        n = len(params["means"])
        if state["fixed_count"] is None:
            state["fixed_count"] = n
            state["error"] = torch.zeros(n, device=params["means"].device)
            state["error_count"] = torch.zeros(n, device=params["means"].device)
        self._accumulate_error(state, info)
        if step % self.refine_every == 0 and step < self.total_steps - self.refine_every:
            self._relocate(params, optimizers, state)

    @torch.no_grad()
    def _accumulate_error(self, state: Dict[str, Any], info: Dict[str, Any]) -> None:
        probe = info.get(ERROR_PROBE)
        if probe is None or probe.grad is None:
            return
        per_gaussian = probe.grad.squeeze(-1)  # [rendered Gaussians]
        ids = info.get(SUBSET_IDS)
        if ids is None:
            ids = torch.arange(len(per_gaussian), device=per_gaussian.device)
        state["error"].index_add_(0, ids, per_gaussian)
        state["error_count"].index_add_(0, ids, torch.ones_like(per_gaussian))

    @torch.no_grad()
    def _relocate(self, params, optimizers, state: Dict[str, Any]) -> int:
        """Replace the low-opacity Gaussians by clones/splits of the top-scored ones, back to
        ``state["fixed_count"]`` Gaussians. Returns how many were replaced."""
        ops_state = {k: state[k] for k in ("error", "error_count")}
        low = torch.sigmoid(params["opacities"].flatten()) < self.relocate_opacity
        n_low = int(low.sum())
        if n_low == len(low):  # nothing left to copy from
            return 0
        if n_low > 0:
            remove(params, optimizers, ops_state, low)
        missing = state["fixed_count"] - len(params["means"])
        replaced = missing
        while missing > 0:  # one Gaussian more per chosen one (clone: +1; split: 2 replace 1)
            score = self.score(params, ops_state["error"] / ops_state["error_count"].clamp(min=1))
            chosen = torch.zeros_like(score, dtype=torch.bool)
            chosen[torch.topk(score, min(missing, len(score))).indices] = True
            self._grow(params, optimizers, ops_state, chosen, state["scene_scale"])
            missing -= int(chosen.sum())
        state["error"] = torch.zeros(len(params["means"]), device=params["means"].device)
        state["error_count"] = torch.zeros_like(state["error"])
        state["relocated"] += replaced
        return replaced

    def score(self, params, error: Tensor) -> Tensor:
        """The densification score [N] of every Gaussian, given its mean accumulated error [N]."""
        return temporal.densification_score(
            error,
            torch.sigmoid(params["opacities"]).squeeze(-1),
            params["velocities"],
            torch.exp(params["log_tscales"]),
            temporal.temporal_radius(params["log_tradii"], self.learn_radius),
            self.score_weights,
        )

    def _grow(self, params, optimizers, ops_state: Dict[str, Tensor], chosen: Tensor, scene_scale: float) -> None:
        """Clone the chosen small Gaussians and split the chosen large ones (one more each)."""
        large = torch.exp(params["scales"]).max(dim=-1).values > self.grow_scale3d * scene_scale
        if (chosen & ~large).any():
            duplicate(params, optimizers, ops_state, chosen & ~large)
        is_split = torch.cat(
            [chosen & large, torch.zeros(len(params["means"]) - len(chosen), dtype=torch.bool, device=chosen.device)]
        )
        if is_split.any():
            split(params, optimizers, ops_state, is_split)
