"""SharpTimeGS two-stage densification on a tiny scene: AbsGS first, then relocation at a fixed
count with frozen canonical times, blend-weighted error accumulation and correct Adam state."""

import pytest
import torch
from nerfstudio.cameras.cameras import Cameras
from nerfstudio.data.scene_box import SceneBox
from orbit_cameras import orbit_camera

from sharptime_ns.model import SharpTimeModelConfig
from splat4d.strategy_info import ERROR_PROBE


def make_model(num_train_data: int = 1, **overrides):
    settings = dict(
        rasterizer_backend="reference",
        num_random=400,
        random_scale=1.5,
        total_steps=18,
        stage1_fraction=1 / 3,
        refine_every=2,
        warmup_length=1,
        reset_alpha_every=1000,
        sh_degree=1,
        densify_grad_thresh=1e-7,
        cull_alpha_thresh=0.05,
        num_downscales=0,
        background_color="black",
    )
    cfg = SharpTimeModelConfig(**{**settings, **overrides})
    box = SceneBox(torch.tensor([[-1.0, -1, -1], [1, 1, 1]]))
    return cfg.setup(
        scene_box=box, num_train_data=num_train_data, metadata={"num_frames": 5, "fps": 30.0}, device="cpu"
    )


def camera(i: int, t: float) -> Cameras:
    return orbit_camera(i, t, width=32, height=24, focal=40.0)


def train(model, steps: int):
    optimizers = {name: torch.optim.Adam(params, lr=1e-3) for name, params in model.get_param_groups().items()}

    class Opt:  # what nerfstudio's Optimizers exposes to the model callback
        pass

    holder = Opt()
    holder.optimizers = optimizers
    counts, time_grads = [], []
    model.train()
    g = torch.Generator().manual_seed(0)
    for step in range(steps):
        model.step_cb(holder, step)
        cam = camera(step % 4, (step % 5) / 4)
        target = torch.rand(24, 32, 3, generator=g)
        outputs = model.get_outputs(cam)
        loss = sum(model.get_loss_dict(outputs, {"image": target}).values())
        loss.backward()
        time_grads.append(model.gauss_params["times"].grad)
        model.step_post_backward(step)
        for opt in optimizers.values():
            opt.step()
            opt.zero_grad(set_to_none=True)
        counts.append(len(model.gauss_params["means"]))
    return counts, time_grads, optimizers


def adam_with_state(params) -> dict:
    """An Adam optimizer per parameter, stepped once so every Gaussian has non-zero moments."""
    opt = {name: torch.optim.Adam([params[name]], lr=1e-3) for name in params if params[name].requires_grad}
    for o in opt.values():
        for p in o.param_groups[0]["params"]:
            p.grad = torch.ones_like(p)
        o.step()
        o.zero_grad(set_to_none=True)
    return opt


def test_two_stage_densification():
    model = make_model()
    counts, time_grads, optimizers = train(model, 12)
    stage2 = model.strategy.stage2_start
    assert stage2 == 6
    assert len(set(counts[:stage2])) > 1, "AbsGS should change the count in stage 1"
    assert len(set(counts[stage2:])) == 1, "the count is fixed in stage 2"
    assert all(g is not None for g in time_grads[:stage2]) and all(g is None for g in time_grads[stage2:])
    state = model.strategy_state
    assert state["fixed_count"] == counts[stage2]
    for name, param in model.gauss_params.items():
        if name in optimizers:
            assert optimizers[name].state[param]["exp_avg"].shape == param.shape


