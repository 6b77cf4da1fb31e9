"""Shape of Motion's training recipe: frames per step, static learning rates, the pre-issue-13
recipe switch (recipe.py, config.py)."""

import copy

import pytest
import torch
from nerfstudio.engine.callbacks import TrainingCallbackAttributes
from test_shapeofmotion_model import H, W, camera, make_model, scene_init, track_batch

from shapeofmotion_ns.config import pre_issue13_recipe, shapeofmotion
from shapeofmotion_ns.recipe import (
    RowLearningRates,
    ShapeOfMotionPipeline,
    StaticLearningRates,
    install_static_learning_rates,
)


def test_row_learning_rates_are_adam_with_that_rate_on_the_row():
    torch.manual_seed(0)
    start = torch.randn(3, 2)
    grads = [torch.randn(3, 2) for _ in range(4)]
    hooked = torch.nn.Parameter(start.clone())
    opt = torch.optim.Adam([hooked], lr=1e-2, eps=1e-8)
    RowLearningRates(opt, lambda: torch.tensor([1.0, 5.0, 1.0]))
    plain = {lr: torch.nn.Parameter(start.clone()) for lr in (1e-2, 5e-2)}
    plain_opts = {lr: torch.optim.Adam([p], lr=lr, eps=1e-8) for lr, p in plain.items()}
    for g in grads:
        for p, o in [(hooked, opt), *[(plain[lr], plain_opts[lr]) for lr in plain]]:
            o.zero_grad()
            p.grad = g.clone()
            o.step()
    assert torch.allclose(hooked[[0, 2]], plain[1e-2][[0, 2]], atol=1e-7)
    assert torch.allclose(hooked[1], plain[5e-2][1], atol=1e-7)
    assert not torch.allclose(plain[1e-2][1], plain[5e-2][1])


def test_static_rates_hook_only_the_parameters_whose_rate_differs():
    params = {name: torch.nn.Parameter(torch.zeros(2, 1)) for name in ("means", "opacities", "scales")}
    optimizers = {
        "means": torch.optim.Adam([params["means"]], lr=1.6e-4),
        "opacities": torch.optim.Adam([params["opacities"]], lr=1e-2),
        "scales": torch.optim.Adam([params["scales"]], lr=5e-3),
    }
    static = torch.tensor([False, True])
    hooks = install_static_learning_rates(StaticLearningRates(), optimizers, lambda: static)
    assert [h.optimizer for h in hooks] == [optimizers["opacities"]]
    assert hooks[0].row_factors().tolist() == [1.0, 5.0]
    assert install_static_learning_rates(StaticLearningRates(enabled=False), optimizers, lambda: static) == []
    for p in params.values():
        p.grad = torch.ones_like(p)
    for o in optimizers.values():
        o.step()
    step = params["opacities"].detach().flatten()
    assert torch.allclose(step[1], 5 * step[0]) and step[0] < 0


class FakeDatamanager:
    """Training frames at the times given, each with its own image, in order."""

    def __init__(self, init, times):
        self.init, self.times, self.calls = init, list(times), 0

    def next_train(self, step):
        t = self.times[self.calls % len(self.times)]
        self.calls += 1
        torch.manual_seed(self.calls)
        cam = camera(self.init, t)
        query_xy = torch.tensor([[W / 2 + 0.5, H / 2 + 0.5]])
        batch = track_batch(self.init, query_xy)
        cam.metadata = {"track_targets": batch.targets, "cam_idx": 0}
        return cam, {
            "image": torch.rand(H, W, 3),
            "mask": torch.ones(H, W, 1, dtype=torch.bool),
            "depth_image": torch.full((H, W, 1), 6.0),
            "motion_mask": torch.zeros(H, W, 1),
            "track_batch": batch,
        }


def pipeline(model, datamanager) -> ShapeOfMotionPipeline:
    pipe = ShapeOfMotionPipeline.__new__(ShapeOfMotionPipeline)
    torch.nn.Module.__init__(pipe)
    pipe.datamanager, pipe._model = datamanager, model
    return pipe


