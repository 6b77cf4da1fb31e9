"""Shape of Motion density control: schedule, clone/split/cull/reset on a hand-made ParameterDict,
with motion coefficients, flags and Adam state following their Gaussians."""

import math

import pytest
import torch
from torch.nn import Parameter, ParameterDict

from shapeofmotion_ns.strategy import DensityControlConfig, ShapeOfMotionStrategy

W, H = 100, 50


def gaussians(scales, opacities, dynamic):
    n = len(scales)
    params = ParameterDict(
        {
            "means": Parameter(torch.randn(n, 3)),
            "scales": Parameter(torch.log(torch.tensor(scales)).reshape(n, 1).repeat(1, 3)),
            "quats": Parameter(torch.tensor([[1.0, 0, 0, 0]]).repeat(n, 1)),
            "features_dc": Parameter(torch.arange(float(n))[:, None].repeat(1, 3)),  # an identity for each Gaussian
            "opacities": Parameter(torch.logit(torch.tensor(opacities)).reshape(n, 1)),
            "motion_coefs": Parameter(torch.arange(float(n))[:, None] * torch.tensor([[1.0, -1.0]])),
            "is_dynamic": Parameter(torch.tensor(dynamic, dtype=torch.float32), requires_grad=False),
            "translations": Parameter(torch.arange(float(n))[:, None, None].repeat(1, 3, 3)),  # per-Gaussian motion
        }
    )
    optimizers = {name: torch.optim.Adam([p], lr=0.0) for name, p in params.items()}
    for p in params.values():  # give Adam some state to carry
        p.grad = torch.ones_like(p)
    for opt in optimizers.values():
        opt.step()
    return params, optimizers


def render_info(n: int, grad_px, radii_px):
    """What a render leaves after backward: screen gradients (pixels) and radii."""
    means2d = torch.zeros(1, n, 2, requires_grad=True)
    means2d.grad = torch.tensor(grad_px, dtype=torch.float32).reshape(1, n, 1) * torch.tensor([2.0 / W, 0.0])
    return {
        "means2d": means2d,
        "radii": torch.tensor(radii_px, dtype=torch.int32).reshape(1, n),
        "width": W,
        "height": H,
        "n_cameras": 1,
    }


def strategy(num_frames: int = 2, **overrides):
    cfg = dict(
        warmup_steps=2,
        control_every=5,
        reset_opacity_every_n_controls=4,
        stop_control_by_screen_steps=100,
        stop_control_steps=100,
        densify_xys_grad_threshold=0.5,
        densify_scale_threshold=0.1,
        densify_screen_threshold=0.3,
        cull_opacity_threshold=0.1,
        cull_scale_threshold=0.5,
        cull_screen_threshold=0.6,
    )
    cfg.update(overrides)
    return ShapeOfMotionStrategy(DensityControlConfig(**cfg), num_frames=num_frames, static_scale=2.0)


def assert_consistent(params, optimizers):
    n = len(params["means"])
    for name, p in params.items():
        assert p.shape[0] == n
        opt = optimizers[name]
        assert opt.param_groups[0]["params"][0] is p
        for key, value in opt.state[p].items():
            if key != "step":
                assert value.shape == p.shape


def test_duplicates_small_and_splits_large_high_gradient_gaussians():
    # 0: high grad, small -> duplicate; 1: high grad, large -> split; 2: low grad; 3: high grad, small, static
    params, optimizers = gaussians([0.05, 0.2, 0.2, 0.05], [0.5] * 4, [1, 1, 0, 0])
    s = strategy()
    state = s.initialize_state()
    s.check_sanity(params, optimizers)
    s.step_post_backward(params, optimizers, state, 5, render_info(4, [1.0, 1.0, 0.1, 1.0], [3, 3, 3, 3]))
    ids = params["features_dc"][:, 0].tolist()
    assert sorted(ids) == [0, 0, 1, 1, 2, 3, 3]
    # motion coefficients, per-Gaussian translations [N, T, 3] and flags follow their Gaussians
    assert torch.equal(params["motion_coefs"][:, 0], params["features_dc"][:, 0])
    assert params["translations"].shape == (7, 3, 3)
    assert torch.equal(params["translations"], params["features_dc"][:, :1, None].expand(-1, 3, 3))
    assert params["is_dynamic"].tolist() == [float(i in (0, 1)) for i in ids]
    split_scales = torch.exp(params["scales"][torch.tensor(ids) == 1])
    assert torch.allclose(split_scales, torch.full_like(split_scales, 0.2 / 1.6))
    assert_consistent(params, optimizers)
    # the reference's split copies the Gaussian: both halves keep its mean
    halves = params["means"][torch.tensor(ids) == 1]
    assert torch.equal(halves[0], halves[1])
    assert float(state["grad2d"].abs().sum()) == 0.0  # statistics restart after a control step


