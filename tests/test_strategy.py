"""gsplat's DefaultStrategy densifies and prunes on CPU from the info our rasterizer returns."""

import pytest
import torch
from gsplat.strategy import DefaultStrategy

from splat4d import rasterize
from splat4d.random_scene import random_scene


@pytest.mark.parametrize("absgrad", [False, True])
def test_default_strategy_cycle_on_cpu(absgrad):
    s = random_scene(600, 64, 48, n_cameras=2, seed=9)
    params = torch.nn.ParameterDict(
        {
            "means": s.means,
            "scales": torch.log(s.scales),
            "quats": s.quats,
            "opacities": torch.logit(s.opacities),
            "colors": s.colors,
        }
    )
    optimizers = {k: torch.optim.Adam([p], lr=1e-3) for k, p in params.items()}
    strategy = DefaultStrategy(
        refine_start_iter=1,
        refine_every=2,
        reset_every=1000,
        prune_opa=0.2,
        grow_grad2d=1e-6 if not absgrad else 1e-5,
        absgrad=absgrad,
        verbose=False,
    )
    strategy.check_sanity(params, optimizers)
    state = strategy.initialize_state(scene_scale=1.0)
    target = torch.rand(2, 48, 64, 3)
    n_start = len(params["means"])
    for step in range(4):
        render, _, info = rasterize(
            params["means"],
            params["quats"],
            torch.exp(params["scales"]),
            torch.sigmoid(params["opacities"]),
            params["colors"],
            s.viewmats,
            s.Ks,
            s.width,
            s.height,
            absgrad=absgrad,
        )
        strategy.step_pre_backward(params, optimizers, state, step, info)
        loss = (render - target).abs().mean()
        loss.backward()
        grad = info["means2d"].absgrad if absgrad else info["means2d"].grad
        assert grad is not None and grad.shape == (2, 600 if step < 2 else grad.shape[1], 2)
        strategy.step_post_backward(params, optimizers, state, step, info, packed=False)
        for opt in optimizers.values():
            opt.step()
            opt.zero_grad(set_to_none=True)
    n_end = len(params["means"])
    assert n_end != n_start
    # every parameter and its Adam moments were resized together
    for name, p in params.items():
        assert p.shape[0] == n_end
        adam_state = optimizers[name].state[p]
        assert adam_state["exp_avg"].shape == p.shape and adam_state["exp_avg_sq"].shape == p.shape
    assert state["grad2d"] is None or state["grad2d"].shape[0] == n_end
