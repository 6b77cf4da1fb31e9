"""Tiny Depth Anything models built in the tests (nothing is downloaded): the architecture of
Depth Anything V2 with a 1-layer, 32-wide DINOv2 backbone, randomly initialised (seeded), saved
with its image processor the way ``hf download`` leaves a model folder.

``fit_readout`` makes such a model predict disparity on given frames: the head's last 1×1
convolution is solved in closed form (least squares) on the frames' true disparity, so its
output is a usable relative disparity of those frames (about 40 % of pixels within 10 %).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation, Dinov2Config, DPTImageProcessor

IMAGENET_MEAN, IMAGENET_STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


def tiny_config(head_hidden_size: int = 8, depth_estimation_type: str = "relative") -> DepthAnythingConfig:
    backbone = Dinov2Config(
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        patch_size=14,
        image_size=56,
        out_features=["stage1"],
        reshape_hidden_states=False,
    )
    return DepthAnythingConfig(
        backbone_config=backbone,
        neck_hidden_sizes=[16],
        reassemble_factors=[1],
        reassemble_hidden_size=32,
        fusion_hidden_size=16,
        head_hidden_size=head_hidden_size,
        depth_estimation_type=depth_estimation_type,
    )


def tiny_processor() -> DPTImageProcessor:
    """Depth Anything's preprocessing at a 56-pixel short side (keeps the aspect, multiples of 14)."""
    return DPTImageProcessor(
        do_resize=True,
        size={"height": 56, "width": 56},
        keep_aspect_ratio=True,
        ensure_multiple_of=14,
        do_pad=False,
        image_mean=IMAGENET_MEAN,
        image_std=IMAGENET_STD,
    )


def save_tiny_model(folder: Path, seed: int = 0, **config) -> DepthAnythingForDepthEstimation:
    torch.manual_seed(seed)
    model = DepthAnythingForDepthEstimation(tiny_config(**config)).eval()
    model.save_pretrained(folder)
    tiny_processor().save_pretrained(folder)
    return model


def save_fitted_model(folder: Path, frames: Sequence[np.ndarray], disparity: Sequence[np.ndarray]) -> None:
    """A tiny model whose readout is fitted to the frames' disparity ([H, W] each), saved to ``folder``."""
    torch.manual_seed(0)
    model = DepthAnythingForDepthEstimation(tiny_config(head_hidden_size=128)).eval()
    pixels = tiny_processor()(images=list(frames), return_tensors="pt")["pixel_values"]
    features = {}
    hook = model.head.conv3.register_forward_hook(lambda module, args, out: features.setdefault("x", args[0]))
    with torch.no_grad():
        model(pixel_values=pixels)
    hook.remove()
    x = features["x"]  # [N, C, h, w]
    target = torch.nn.functional.interpolate(
        torch.as_tensor(np.stack(disparity), dtype=torch.float32)[:, None], size=x.shape[-2:], mode="area"
    )
    design = torch.cat([x.permute(0, 2, 3, 1).reshape(-1, x.shape[1]), torch.ones(x[:, 0].numel(), 1)], dim=1)
    solution = torch.linalg.lstsq(design.double(), target.reshape(-1, 1).double()).solution.float()
    with torch.no_grad():
        model.head.conv3.weight.copy_(solution[:-1].reshape(1, -1, 1, 1))
        model.head.conv3.bias.copy_(solution[-1])
    model.save_pretrained(folder)
    tiny_processor().save_pretrained(folder)
