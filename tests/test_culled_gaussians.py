"""gsplat leaves ``means2d`` / ``depths`` / ``conics`` of culled Gaussians (radii 0) uninitialised
on CUDA, where our CPU backend zeroes them: nothing may read them unmasked. Here the culled
entries are filled with NaN after backward, and each strategy (gsplat's DefaultStrategy as
SharpTimeGS's first stage and splatfacto use it, on full and subset renders, and Shape of
Motion's) must leave exactly the Gaussians, Adam state and running state it leaves without."""

import math

import pytest
import torch
from gsplat.strategy import DefaultStrategy

from shapeofmotion_ns.strategy import DensityControlConfig, ShapeOfMotionStrategy
from splat4d import rasterize
from splat4d.random_scene import random_scene
from splat4d.strategy_info import packed_info_for_subset

STEPS = 5


def scene_with_culled_gaussians():
    s = random_scene(400, 64, 48, n_cameras=2, seed=5)
    s.means[:80, 2] -= 10.0  # behind both cameras
    s.means[80:120, 0] += 30.0  # far outside the images
    return s


def fill_culled_with_nan(info) -> None:
    culled = info["radii"] == 0
    assert culled.any() and (~culled).any()
    nan = float("nan")
    info["means2d"].data[culled] = nan  # the values only: .grad / .absgrad are what a strategy may read
    info["depths"] = info["depths"].masked_fill(culled, nan)
    info["conics"] = info["conics"].masked_fill(culled[..., None], nan)


def train(strategy, extra_params, garbage: bool, subset: bool, absgrad: bool):
    torch.manual_seed(0)  # gsplat's split samples new positions
    s = scene_with_culled_gaussians()
    params = torch.nn.ParameterDict(
        {
            "means": s.means,
            "scales": torch.log(s.scales),
            "quats": s.quats,
            "opacities": torch.logit(s.opacities)[:, None],
            "features_dc": s.colors,
            **extra_params(len(s.means)),
        }
    )
    optimizers = {k: torch.optim.Adam([p], lr=1e-3) for k, p in params.items()}
    state = strategy.initialize_state(scene_scale=1.0)
    target = torch.rand(2, 48, 64, 3, generator=torch.Generator().manual_seed(0))
    for step in range(STEPS):
        ids = torch.arange(0, len(params["means"]), 2) if subset else torch.arange(len(params["means"]))
        render, _, info = rasterize(
            params["means"][ids],
            params["quats"][ids],
            torch.exp(params["scales"][ids]),
            torch.sigmoid(params["opacities"][ids, 0]),
            params["features_dc"][ids],
            s.viewmats,
            s.Ks,
            s.width,
            s.height,
            absgrad=absgrad,
            backend="cpu",
        )
        strategy.step_pre_backward(params, optimizers, state, step, info)
        (render - target).abs().mean().backward()
        if garbage:
            fill_culled_with_nan(info)
        if subset:
            strategy.step_post_backward(params, optimizers, state, step, packed_info_for_subset(info, ids), packed=True)
        else:
            strategy.step_post_backward(params, optimizers, state, step, info, packed=False)
        for opt in optimizers.values():
            opt.step()
            opt.zero_grad(set_to_none=True)
    moments = {k: opt.state[params[k]].get("exp_avg") for k, opt in optimizers.items()}
    return {k: p.detach().clone() for k, p in params.items()}, moments, state


def assert_same(a, b):
    if isinstance(a, (tuple, list)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert_same(x, y)
    elif isinstance(a, dict):
        assert a.keys() == b.keys()
        for key in a:
            assert_same(a[key], b[key])
    elif isinstance(a, torch.Tensor):
        assert torch.equal(a, b)
        assert not a.isnan().any()
    else:
        assert a == b


def no_extra(n):
    return {}


def som_extra(n):
    return {"is_dynamic": torch.nn.Parameter((torch.arange(n) % 2).float(), requires_grad=False)}


@pytest.mark.parametrize("subset", [False, True])
@pytest.mark.parametrize("absgrad", [False, True])
def test_default_strategy_ignores_culled_entries(subset, absgrad):
    def strategy():
        return DefaultStrategy(
            refine_start_iter=1,
            refine_every=2,
            reset_every=1000,
            prune_opa=0.2,
            grow_grad2d=1e-6 if not absgrad else 1e-5,
            absgrad=absgrad,
            verbose=False,
        )

    clean = train(strategy(), no_extra, garbage=False, subset=subset, absgrad=absgrad)
    garbage = train(strategy(), no_extra, garbage=True, subset=subset, absgrad=absgrad)
    assert len(clean[0]["means"]) != 400  # densification / pruning ran
    assert_same(clean, garbage)


def test_shapeofmotion_strategy_ignores_culled_entries():
    def strategy():
        config = DensityControlConfig(
            warmup_steps=0,
            control_every=2,
            reset_opacity_every_n_controls=1000,
            densify_xys_grad_threshold=1e-4,
            densify_scale_threshold=0.03,
            cull_opacity_threshold=0.2,
        )
        return ShapeOfMotionStrategy(config, num_frames=1, static_scale=1.0)

    clean = train(strategy(), som_extra, garbage=False, subset=False, absgrad=False)
    garbage = train(strategy(), som_extra, garbage=True, subset=False, absgrad=False)
    assert len(clean[0]["means"]) != 400
    assert_same(clean, garbage)
    assert not math.isnan(float(clean[2]["radii"].sum()))
