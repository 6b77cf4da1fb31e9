"""End to end on a small synthetic monocular scene: nerfstudio's trainer with the shapeofmotion
method (init in the datamanager, density control, all losses), then the tracking metrics CLI on
the saved run, then renders at three times."""

import copy
import json
from pathlib import Path

import torch

from shapeofmotion_ns.config import shapeofmotion
from shapeofmotion_ns.eval_tracks import EvalTracks, load_trained
from shapeofmotion_ns.init import InitConfig
from shapeofmotion_ns.track_predictions import render_tracks
from splat4d.training import train_in_process


def train(scene: Path, out: Path, steps: int) -> Path:
    """Trains and returns the run's config.yml."""
    cfg = copy.deepcopy(shapeofmotion.config)
    cfg.pipeline.datamanager.data = scene
    cfg.pipeline.datamanager.init = InitConfig(
        num_dynamic=1000, num_static=3000, min_cluster_points=20, optim_steps=100
    )
    cfg.pipeline.model.frames_per_step = 2  # the schedule below is in 8-frame steps: × 4 training steps
    control = cfg.pipeline.model.density_control
    control.warmup_steps, control.control_every, control.reset_opacity_every_n_controls = 5, 6, 1000  # no reset
    control.densify_xys_grad_threshold = 0.002  # a few densifications on these 96×72 images
    cfg.max_num_iterations = steps
    cfg.machine.device_type = "cpu"  # thresholds are set on CPU; tests/test_cuda.py covers CUDA
    cfg.output_dir, cfg.vis = out, "tensorboard"
    cfg.steps_per_eval_image = cfg.steps_per_eval_all_images = cfg.steps_per_save = 10**9
    train_in_process(cfg)
    return cfg.get_base_dir() / "config.yml"


def test_train_evaluate_tracks_and_render(monocular_scene, tmp_path):
    initial = train(monocular_scene, tmp_path / "init", steps=1)
    trained = train(monocular_scene, tmp_path / "trained", steps=100)  # 200 renders
    before = EvalTracks(initial, tmp_path / "init.json", ground_truth="tracks").main()
    after = EvalTracks(trained, tmp_path / "trained.json", ground_truth="tracks").main()
    keypoints = EvalTracks(trained, tmp_path / "keypoints.json").main()
    saved = json.loads((tmp_path / "trained.json").read_text())
    assert set(saved) >= {"epe", "delta_3d_5cm", "delta_3d_10cm", "aj", "delta_avg", "occlusion_accuracy"}
    assert saved["num_frames"] == 8 and saved["metric"] is True
    assert 10 < saved["mpsnr"] < 60 and 0 < saved["mssim"] <= 1 and saved["num_images"] == 16
    assert saved["mlpips"] == "unavailable" or 0 <= saved["mlpips"] < 1
    assert keypoints["ground_truth"] == "keypoints" and 0 <= keypoints["aj"] <= 1
    # training improves on the initialization (0.56 → 0.26 m EPE, 0.72 → 0.93 ⟨δ_avg⟩ when written)
    assert after["epe"] < 0.8 * before["epe"] and after["delta_avg"] > before["delta_avg"]

    initial_count = len(load_trained(initial)[1].model.gauss_params["means"])
    _, pipeline = load_trained(trained)
    model = pipeline.model
    assert model.strategy.config.warmup_steps == 5 and model.strategy.step_scale == 4.0
    assert len(model.gauss_params["means"]) != initial_count  # density control ran
    camera = pipeline.datamanager.train_dataset.cameras[0:1]
    renders = []
    for t in (0.0, 0.5, 1.0):
        camera.times = torch.tensor([[t]])
        renders.append(model.get_outputs_for_camera(camera)["rgb"])
    moving = pipeline.datamanager.train_dataset.get_data(0)["motion_mask"][..., 0] > 0.5
    change = (renders[0] - renders[2]).abs().amax(-1)
    assert change[moving].mean() > 0.02 and change[~moving].mean() < change[moving].mean()  # the dynamic part moves

    # the depth test's tolerance reaches the visibility: none within 0 m, all within 1 km
    cameras, frames = pipeline.datamanager.train_dataset.cameras, torch.tensor([0, 3, 6])
    pixels = torch.tensor([[[20.0, 30.0], [50.0, 40.0]]]).expand(3, -1, -1)
    rendered = render_tracks(model, cameras, frames, pixels)
    assert not rendered.predictions(1.0, visibility_tolerance=0.0).visible.any()
    assert rendered.predictions(1.0, visibility_tolerance=1000.0).visible.all()
