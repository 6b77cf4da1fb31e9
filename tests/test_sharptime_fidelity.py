"""Paper-fidelity settings of SharpTimeGS: the 0.01·LPIPS loss term (random AlexNet, never
downloaded), learning-rate decays that follow the run's length, and the demo preset."""

import pickle

import torch
from nerfstudio.engine.optimizers import Optimizers
from test_sharptime_strategy import camera, make_model, train

from sharptime_ns.config import DEMO_GRAD_THRESH, DEMO_STEPS, sharptime, sharptime_demo
from sharptime_ns.model import PAPER_STEPS
from splat4d.metrics import LPIPSLoss
from splat4d.optim import stretch_schedules


def test_lpips_loss_with_a_random_backbone_is_differentiable_and_zero_on_equal_images():
    loss = LPIPSLoss(random_backbone=True)
    a = torch.rand(24, 32, 3, requires_grad=True)
    b = torch.rand(24, 32, 3)
    assert float(loss(b, b)) == 0.0
    value = loss(a, b)
    value.backward()
    assert value.item() > 0 and a.grad.abs().sum() > 0
    assert all(not p.requires_grad for p in loss.lpips.network(torch.device("cpu")).parameters())


def test_lpips_term_joins_the_loss_only_with_weights():
    model = make_model(lpips_loss_weight=0.01)
    train(model, 1)  # hands the model its optimizers
    target = torch.rand(24, 32, 3)
    if not model.lpips_loss.available:  # this machine has no AlexNet weights: the term is left out
        assert "lpips_loss" not in model.get_loss_dict(model.get_outputs(camera(0, 0.0)), {"image": target})
    model.lpips_loss = LPIPSLoss(random_backbone=True)
    outputs = model.get_outputs(camera(0, 0.0))
    losses = model.get_loss_dict(outputs, {"image": target})
    expected = 0.01 * LPIPSLoss.__call__(model.lpips_loss, outputs["rgb"], target)
    torch.testing.assert_close(losses["lpips_loss"], expected)
    losses["lpips_loss"].backward()
    assert model.gauss_params["features_dc"].grad.abs().sum() > 0
    assert not any("lpips" in key for key in model.state_dict())  # checkpoints never carry it
    assert make_model(lpips_loss_weight=0.0).lpips_loss is None


def paper_optimizers() -> Optimizers:
    config = {name: sharptime.config.optimizers[name] for name in ("means", "velocities", "opacities")}
    params = {name: [torch.nn.Parameter(torch.zeros(3))] for name in config}
    return Optimizers(config, params)


def test_schedules_stretch_to_the_run_and_stay_out_of_checkpoints():
    run_steps = 300
    optimizers = paper_optimizers()
    assert sorted(stretch_schedules(optimizers, run_steps)) == ["means", "velocities"]
    means = optimizers.optimizers["means"]
    lrs = []
    for step in range(run_steps + 1):
        lrs.append(means.param_groups[0]["lr"])
        optimizers.scheduler_step_all(step)
    lr_init = sharptime.config.optimizers["means"]["optimizer"].lr
    lr_final = sharptime.config.optimizers["means"]["scheduler"].lr_final
    assert abs(lrs[0] - lr_init) < 1e-12
    assert abs(lrs[run_steps // 2] - (lr_init * lr_final) ** 0.5) < 1e-9  # log-linear: halfway is the geometric mean
    assert abs(lrs[-1] - lr_final) < 1e-12
    assert optimizers.optimizers["opacities"].param_groups[0]["lr"] == 0.05  # no scheduler: untouched
    assert sharptime.config.optimizers["means"]["scheduler"].max_steps == PAPER_STEPS  # config untouched
    pickle.dumps({k: s.state_dict() for k, s in optimizers.schedulers.items()})  # checkpoints can save them


def test_stretch_after_a_resume_continues_the_stretched_schedule():
    run_steps = 300
    first = paper_optimizers()
    stretch_schedules(first, run_steps)
    for step in range(100):
        first.scheduler_step_all(step)
    resumed = paper_optimizers()  # a resume: scheduler state loaded, then the callback stretches
    resumed.load_schedulers({k: s.state_dict() for k, s in first.schedulers.items()})
    stretch_schedules(resumed, run_steps)
    assert (
        abs(resumed.optimizers["means"].param_groups[0]["lr"] - first.optimizers["means"].param_groups[0]["lr"]) < 1e-15
    )


def test_demo_preset_is_one_config_and_the_model_leaves_the_trainer_alone():
    demo = sharptime_demo.config
    assert demo.method_name == "sharptime-demo" and demo.max_num_iterations == DEMO_STEPS
    assert demo.pipeline.model.densify_grad_thresh == DEMO_GRAD_THRESH
    assert sharptime.config.max_num_iterations == PAPER_STEPS  # the paper preset is separate