def test_relocation_replaces_low_opacity_with_top_scored():
    model = make_model()
    train(model, 7)  # now in stage 2
    params, state = model.gauss_params, model.strategy_state
    n = len(params["means"])
    with torch.no_grad():
        params["opacities"][:10] = -10.0  # ten nearly transparent Gaussians
        state["error"] = torch.zeros(n)
        state["error_count"] = torch.ones(n)
        state["error"][20] = 100.0  # one clearly worst Gaussian
    opt = adam_with_state(params)
    kept = params["means"][10:].clone()
    replaced = model.strategy._relocate(params, opt, state)
    assert replaced == 10 and len(params["means"]) == n
    assert (torch.sigmoid(params["opacities"]) >= model.config.relocate_opacity).all()
    # the survivors come first, unchanged or split; new Gaussians carry zero Adam moments
    new_moments = opt["means"].state[params["means"]]["exp_avg"][n - 10 :]
    assert torch.count_nonzero(new_moments) == 0
    assert params["velocities"].shape == (n, 3) and params["times"].shape == (n, 1)
    assert kept.shape[0] == n - 10


def test_stage1_densifies_at_neural3dv_image_count():
    """19 cameras × 300 frames: splatfacto's pause (num_train_data + refine_every steps after a
    reset) would outlast the reset period and stop densification; ours is in steps."""
    model = make_model(num_train_data=5700, reset_alpha_every=2)  # opacity reset every 4 steps
    counts, _, _ = train(model, 6)
    assert len(set(counts[: model.strategy.stage2_start])) > 1, "AbsGS should change the count in stage 1"


def test_pause_longer_than_reset_period_is_refused():
    with pytest.raises(ValueError, match="pause_refine_after_reset"):
        make_model(reset_alpha_every=2, pause_refine_after_reset=4)


@pytest.fixture(scope="module")
def stage2_model():
    model = make_model()
    train(model, 7)  # now in stage 2
    return model, {k: v.detach().clone() for k, v in model.gauss_params.items()}, dict(model.strategy_state)


@pytest.mark.parametrize("low_fraction", [0.0, 0.3, 0.5, 0.8, 0.97])
def test_relocation_holds_the_count_whatever_fraction_is_low(stage2_model, low_fraction):
    model, trained, trained_state = stage2_model  # each case starts from the same stage-2 model
    model.gauss_params = torch.nn.ParameterDict({k: torch.nn.Parameter(v.clone()) for k, v in trained.items()})
    model.strategy_state = dict(trained_state)
    params, state = model.gauss_params, model.strategy_state
    n = len(params["means"])
    assert state["fixed_count"] == n
    n_low = int(low_fraction * n)
    with torch.no_grad():
        params["opacities"][:] = 2.0
        params["opacities"][torch.randperm(n, generator=torch.Generator().manual_seed(1))[:n_low]] = -10.0
    opt = adam_with_state(params)
    replaced = model.strategy._relocate(params, opt, state)
    assert replaced == n_low and len(params["means"]) == n and state["relocated"] == n_low
    assert (torch.sigmoid(params["opacities"]) >= model.config.relocate_opacity).all()
    for name, param in params.items():
        assert param.shape[0] == n and opt[name].state[param]["exp_avg"].shape == param.shape
    assert state["error"].shape == (n,) and state["error_count"].shape == (n,)


def test_error_probe_leaves_image_gradients_unchanged():
    model = make_model()
    train(model, 7)
    model.train()
    cam, target = camera(1, 0.5), torch.rand(24, 32, 3)
    grads = []
    for with_probe in (True, False):
        model.zero_grad(set_to_none=True)
        outputs = model.get_outputs(cam)
        losses = model.get_loss_dict(outputs, {"image": target})
        assert ("error_probe" in losses) == with_probe
        if with_probe:
            assert float(losses["error_probe"]) == 0.0
            probe_grad_source = model.info[ERROR_PROBE]  # what the strategy receives after backward
        sum(losses.values()).backward()
        grads.append(model.gauss_params["means"].grad.clone())
        if with_probe:
            assert probe_grad_source.grad is not None and (probe_grad_source.grad >= 0).all()
            assert probe_grad_source.grad.sum() > 0
            model.strategy.custom_densification = False  # second pass: no probe, plain render
    torch.testing.assert_close(grads[0], grads[1], atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("overrides", [{"learn_radius": False}, {"temporal_model": "4dgs"}, {"densification": "absgs"}])
def test_ablations_train(overrides):
    model = make_model(**overrides)
    counts, _, _ = train(model, 6)
    assert counts[-1] > 0
