"""CUDA: our CPU backend against gsplat, SharpTimeGS and Shape of Motion training on the GPU,
the masked losses at DyCheck size. Skipped without CUDA (never required by CI); run by
``make gpu-check``.

Parity: the same random scene rendered by ``rasterize(backend="cpu")`` on CPU tensors and by
``backend="gsplat"`` on CUDA tensors, the same weighted loss backpropagated through both; images,
alpha, radii and the gradients the strategies read (means2d grad and absgrad, colours, opacities,
means) must agree over SH none/0/3, RGB and RGB+ED, classic and antialiased, and colour channel
counts beyond gsplat's 32-channel kernel width.
"""

import copy
from pathlib import Path

import pytest
import torch
from nerfstudio.cameras.cameras import Cameras
from nerfstudio.data.scene_box import SceneBox
from orbit_cameras import orbit_camera

from splat4d import rasterize
from splat4d.quantile import safe_quantile
from splat4d.random_scene import random_scene

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (gsplat's kernels)")

W, H = 160, 120
RADII_TOLERANCE = 1e-3  # fraction of (camera, Gaussian) radii allowed to differ, by at most one pixel
IMAGE_ATOL = 2e-4  # per pixel, except where a Gaussian's alpha is at the 1/255 cut-off in one backend:
BORDERLINE_PIXELS = 1e-4  # the fraction of pixels allowed beyond IMAGE_ATOL,
BORDERLINE_ATOL = 5e-3  # by at most one skipped 1/255 alpha (fast-math exp in gsplat)
GRAD_RTOL = 1e-2  # ‖a − b‖ / ‖b‖ of each gradient


def render_and_backprop(scene, device: str, backend: str, sh_degree, render_mode: str, rasterize_mode: str):
    """Render both cameras, backpropagate a fixed random weighting of every output channel."""
    leaves = [p.detach().to(device).requires_grad_() for p in scene.params()]
    means, quats, scales, opacities, colors = leaves
    render, alpha, info = rasterize(
        means,
        quats,
        scales,
        opacities,
        colors,
        scene.viewmats.to(device),
        scene.Ks.to(device),
        W,
        H,
        sh_degree=sh_degree,
        render_mode=render_mode,
        rasterize_mode=rasterize_mode,
        absgrad=True,
        backend=backend,
    )
    info["means2d"].retain_grad()
    g = torch.Generator().manual_seed(7)
    weights = torch.rand(render.shape, generator=g).to(device)
    alpha_weights = torch.rand(alpha.shape, generator=g).to(device)
    ((render * weights).sum() + (alpha * alpha_weights).sum()).backward()
    out = {
        "render": render,
        "alpha": alpha,
        "radii": info["radii"],
        "means2d.grad": info["means2d"].grad,
        "means2d.absgrad": info["means2d"].absgrad,
        "means.grad": means.grad,
        "colors.grad": colors.grad,
        "opacities.grad": opacities.grad,
    }
    return {k: v.detach().cpu() for k, v in out.items()}, info


def assert_images_close(a: torch.Tensor, b: torch.Tensor) -> None:
    diff = (a - b).abs()
    assert (diff > IMAGE_ATOL).float().mean() <= BORDERLINE_PIXELS, f"{int((diff > IMAGE_ATOL).sum())} values differ"
    assert diff.max() <= BORDERLINE_ATOL, f"max |Δ| {float(diff.max()):.2e}"


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm().clamp(min=1e-12))


CASES = [  # (sh_degree, feature channels without SH)
    (None, 3),
    (None, 35),  # beyond gsplat's 32-channel kernel: rendered in chunks / padded
    (0, None),
    (3, None),
]


