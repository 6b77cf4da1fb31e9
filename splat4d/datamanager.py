"""Full-image datamanager that reads images on demand instead of caching them all at start-up.

Multi-view video is large (300 frames × 20 cameras at 1352×1014 is ~25 GB even as uint8), so
images are decoded when a batch needs them, with a small LRU cache, and training batches are
decoded ahead of the step on worker threads (``splat4d.prefetch``; ``prefetch_workers 0``
loads on the training thread). Images are expected to be undistorted already (our dataparsers
undistort into their frame cache).

Subclasses that add to a training batch split the work in two: ``plan_train`` (training thread,
in order: random draws) and ``load_train`` (worker thread: file reads), then
``finish_train`` (training thread: moves the batch to the device).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Dict, Iterator, List, Literal, Tuple, Type

import torch
from nerfstudio.cameras.cameras import Cameras
from nerfstudio.data.datamanagers.full_images_datamanager import FullImageDatamanager, FullImageDatamanagerConfig
from nerfstudio.data.datasets.base_dataset import InputDataset
from torch import Tensor

from splat4d.prefetch import Prefetcher


class LazyImages:
    """Sequence view of a dataset's images: ``images[i]`` decodes image i (LRU-cached; safe to
    use from several threads)."""

    def __init__(self, dataset: InputDataset, image_type: str, cache_size: int) -> None:
        self.dataset = dataset
        self.image_type = image_type
        self.cache_size = cache_size
        self._cache: "OrderedDict[int, Dict[str, Tensor]]" = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, idx: int) -> Dict[str, Tensor]:
        with self._lock:
            if idx in self._cache:
                self._cache.move_to_end(idx)
                return self._cache[idx]
        camera = self.dataset.cameras[idx]
        if camera.distortion_params is not None and torch.any(camera.distortion_params != 0):
            raise ValueError(
                f"image {self.dataset.image_filenames[idx]} has lens distortion: the dataparser "
                "must undistort images for the lazy datamanager"
            )
        data = self.dataset.get_data(idx, image_type=self.image_type)  # decoded outside the lock
        if self.cache_size > 0:
            with self._lock:
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
    prefetch_workers: int = 2
    """Threads decoding training batches ahead of the step (0: decode on the training thread)."""
    prefetch_depth: int = 4
    """Training batches decoded ahead (bounds the memory the prefetching uses)."""


class LazyImageDatamanager(FullImageDatamanager):
    config: LazyImageDatamanagerConfig

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.train_cameras = self.train_dataset.cameras

    @cached_property
    def train_prefetcher(self) -> Prefetcher:
        """Training batches in nerfstudio's order, loaded ahead on worker threads."""
        plans = (self.plan_train(idx) for idx in self._train_order())
        return Prefetcher(plans, self.load_train, self.config.prefetch_workers, self.config.prefetch_depth)

    def _train_order(self) -> Iterator[int]:
        """FullImageDatamanager's order: each image once per epoch, shuffled by its sampler."""
        while True:
            idx = self.train_unseen_cameras.pop(0)
            if len(self.train_unseen_cameras) == 0:
                self.train_unseen_cameras = self.sample_train_cameras()
            yield idx

    def plan_train(self, idx: int) -> Any:
        """What to load for training image ``idx`` (training thread, called in training order)."""
        return idx

    def load_train(self, plan: Any) -> Tuple[Cameras, Dict]:
        """Reads the batch of a plan (worker thread): the camera and a copy of the image's data
        (a copy, so that the cached dictionary is never changed)."""
        idx = int(plan)
        return self.train_cameras[idx : idx + 1], self.cached_train[idx].copy()

    def finish_train(self, camera: Cameras, data: Dict) -> Tuple[Cameras, Dict]:
        """Moves a loaded batch to the model's device (training thread)."""
        data["image"] = data["image"].to(self.device)
        camera = camera.to(self.device)
        camera.metadata = {**(camera.metadata or {}), "cam_idx": int(data["image_idx"])}
        return camera, data

    def next_train(self, step: int) -> Tuple[Cameras, Dict]:
        assert len(self.train_cameras.shape) == 1, "Assumes single batch dimension"
        return self.finish_train(*self.train_prefetcher.next())

    @cached_property
    def cached_train(self) -> List[Dict[str, Tensor]]:  # type: ignore[override]
        return LazyImages(self.train_dataset, self.config.cache_images_type, self.config.image_cache_size)  # type: ignore[return-value]

    @cached_property
    def cached_eval(self) -> List[Dict[str, Tensor]]:  # type: ignore[override]
        return LazyImages(self.eval_dataset, self.config.cache_images_type, self.config.image_cache_size)  # type: ignore[return-value]
