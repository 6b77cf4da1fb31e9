"""ShapeOfMotionModel on a hand-made initialization: motion at a time, the normalized frame,
extra render channels, losses and gradients, checkpoint round trip."""

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from nerfstudio.cameras.cameras import Cameras
from nerfstudio.data.scene_box import SceneBox
from nerfstudio.engine.callbacks import TrainingCallbackAttributes
from nerfstudio.models.splatfacto import get_viewmat

from shapeofmotion_ns import model as model_module
from shapeofmotion_ns.datamanager import INIT_KEY
from shapeofmotion_ns.init import SceneInit
from shapeofmotion_ns.model import ShapeOfMotionModelConfig
from shapeofmotion_ns.motion import identity_bases, matrix_to_rotation_6d
from shapeofmotion_ns.normalization import SceneNormalization
from shapeofmotion_ns.strategy import DensityControlConfig
from shapeofmotion_ns.track_batch import TrackBatch, TrackTargets
from splat4d.geometry import rotation_to_z
from splat4d.projection import quat_to_rotmat

T = 5  # time steps
W, H = 40, 30


def scene_init() -> SceneInit:
    """Two dynamic Gaussians (basis 0 translates +x by 0.1 per frame, basis 1 spins about z) and
    two static ones, in a normalized frame tilted and scaled against the world."""
    rots, transls = identity_bases(2, T)
    transls[0, :, 0] = 0.1 * torch.arange(T)
    angles = 0.3 * torch.arange(T)
    R = torch.zeros(T, 3, 3)
    c, s = angles.cos(), angles.sin()
    R[:, 0, 0], R[:, 0, 1], R[:, 1, 0], R[:, 1, 1], R[:, 2, 2] = c, -s, s, c, 1
    rots[1] = matrix_to_rotation_6d(R)
    tilt = torch.from_numpy(rotation_to_z(np.array([0.2, -1.0, 0.1]) / np.linalg.norm([0.2, -1.0, 0.1]))).float()
    normalization = SceneNormalization(tilt, torch.tensor([0.1, 0.2, 0.3]), 2.0)
    return SceneInit(
        normalization=normalization,
        canonical_frame=0,
        means=torch.tensor([[0.0, 0.0, 0.0], [0.5, 0.0, 0.0], [0.0, 0.5, 0.2], [-0.3, -0.2, 0.1]]),
        quats=torch.tensor([[1.0, 0, 0, 0]]).repeat(4, 1),
        log_scales=torch.full((4, 3), math.log(0.05)),
        colors=torch.tensor([[0.9, 0.1, 0.1], [0.1, 0.9, 0.1], [0.1, 0.1, 0.9], [0.5, 0.5, 0.5]]),
        opacities=torch.full((4,), 0.7),
        is_dynamic=torch.tensor([True, True, False, False]),
        coef_logits=torch.tensor([[20.0, 0.0], [0.0, 20.0], [0.0, 0.0], [0.0, 0.0]]),
        rots=rots,
        transls=transls,
        static_extent=1.0,
    )


def make_model(init=None, **overrides):
    cfg = ShapeOfMotionModelConfig(rasterizer_backend="reference", **overrides)
    metadata = {"num_time_steps": T, "frame_names": [f"0_{i:05d}" for i in range(T)]}
    if init is not None:
        metadata[INIT_KEY] = init
    return cfg.setup(
        scene_box=SceneBox(torch.tensor([[-1.0] * 3, [1.0] * 3])), num_train_data=T, metadata=metadata, device="cpu"
    )


def camera(init: SceneInit, t: float) -> Cameras:
    """A camera 3 model units in front of the model origin, looking at it (OpenGL c2w)."""
    norm = init.normalization
    centre = norm.points_to_world(torch.tensor([[0.0, 0.0, 3.0]]))[0]
    target = norm.points_to_world(torch.zeros(1, 3))[0]
    back = torch.nn.functional.normalize(centre - target, dim=0)
    right = torch.nn.functional.normalize(torch.linalg.cross(torch.tensor([0.0, 1.0, 0.0]), back), dim=0)
    up = torch.linalg.cross(back, right)
    c2w = torch.stack([right, up, back, centre], dim=1)
    return Cameras(
        camera_to_worlds=c2w[None], fx=40.0, fy=40.0, cx=W / 2, cy=H / 2, width=W, height=H, times=torch.tensor([[t]])
    )