@pytest.mark.parametrize("rasterize_mode", ["classic", "antialiased"])
@pytest.mark.parametrize("render_mode", ["RGB", "RGB+ED"])
@pytest.mark.parametrize("sh_degree, channels", CASES)
def test_cpu_backend_matches_gsplat(sh_degree, channels, render_mode, rasterize_mode):
    scene = random_scene(3000, W, H, n_cameras=2, channels=channels or 3, sh_degree=sh_degree, seed=1)
    cpu, _ = render_and_backprop(scene, "cpu", "cpu", sh_degree, render_mode, rasterize_mode)
    gpu, _ = render_and_backprop(scene, "cuda", "gsplat", sh_degree, render_mode, rasterize_mode)
    assert cpu["render"].shape == gpu["render"].shape
    differ = cpu["radii"] != gpu["radii"]
    assert differ.float().mean() <= RADII_TOLERANCE, f"{int(differ.sum())} radii differ"
    both = (cpu["radii"] > 0) & (gpu["radii"] > 0)
    assert (cpu["radii"] - gpu["radii"])[both].abs().max() <= 1
    depth = render_mode == "RGB+ED"
    colours = slice(0, cpu["render"].shape[-1] - 1) if depth else slice(None)
    assert_images_close(cpu["render"][..., colours], gpu["render"][..., colours])
    assert_images_close(cpu["alpha"], gpu["alpha"])
    if depth:  # expected depth (scene depth ~2.5) where something is rendered, relative
        seen = gpu["alpha"][..., 0] > 0.05
        assert_images_close(cpu["render"][..., -1][seen] / 2.5, gpu["render"][..., -1][seen] / 2.5)
    compared = ["means2d.grad", "colors.grad", "opacities.grad", "means.grad"]
    if cpu["render"].shape[-1] <= 32:  # beyond, gsplat renders 32-channel chunks and keeps one chunk's absgrad
        compared.append("means2d.absgrad")
    for name in compared:
        assert relative_error(cpu[name], gpu[name]) < GRAD_RTOL, name


def test_info_layout_the_strategies_read():
    scene = random_scene(2000, W, H, n_cameras=2, seed=2)
    _, cpu = render_and_backprop(scene, "cpu", "cpu", None, "RGB", "classic")
    _, gpu = render_and_backprop(scene, "cuda", "gsplat", None, "RGB", "classic")
    read = (
        "means2d",
        "radii",
        "depths",
        "conics",
        "opacities",
        "width",
        "height",
        "n_cameras",
        "gaussian_ids",
        "camera_ids",
        "tile_width",
        "tile_height",
        "tile_size",
        "isect_offsets",
        "flatten_ids",
    )
    assert set(read) <= set(cpu) and set(read) <= set(gpu)
    for key in ("means2d", "radii", "depths", "conics", "opacities"):
        assert cpu[key].shape == gpu[key].shape and cpu[key].dtype == gpu[key].dtype, key
    for key in ("width", "height", "n_cameras", "tile_size", "tile_width", "tile_height"):
        assert cpu[key] == gpu[key], key
    assert cpu["gaussian_ids"] is None and gpu["gaussian_ids"] is None  # packed=False
    assert cpu["means2d"].grad.shape == gpu["means2d"].grad.shape == (2, 2000, 2)
    assert cpu["means2d"].absgrad.shape == gpu["means2d"].absgrad.shape


# ----- SharpTimeGS through both stages -----
def sharptime_camera(i: int, t: float) -> Cameras:
    return orbit_camera(i, t, width=64, height=48, focal=80.0)


def test_sharptime_both_stages_on_cuda():
    from sharptime_ns.model import SharpTimeModelConfig

    cfg = SharpTimeModelConfig(
        num_random=2000,
        random_scale=1.5,
        refine_every=4,
        warmup_length=2,
        reset_alpha_every=1000,
        sh_degree=1,
        densify_grad_thresh=1e-7,
        cull_alpha_thresh=0.05,
        num_downscales=0,
        background_color="black",
        total_steps=36,
        stage1_fraction=1 / 3,
    )
    model = cfg.setup(
        scene_box=SceneBox(torch.tensor([[-1.0, -1, -1], [1, 1, 1]])),
        num_train_data=4,
        metadata={"num_frames": 5, "fps": 30.0},
        device="cuda",
    ).to("cuda")
    optimizers = {name: torch.optim.Adam(params, lr=1e-3) for name, params in model.get_param_groups().items()}
    holder = type("Optimizers", (), {"optimizers": optimizers})()
    model.train()
    g = torch.Generator().manual_seed(0)
    counts, probe_sums = [], []
    for step in range(36):
        model.step_cb(holder, step)
        outputs = model.get_outputs(sharptime_camera(step % 4, (step % 5) / 4).to("cuda"))
        assert outputs["rgb"].is_cuda
        target = torch.rand(48, 64, 3, generator=g).to("cuda")
        losses = model.get_loss_dict(outputs, {"image": target})
        sum(losses.values()).backward()
        probe = model.info.get("error_probe")
        probe_sums.append(None if probe is None else float(probe.grad.abs().sum()))
        model.step_post_backward(step)
        for opt in optimizers.values():
            opt.step()
            opt.zero_grad(set_to_none=True)
        counts.append(len(model.gauss_params["means"]))
    stage2 = model.strategy.stage2_start
    assert stage2 == 12
    assert len(set(counts[:stage2])) > 1, "AbsGS changes the count in stage 1"
    assert len(set(counts[stage2:])) == 1 and model.strategy_state["fixed_count"] == counts[stage2]
    assert all(s is None for s in probe_sums[:stage2])
    assert all(s is not None and s > 0 for s in probe_sums[stage2:]), "the error probe gets a gradient in stage 2"
    for name, param in model.gauss_params.items():
        assert param.is_cuda
        if name in optimizers and optimizers[name].state.get(param):
            assert optimizers[name].state[param]["exp_avg"].shape == param.shape, name


