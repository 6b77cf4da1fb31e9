"""Masked image metrics of a trained Shape of Motion run over its validation images (DyCheck's
protocol as the reference evaluates it): mPSNR, mSSIM and, when the LPIPS weights are local,
mLPIPS over each image's valid, covisible pixels, averaged over the images."""

from __future__ import annotations

from typing import Dict, Union

import numpy as np
import torch


@torch.no_grad()
def validation_image_metrics(pipeline, max_images: int = 0) -> Dict[str, Union[float, str, int]]:
    """Mean mpsnr / mssim / mlpips (``"unavailable"`` without local LPIPS weights) over the
    eval dataset's images (``max_images`` > 0: that many, evenly spaced)."""
    dataset, model = pipeline.datamanager.eval_dataset, pipeline.model
    ids = np.arange(len(dataset))
    if 0 < max_images < len(ids):
        ids = np.unique(np.linspace(0, len(ids) - 1, max_images).round().astype(int))
    values: Dict[str, list] = {}
    for i in ids:
        batch = dataset.get_data(int(i), image_type="float32")
        outputs = model.get_outputs_for_camera(dataset.cameras[int(i) : int(i) + 1].to(model.device))
        metrics = model.get_image_metrics_and_images(outputs, batch)[0]
        for key in ("mpsnr", "mssim", "mlpips"):
            if key in metrics:
                values.setdefault(key, []).append(metrics[key])
    out: Dict[str, Union[float, str, int]] = {key: float(np.mean(v)) for key, v in values.items()}
    out.setdefault("mlpips", "unavailable")
    out["num_images"] = len(ids)
    return out