def test_dynamic_gaussians_follow_their_bases_in_world_units():
    init = scene_init()
    model = make_model(init)
    norm = init.normalization
    g = model.gaussians_at(0.5)  # time step 2
    expected_model = torch.tensor([[0.2, 0.0, 0.0], [0.5 * math.cos(0.6), 0.5 * math.sin(0.6), 0.0]])
    assert torch.allclose(g.means[:2], norm.points_to_world(expected_model), atol=1e-4)
    assert torch.allclose(g.means[2:], norm.points_to_world(init.means[2:]), atol=1e-5)  # static
    assert torch.allclose(g.scales, torch.full((4, 3), 0.05 * 2.0), atol=1e-6)  # scales × s
    # rotations: world = Rᵀ · R_basis(t) · R0 (identity canonical rotation)
    spin = torch.tensor([[math.cos(0.6), -math.sin(0.6), 0], [math.sin(0.6), math.cos(0.6), 0], [0, 0, 1.0]])
    assert torch.allclose(quat_to_rotmat(g.quats[1]), norm.rotation.T @ spin, atol=1e-4)
    # between time steps the bases are interpolated: t = 0.625 is step 2.5
    half = model.gaussians_at(0.625)
    assert torch.allclose(half.means[0], norm.points_to_world(torch.tensor([[0.25, 0.0, 0.0]]))[0], atol=1e-4)
    assert torch.allclose(g.colors, init.colors, atol=1e-3)  # RGB features, no SH


def test_parameter_groups_and_strategy_cover_every_gaussian_parameter():
    model = make_model(scene_init())
    groups = model.get_param_groups()
    assert {"motion_coefs", "is_dynamic", "motion_rots", "motion_transls"} <= set(groups)
    optimizers = {name: torch.optim.Adam(params, lr=1e-3) for name, params in groups.items()}
    model.strategy.check_sanity(model.gauss_params, optimizers)
    assert model.strategy.static_scale == 1.0 and model.strategy.num_frames == T


def track_batch(init: SceneInit, query_xy: torch.Tensor) -> TrackBatch:
    """Targets at time steps 1 and 4 seen by the query camera itself."""
    cam = camera(init, 0.0)
    viewmat = get_viewmat(cam.camera_to_worlds)
    K = cam.get_intrinsics_matrices()
    times = torch.tensor([0.25, 1.0])
    return TrackBatch(
        targets=TrackTargets(times, viewmat.expand(2, 4, 4)),
        query_xy=query_xy,
        Ks=K.expand(2, 3, 3),
        xy=query_xy[None].expand(2, -1, -1) + torch.tensor([[[1.0, 0.0]], [[4.0, 0.0]]]),
        visible=torch.ones(2, len(query_xy), dtype=torch.bool),
        confidence=torch.ones(2, len(query_xy)),
        depth=torch.full((2, len(query_xy)), 3.0 * init.normalization.scale),
    )


