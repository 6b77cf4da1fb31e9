"""The dataset of the ``iphone`` dataparser: images plus each image's priors, read on demand.

The parser names this class in ``DataparserOutputs.metadata["dataset_type"]``; a datamanager
that wants the priors instantiates it instead of nerfstudio's InputDataset. Batch fields
(H, W: the image size after the datamanager's camera_res_scale_factor):

- ``image``: [H, W, 3] RGB (the PNG's alpha channel becomes ``mask``);
- ``mask``: bool [H, W, 1], the valid pixels (alpha > 0.5; all True without alpha), nerfstudio's
  loss-mask convention;
- ``depth_image``: float32 [H, W, 1] z-depth (distance along the camera's optical axis) in
  nerfstudio units, 0 where unknown; disparity priors are already inverted;
- ``motion_mask``: float32 [H, W, 1] in [0, 1], 1 = moving object;
- ``covisible_mask``: bool [H, W, 1], val split only: the pixel is seen by the training camera.

A prior missing for the split (see the parser's ``missing_priors`` metadata) has no field.
"""

from __future__ import annotations

from typing import Dict

import torch
from nerfstudio.data.datasets.base_dataset import InputDataset

from dataparsers.iphone.priors import FramePriors


class IPhoneDataset(InputDataset):
    """InputDataset whose ``get_data`` adds the iPhone priors of each image."""

    def get_metadata(self, data: Dict) -> Dict:
        image: torch.Tensor = data["image"]
        out: Dict[str, torch.Tensor] = {}
        if image.shape[-1] == 4:
            threshold = 127 if image.dtype == torch.uint8 else 0.5
            out["image"] = image[..., :3]
            out["mask"] = image[..., 3:] > threshold
        else:
            out["mask"] = torch.ones(*image.shape[:2], 1, dtype=torch.bool)
        priors: FramePriors = self.metadata["priors"]
        out.update(priors.load(data["image_idx"], (image.shape[1], image.shape[0])))
        return out