def test_screen_size_also_triggers_a_split():
    params, optimizers = gaussians([0.05, 0.05], [0.5, 0.5], [1, 1])
    s = strategy()
    state = s.initialize_state()
    # Gaussian 1 covers 40 px of a 100 px image: 0.4 > 0.3 of the image -> split (and duplicated: it is small)
    s.step_post_backward(params, optimizers, state, 5, render_info(2, [1.0, 1.0], [3, 40]))
    assert sorted(params["features_dc"][:, 0].tolist()) == [0, 0, 1, 1, 1]


def test_culls_transparent_and_too_large_gaussians_after_the_first_reset():
    # 0: transparent; 1: dynamic 0.6 > 0.5; 2: static 0.6 < 0.5 x 2; 3: static 1.2 > 1.0; 4: fine
    params, optimizers = gaussians([0.05, 0.6, 0.6, 1.2, 0.05], [0.05, 0.5, 0.5, 0.5, 0.5], [1, 1, 0, 0, 1])
    s = strategy(densify_xys_grad_threshold=1e9)
    state = s.initialize_state()
    info = render_info(5, [0.0] * 5, [1] * 5)
    s.step_post_backward(params, optimizers, state, 15, info)  # before the first reset: opacity only
    assert params["features_dc"][:, 0].tolist() == [1, 2, 3, 4]
    s.step_post_backward(params, optimizers, state, 30, render_info(4, [0.0] * 4, [1] * 4))
    assert params["features_dc"][:, 0].tolist() == [2, 4]
    assert params["translations"][:, 0, 0].tolist() == [2, 4]
    assert_consistent(params, optimizers)


@pytest.mark.parametrize("mode, after", [("set", [0.08, 0.08]), ("clamp", [0.08, 0.05])])
def test_opacity_reset_and_the_pauses_after_it(mode, after):
    params, optimizers = gaussians([0.05, 0.05], [0.9, 0.05], [1, 0])
    s = strategy(opacity_reset=mode)
    state = s.initialize_state()
    s.step_post_backward(params, optimizers, state, 20, render_info(2, [1.0, 1.0], [1, 1]))
    # step 20 = reset: no densification or culling right at it; opacities set (reference) or clamped to 0.08
    assert params["features_dc"][:, 0].tolist() == [0, 1]
    assert torch.allclose(torch.sigmoid(params["opacities"]).flatten(), torch.tensor(after))
    assert_consistent(params, optimizers)
    assert float(optimizers["opacities"].state[params["opacities"]]["exp_avg"].abs().sum()) == 0.0
    # 5 steps after the reset: densification is back (5 > num_frames), culling not yet (5 ≤ 3·num_frames)
    s.step_post_backward(params, optimizers, state, 25, render_info(2, [1.0, 0.0], [1, 1]))
    assert params["features_dc"][:, 0].tolist() == [0, 1, 0]


def test_pauses_after_a_reset_are_steps_when_set():
    """Explicit pauses replace the reference's frame-count rule, so more training frames than the
    reset period is not a schedule that silently never densifies."""
    with pytest.raises(ValueError, match="densify_pause_after_reset"):
        strategy(num_frames=20)  # reference rule: a 20-step pause in a 20-step reset period
    s = strategy(num_frames=20, densify_pause_after_reset=3, cull_pause_after_reset=12)
    assert (s.densify_pause, s.cull_pause) == (3, 12)
    params, optimizers = gaussians([0.05, 0.05], [0.9, 0.05], [1, 0])
    state = s.initialize_state()
    s.step_post_backward(params, optimizers, state, 20, render_info(2, [1.0, 1.0], [1, 1]))  # reset
    s.step_post_backward(params, optimizers, state, 25, render_info(2, [1.0, 0.0], [1, 1]))
    assert params["features_dc"][:, 0].tolist() == [0, 1, 0], "densified 5 > 3 steps after the reset"
    reference = strategy(num_frames=500, reset_opacity_every_n_controls=300)  # 1500-step reset period
    assert (reference.densify_pause, reference.cull_pause) == (500, 1000)


def test_nothing_happens_during_warmup_off_schedule_or_after_the_stop():
    for step in (0, 2, 6, 100, 105):
        params, optimizers = gaussians([0.05, 0.2], [0.05, 0.5], [1, 0])
        s = strategy()
        state = s.initialize_state()
        s.step_post_backward(params, optimizers, state, step, render_info(2, [1.0, 1.0], [3, 3]))
        assert params["features_dc"][:, 0].tolist() == [0, 1], step