def test_training_render_adds_flag_and_target_position_channels_and_losses_reach_every_parameter():
    init = scene_init()
    model = make_model(init)
    model.train()
    model.optimizers = {name: torch.optim.Adam(p, lr=1e-3) for name, p in model.get_param_groups().items()}
    cam = camera(init, 0.0)
    query_xy = torch.tensor([[W / 2 + 0.5, H / 2 + 0.5], [10.5, 10.5]])
    batch = track_batch(init, query_xy)
    cam.metadata = {"track_targets": batch.targets, "cam_idx": 0}
    outputs = model.get_outputs(cam)
    assert outputs["features"].shape == (H, W, 1 + 3 * 2)
    # at the image centre the first (dynamic) Gaussian dominates: the flag is its opacity-weighted share
    assert outputs["features"][H // 2, W // 2, 0] > 0.5
    # its rendered target position: at step 1 it has moved +0.1 (model units) along x
    points = model.track_points(outputs, query_xy[:1])  # [K, 1, 3] camera coordinates of the targets
    alpha = outputs["accumulation"][H // 2, W // 2, 0]
    viewmat = batch.targets.viewmats[0]
    expected = viewmat[:3, :3] @ init.normalization.points_to_world(torch.tensor([[0.1, 0.0, 0.0]]))[0] + viewmat[:3, 3]
    assert torch.allclose(points[0, 0] / alpha, expected, atol=0.05 * expected.norm())
    data = {
        "image": torch.rand(H, W, 3),
        "mask": torch.ones(H, W, 1, dtype=torch.bool),
        "depth_image": torch.full((H, W, 1), 6.0),
        "motion_mask": torch.zeros(H, W, 1),
        "track_batch": batch,
    }
    losses = model.get_loss_dict(outputs, data)
    expected_keys = {
        "rgb_loss",
        "mask_loss",
        "depth_loss",
        "depth_gradient_loss",
        "track_2d_loss",
        "track_depth_loss",
        "smooth_bases_loss",
        "smooth_tracks_loss",
        "z_accel_loss",
        "scale_var_loss",
    }
    assert set(losses) == expected_keys and all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    for name in ("means", "scales", "quats", "features_dc", "opacities", "motion_coefs"):
        assert model.gauss_params[name].grad.abs().sum() > 0, name
    assert model.motion_bases["rots"].grad.abs().sum() > 0 and model.motion_bases["transls"].grad.abs().sum() > 0
    assert model.gauss_params["is_dynamic"].grad is None


def test_evaluation_renders_rgb_and_depth_only():
    init = scene_init()
    model = make_model(init)
    model.eval()
    outputs = model.get_outputs(camera(init, 0.3))
    assert outputs["rgb"].shape == (H, W, 3) and outputs["depth"].shape == (H, W, 1) and "features" not in outputs
    batch = {
        "image": torch.rand(H, W, 3),
        "mask": torch.ones(H, W, 1, dtype=torch.bool),
        "covisible_mask": torch.zeros(H, W, 1, dtype=torch.bool),
    }
    losses = model.get_loss_dict(outputs, batch)
    assert set(losses) == {"rgb_loss"}
    batch["covisible_mask"][:, : W // 2] = True
    metrics, _ = model.get_image_metrics_and_images(outputs, batch)
    assert {"psnr", "ssim", "mpsnr", "mssim"} <= set(metrics) and metrics["mpsnr"] != metrics["psnr"]


def test_checkpoint_loads_into_a_model_built_without_initialization():
    init = scene_init()
    trained = make_model(init)
    with torch.no_grad():
        trained.motion_bases["transls"][0, :, 1] += 0.05
    state = trained.state_dict()
    fresh = make_model(None)
    assert len(fresh.gauss_params["means"]) == 0
    fresh.load_state_dict(state)
    fresh.eval(), trained.eval()
    a, b = fresh.gaussians_at(0.7), trained.gaussians_at(0.7)
    assert torch.allclose(a.means, b.means) and torch.allclose(a.quats, b.quats) and torch.allclose(a.colors, b.colors)
    assert torch.allclose(fresh.norm_rotation, trained.norm_rotation)


def test_spherical_harmonics_colours_are_configurable():
    init = scene_init()
    model = make_model(init, sh_degree=1)
    model.train()
    model.optimizers = {}
    model.step = 10**6  # full SH degree
    cam = camera(init, 0.0)
    outputs = model.get_outputs(cam)
    assert model.gaussians_at(0.0).sh_degree == 1
    assert outputs["features"].shape == (H, W, 1)  # the dynamic flag


def test_per_gaussian_translation_starts_from_the_bases_motion_and_trains_its_own_translations():
    init = scene_init()
    bases, per_gaussian = make_model(init), make_model(init, motion_model="per_gaussian_translation")
    assert "translations" in per_gaussian.gauss_params and "motion_coefs" not in per_gaussian.gauss_params
    assert per_gaussian.gauss_params["translations"].shape == (4, T, 3) and len(per_gaussian.motion_bases) == 0
    assert per_gaussian.gauss_params["translations"][2:].abs().max() == 0  # static ones have none
    frames = torch.arange(float(T))  # at the time steps (in between, each interpolates its own parameters)
    assert torch.allclose(per_gaussian.positions_at(frames), bases.positions_at(frames), atol=1e-5)
    # no rotation: the spinning Gaussian keeps its canonical orientation
    g = per_gaussian.gaussians_at(1.0)
    assert torch.allclose(quat_to_rotmat(g.quats[1]), init.normalization.rotation.T, atol=1e-4)
    assert not torch.allclose(g.means[:2], per_gaussian.gaussians_at(0.0).means[:2])  # the dynamic ones move
    groups = per_gaussian.get_param_groups()
    assert "translations" in groups and not {"motion_coefs", "motion_rots", "motion_transls"} & set(groups)
    optimizers = {name: torch.optim.Adam(params, lr=1e-3) for name, params in groups.items()}
    per_gaussian.strategy.check_sanity(per_gaussian.gauss_params, optimizers)

    per_gaussian.train()
    per_gaussian.optimizers = optimizers
    cam = camera(init, 0.0)
    query_xy = torch.tensor([[W / 2 + 0.5, H / 2 + 0.5], [10.5, 10.5]])
    batch = track_batch(init, query_xy)
    cam.metadata = {"track_targets": batch.targets, "cam_idx": 0}
    outputs = per_gaussian.get_outputs(cam)
    data = {
        "image": torch.rand(H, W, 3),
        "mask": torch.ones(H, W, 1, dtype=torch.bool),
        "depth_image": torch.full((H, W, 1), 6.0),
        "motion_mask": torch.zeros(H, W, 1),
        "track_batch": batch,
    }
    losses = per_gaussian.get_loss_dict(outputs, data)
    assert "smooth_bases_loss" not in losses and {"track_2d_loss", "smooth_tracks_loss"} <= set(losses)
    sum(losses.values()).backward()
    grad = per_gaussian.gauss_params["translations"].grad
    assert grad[:2, 1].abs().sum() > 0 and grad[:2, 4].abs().sum() > 0  # the track targets' time steps
    assert grad[2:].abs().sum() == 0  # static Gaussians do not move

    with torch.no_grad():
        per_gaussian.gauss_params["translations"][0, 3, 2] += 0.2
    fresh = make_model(None, motion_model="per_gaussian_translation")
    fresh.load_state_dict(per_gaussian.state_dict())
    fresh.eval(), per_gaussian.eval()
    assert torch.allclose(fresh.gaussians_at(0.75).means, per_gaussian.gaussians_at(0.75).means)


def test_show_trajectories_draws_the_dynamic_gaussians_only_with_a_viewer():
    from nerfstudio.viewer.utils import parse_object
    from nerfstudio.viewer.viewer_elements import ViewerControl, ViewerElement
    from test_shapeofmotion_trajectories import FakeScene

    init = scene_init()
    model = make_model(init)
    # what nerfstudio's viewer installs (Custom Elements) and sets up
    names = {element.name for _, element in parse_object(model, ViewerElement, "Custom Elements")}
    assert names == {"Show trajectories", "Trajectories shown"}
    assert [c for _, c in parse_object(model, ViewerControl, "Custom Elements")] == [model.viewer_control]
    model.viewer_show_trajectories.value = True
    model.show_trajectories()  # no viewer: nothing to draw on, no error
    assert model.trajectory_handles == []
    scene = FakeScene()
    model.viewer_control.viser_server = type("Server", (), {"scene": scene})()
    model.show_trajectories()
    splines = sorted(name for name in scene.added if "track_" in name)
    assert len(splines) == 2  # the two dynamic Gaussians
    path = scene.added[splines[0]]["positions"] / 10.0  # the viewer's scale
    expected = init.normalization.points_to_world(0.1 * torch.arange(float(T))[:, None] * torch.tensor([1.0, 0, 0]))
    assert torch.allclose(torch.from_numpy(path).float(), expected, atol=1e-4)  # Gaussian 0 over all time steps
    model.viewer_show_trajectories.value = False
    model.show_trajectories()
    assert scene.added == {} and model.trajectory_handles == []


@pytest.mark.parametrize("fraction, resets", [(1.0, [3000]), (0.5, [])])
def test_training_knows_the_run_length_and_warns_of_a_late_opacity_reset(monkeypatch, fraction, resets):
    """The reference's reset at step 3000 comes at 80 % of a 3750-step run (500 epochs of 60 frames)."""
    logged: list = []
    monkeypatch.setattr(model_module.CONSOLE, "log", lambda message, *a, **k: logged.append(str(message)))
    model = make_model(scene_init(), density_control=DensityControlConfig(no_reset_after_fraction=fraction))
    trainer = SimpleNamespace(_start_step=750, config=SimpleNamespace(max_num_iterations=3000))  # resumed
    model.get_training_callbacks(
        TrainingCallbackAttributes(optimizers=None, grad_scaler=None, pipeline=None, trainer=trainer)
    )
    assert model.strategy.run_steps == 3750 and model.strategy.reset_steps() == resets
    warnings = [m for m in logged if "opacity reset at step 3000 comes at 80% of this 3750-step run" in m]
    assert len(warnings) == len(resets)