# ----- Shape of Motion training on CUDA -----
def test_shapeofmotion_trains_on_cuda(monocular_scene: Path, tmp_path: Path):
    from shapeofmotion_ns.config import shapeofmotion
    from shapeofmotion_ns.init import InitConfig
    from splat4d.training import train_in_process

    cfg = copy.deepcopy(shapeofmotion.config)
    cfg.machine.device_type = "cuda"
    cfg.pipeline.datamanager.data = monocular_scene
    cfg.pipeline.datamanager.init = InitConfig(
        num_dynamic=1000, num_static=3000, min_cluster_points=20, optim_steps=100
    )
    control = cfg.pipeline.model.density_control
    control.warmup_steps, control.control_every, control.reset_opacity_every_n_controls = 20, 25, 4
    control.densify_xys_grad_threshold = 0.002
    cfg.max_num_iterations = 120
    cfg.output_dir, cfg.vis = tmp_path / "out", "tensorboard"
    cfg.steps_per_eval_image = cfg.steps_per_eval_all_images = cfg.steps_per_save = 10**9
    trainer = train_in_process(cfg)
    model = trainer.pipeline.model
    assert model.device.type == "cuda"
    assert all(p.is_cuda and torch.isfinite(p).all() for p in model.gauss_params.values())
    camera = trainer.pipeline.datamanager.train_dataset.cameras[0:1].to("cuda")
    model.eval()
    with torch.no_grad():
        rgb = model.get_outputs_for_camera(camera)["rgb"]
    assert rgb.shape == (72, 96, 3) and torch.isfinite(rgb).all() and rgb.std() > 0.01


# ----- sizes beyond torch.quantile's limit -----
def test_masked_losses_at_dycheck_size_on_cuda():
    from shapeofmotion_ns.losses import masked_l1, track_2d_loss

    tracks, frames = 24_000, 720  # ~17M [tracks × frames] entries, a DyCheck scene's
    g = torch.Generator().manual_seed(0)
    pred = torch.rand(tracks * frames, 2, generator=g)
    target = torch.rand(tracks * frames, 2, generator=g)
    weights = torch.rand(tracks * frames, generator=g)
    cpu = track_2d_loss(pred, target, weights, 480)
    gpu = track_2d_loss(pred.cuda(), target.cuda(), weights.cuda(), 480)
    assert gpu.is_cuda and float(gpu) == pytest.approx(float(cpu), rel=1e-4)
    errors = (pred - target).abs().mean(-1)
    assert float(safe_quantile(errors.cuda(), 0.98)) == pytest.approx(float(safe_quantile(errors, 0.98)), rel=1e-6)
    assert float(masked_l1(pred.cuda(), target.cuda(), quantile=0.95)) == pytest.approx(
        float(masked_l1(pred, target, quantile=0.95)), rel=1e-4
    )
    small = errors[:100_000]
    torch.testing.assert_close(safe_quantile(small.cuda(), 0.9), torch.quantile(small.cuda(), 0.9), rtol=1e-6, atol=0)
