"""Full-image datamanager that reads images on demand instead of caching them all at start-up.

Multi-view video is large (300 frames × 20 cameras at 1352×1014 is ~25 GB even as uint8), so
images are decoded when a batch needs them, with a small LRU cache. Images are expected to be
undistorted already (our dataparsers undistort into their frame cache).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from functools import cached_property
from typing import Dict, List, Literal, Type

import torch
from nerfstudio.data.datamanagers.full_images_datamanager import FullImageDatamanager, FullImageDatamanagerConfig
from nerfstudio.data.datasets.base_dataset import InputDataset
from torch import Tensor


class LazyImages:
    """Sequence view of a dataset's images: ``images[i]`` decodes image i (LRU-cached)."""

    def __init__(self, dataset: InputDataset, image_type: str, cache_size: int) -> None:
        self.dataset = dataset
        self.image_type = image_type
        self.cache_size = cache_size
        self._cache: "OrderedDict[int, Dict[str, Tensor]]" = OrderedDict()

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, idx: int) -> Dict[str, Tensor]:
        if idx in self._cache:
            self._cache.move_to_end(idx)
            return self._cache[idx]
        data = self.dataset.get_data(idx, image_type=self.image_type)
        camera = self.dataset.cameras[idx]
        if camera.distortion_params is not None and torch.any(camera.distortion_params != 0):
            raise ValueError(f"image {self.dataset.image_filenames[idx]} has lens distortion: the dataparser "
                             "must undistort images for the lazy datamanager")  # fmt: skip
        if self.cache_size > 0:
            self._cache[idx] = data
            if len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return data

    def __iter__(self):
        return (self[i] for i in range(len(self)))


@dataclass
class LazyImageDatamanagerConfig(FullImageDatamanagerConfig):
    _target: Type = field(default_factory=lambda: LazyImageDatamanager)
    cache_images_type: Literal["uint8", "float32"] = "uint8"
    """Images are kept as uint8 (converted to float by the model)."""
    image_cache_size: int = 64
    """How many decoded images to keep in memory per split (LRU)."""


class LazyImageDatamanager(FullImageDatamanager):
    config: LazyImageDatamanagerConfig

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.train_cameras = self.train_dataset.cameras

    @cached_property
    def cached_train(self) -> List[Dict[str, Tensor]]:  # type: ignore[override]
        return LazyImages(self.train_dataset, self.config.cache_images_type, self.config.image_cache_size)  # type: ignore[return-value]

    @cached_property
    def cached_eval(self) -> List[Dict[str, Tensor]]:  # type: ignore[override]
        return LazyImages(self.eval_dataset, self.config.cache_images_type, self.config.image_cache_size)  # type: ignore[return-value]