def test_statistics_average_gradients_over_the_steps_a_gaussian_was_seen():
    params, optimizers = gaussians([0.05, 0.05], [0.5, 0.5], [1, 1])
    s = strategy(densify_xys_grad_threshold=0.6)
    state = s.initialize_state()
    s.step_post_backward(params, optimizers, state, 3, render_info(2, [1.0, 1.0], [2, 2]))
    s.step_post_backward(params, optimizers, state, 4, render_info(2, [0.4, 9.0], [2, 0]))  # 1 unseen
    assert state["count"].tolist() == [2.0, 1.0]
    assert torch.allclose(state["grad2d"], torch.tensor([1.4, 1.0]))
    assert state["radii"].tolist() == pytest.approx([0.02, 0.02])
    s.step_post_backward(params, optimizers, state, 5, render_info(2, [0.0, 0.0], [0, 0]))
    # mean gradients 0.7 and 1.0 both exceed 0.6
    assert sorted(params["features_dc"][:, 0].tolist()) == [0, 0, 1, 1]


def test_sanity_check_names_parameters_without_optimizer():
    params, optimizers = gaussians([0.05], [0.5], [1])
    del optimizers["motion_coefs"]
    with pytest.raises(ValueError, match="motion_coefs"):
        strategy().check_sanity(params, optimizers)
    assert math.isclose(strategy().reset_every, 20)


def test_sampled_split_moves_the_two_halves_apart():
    params, optimizers = gaussians([0.05, 0.2], [0.5, 0.5], [1, 1])
    mean = params["means"][1].clone()
    s = strategy(split_mode="sample")
    s.step_post_backward(params, optimizers, s.initialize_state(), 5, render_info(2, [0.0, 1.0], [3, 3]))
    halves = params["means"][params["features_dc"][:, 0] == 1]
    assert len(halves) == 2 and not torch.equal(halves[0], halves[1])
    assert not torch.equal(halves[0], mean)
    assert torch.allclose(torch.exp(params["scales"][params["features_dc"][:, 0] == 1]), torch.tensor(0.2 / 1.6))


def test_step_scale_stretches_every_step_number_of_the_schedule():
    s = ShapeOfMotionStrategy(
        DensityControlConfig(
            warmup_steps=2,
            control_every=5,
            reset_opacity_every_n_controls=4,
            stop_control_steps=100,
            stop_control_by_screen_steps=100,
            densify_xys_grad_threshold=0.5,
        ),
        num_frames=2,
        step_scale=8.0,
    )
    assert (s.reset_every, s.densify_pause, s.cull_pause, s.steps(2)) == (160, 16, 48, 16)
    params, optimizers = gaussians([0.05], [0.5], [1])
    state = s.initialize_state()
    s.step_post_backward(params, optimizers, state, 5, render_info(1, [1.0], [3]))  # step 5: not a control step
    assert len(params["means"]) == 1
    s.step_post_backward(params, optimizers, state, 40, render_info(1, [1.0], [3]))  # 5 × 8: densify
    assert len(params["means"]) == 2
    s.step_post_backward(params, optimizers, state, 800, render_info(2, [1.0, 1.0], [3, 3]))  # stop: 100 × 8
    assert len(params["means"]) == 2 and state["grad2d"].sum() == 0


def test_renders_of_one_step_are_merged_with_the_batch_size():
    """Two renders of a step whose losses were halved count as the reference's batch of 2."""
    from shapeofmotion_ns.recipe import merge_render_infos

    params, optimizers = gaussians([0.05, 0.05], [0.5, 0.5], [1, 1])
    s = strategy(densify_xys_grad_threshold=1e9)
    state = s.initialize_state()
    a, b = render_info(2, [0.5, 1.0], [2, 0]), render_info(2, [0.25, 3.0], [2, 2])  # Gaussian 1 unseen in a
    s.step_post_backward(params, optimizers, state, 3, merge_render_infos([a, b]))
    assert state["count"].tolist() == [2.0, 1.0]
    assert torch.allclose(state["grad2d"], torch.tensor([(0.5 + 0.25) * 2, 3.0 * 2]))


def test_resets_late_in_the_run_are_skipped_with_their_pauses():
    """no_reset_after_fraction: the reference resets whenever due (every 20 steps here, control
    stops at 100); at 0.5 of a 60-step run only the reset at step 20 happens, and step 40 is an
    ordinary control step: densification and culling, no reset."""
    reference, late_skipped = strategy(), strategy(no_reset_after_fraction=0.5)
    assert reference.reset_steps() == [] and reference.last_reset(45) == 40  # run length not known yet
    reference.run_steps = late_skipped.run_steps = 60
    assert (reference.reset_steps(), late_skipped.reset_steps()) == ([20, 40], [20])
    assert late_skipped.last_reset(45) == 20
    for s, ids, opacity in ((reference, [0, 1], 0.08), (late_skipped, [0, 0], 0.9)):
        params, optimizers = gaussians([0.05, 0.05], [0.9, 0.05], [1, 0])
        s.step_post_backward(params, optimizers, s.initialize_state(), 40, render_info(2, [1.0, 0.0], [1, 1]))
        assert params["features_dc"][:, 0].tolist() == ids
        assert math.isclose(float(torch.sigmoid(params["opacities"][0].detach())), opacity, rel_tol=1e-5)
        assert_consistent(params, optimizers)