def test_a_step_averages_the_losses_of_its_frames_and_controls_on_all_their_renders():
    init = scene_init()
    model = make_model(init, frames_per_step=3)
    model.train()
    optimizers = {name: torch.optim.Adam(p, lr=1e-3) for name, p in model.get_param_groups().items()}
    model.step_cb(type("O", (), {"optimizers": optimizers})(), 1)
    times = [0.0, 0.5, 1.0]
    _, losses, _ = pipeline(model, FakeDatamanager(init, times)).get_train_loss_dict(1)
    assert len(model._step_infos) == 3
    single = make_model(scene_init(), frames_per_step=1)  # the same (deterministic) initialization
    single.train()
    single.step_cb(type("O", (), {"optimizers": optimizers})(), 1)
    dm = FakeDatamanager(init, times)
    per_frame = []
    for _ in times:
        _, frame_losses, _ = pipeline(single, dm).get_train_loss_dict(1)
        per_frame.append(frame_losses["rgb_loss"])
    assert torch.allclose(losses["rgb_loss"], torch.stack(per_frame).mean())
    sum(losses.values()).backward()
    seen = []
    model.strategy.step_post_backward = lambda **kw: seen.append(kw["info"])
    model.step_post_backward(1)
    assert seen[0]["n_cameras"] == 3 and seen[0]["means2d"].grad.shape[0] == 3
    assert model._step_infos == []


def test_the_control_schedule_is_counted_in_renders_by_default():
    init = scene_init()
    assert make_model(init).strategy.step_scale == 1.0  # 8 frames per step: the reference's steps
    assert make_model(init, frames_per_step=2).strategy.step_scale == 4.0
    assert make_model(init, frames_per_step=2, control_schedule="steps").strategy.step_scale == 1.0
    with pytest.raises(ValueError, match="frames_per_step"):
        make_model(init, frames_per_step=0)


def test_defaults_are_the_reference_recipe_and_the_old_one_is_a_switch_away():
    cfg = copy.deepcopy(shapeofmotion.config)
    model = cfg.pipeline.model
    assert model.frames_per_step == 8 and model.static_learning_rates.enabled
    assert model.static_learning_rates.opacities == 5e-2
    assert (model.density_control.opacity_reset, model.density_control.split_mode) == ("set", "copy")
    assert cfg.optimizers["opacities"]["optimizer"].eps == 1e-8
    assert cfg.optimizers["scales"]["scheduler"].max_steps == 5000
    old = pre_issue13_recipe(cfg)
    model = old.pipeline.model
    assert (model.frames_per_step, model.control_schedule, model.static_learning_rates.enabled) == (1, "steps", False)
    assert (model.density_control.opacity_reset, model.density_control.split_mode) == ("clamp", "sample")
    assert old.optimizers["opacities"]["optimizer"].eps == 1e-15
    assert old.optimizers["scales"]["scheduler"].max_steps == 30000
    assert shapeofmotion.config.pipeline.model.frames_per_step == 8, "the method's config is not changed"


def test_callback_attributes_are_what_step_cb_receives():
    """nerfstudio hands the model its Optimizers object; the static rates hook its optimizers once."""
    init = scene_init()
    model = make_model(init)
    model.train()
    optimizers = {name: torch.optim.Adam(p, lr=1e-2) for name, p in model.get_param_groups().items()}
    holder = type("O", (), {"optimizers": optimizers})()
    callbacks = model.get_training_callbacks(
        TrainingCallbackAttributes(optimizers=holder, grad_scaler=None, pipeline=None, trainer=None)
    )
    for cb in callbacks[:1]:
        cb.run_callback_at_location(1, cb.where_to_run[0])
    hooks = model._lr_hooks
    names = {next(n for n, o in optimizers.items() if o is h.optimizer) for h in hooks}
    assert "opacities" in names and "features_dc" not in names  # 5e-2 vs 1e-2; 1e-2 vs 1e-2
    cb.run_callback_at_location(2, cb.where_to_run[0])
    assert model._lr_hooks is hooks
