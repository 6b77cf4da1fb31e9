"""Datamanager of Shape of Motion: splat4d's lazy full-image datamanager over the ``iphone``
dataparser's dataset (images with depth, masks) that

- when training, runs the initialization (init.py; cached in ``<data>/.splat4d_cache/`` unless
  ``init.use_cache`` is off) before the model is built and hands it over in the train dataset's
  metadata (``shapeofmotion_init``), as nerfstudio passes that metadata to the model;
- adds to every training batch the tracks of the image's points into ``num_targets`` random
  training frames: ``data["track_batch"]`` for the losses, ``camera.metadata["track_targets"]``
  for the renderer. The targets are drawn on the training thread, in order; the track files and
  target depths are read ahead on the prefetching threads with the image.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Dict, Tuple, Type

import torch
from nerfstudio.cameras.cameras import Cameras
from nerfstudio.data.datasets.base_dataset import InputDataset
from nerfstudio.models.splatfacto import get_viewmat
from torch import Tensor

from shapeofmotion_ns.init import InitConfig, cached_initialize_scene
from shapeofmotion_ns.iphone_frames import check_priors, training_frames
from shapeofmotion_ns.track_batch import load_track_batch
from splat4d.datamanager import LazyImageDatamanager, LazyImageDatamanagerConfig

INIT_KEY = "shapeofmotion_init"


@dataclass
class ShapeOfMotionDatamanagerConfig(LazyImageDatamanagerConfig):
    _target: Type = field(default_factory=lambda: ShapeOfMotionDatamanager)
    num_targets: int = 4
    """Target frames per training step for the 2D track and track-depth losses."""
    init: InitConfig = field(default_factory=InitConfig)
    """Initialization of the Gaussians and motion bases (run when training starts; its cache: ``use_cache``)."""
    seed: int = 0
    """Seed of the target-frame sampling."""


class ShapeOfMotionDatamanager(LazyImageDatamanager):
    config: ShapeOfMotionDatamanagerConfig

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.generator = torch.Generator().manual_seed(self.config.seed)
        cameras = self.train_dataset.cameras
        self.train_viewmats = get_viewmat(cameras.camera_to_worlds)
        self.train_Ks = cameras.get_intrinsics_matrices()
        self.train_times = cameras.times.flatten()
        if self.test_mode == "val":  # training (ns-eval / ns-render load a checkpoint instead)
            meta = self.train_dataset.metadata
            check_priors(meta)
            frames, device = training_frames(self.train_dataset), str(self.device)
            meta[INIT_KEY] = cached_initialize_scene(frames, self.config.init, self.config.dataparser.data, device)

    @cached_property
    def dataset_type(self) -> Type[InputDataset]:
        """The dataset class the dataparser names (IPhoneDataset adds the priors to batches)."""
        return self.train_dataparser_outputs.metadata.get("dataset_type", InputDataset)

    def plan_train(self, idx: int) -> Tuple[int, Tensor]:
        """The image and its ``num_targets`` random target frames (drawn in training order)."""
        tracks = self.train_dataset.metadata["tracks"]
        targets = tracks.sample_pairs(min(self.config.num_targets, len(tracks)), self.generator, query=idx)[:, 1]
        return idx, targets

    def load_train(self, plan: Tuple[int, Tensor]) -> Tuple[Cameras, Dict]:
        """The image with its priors, plus the tracks of its points into the target frames."""
        query, targets = plan
        camera, data = super().load_train(query)
        data["track_batch"] = load_track_batch(
            self.train_dataset.metadata["tracks"],
            query,
            targets,
            self.train_times,
            self.train_viewmats,
            self.train_Ks,
            depth_of=lambda i: self.cached_train[i]["depth_image"][..., 0],
            pixel_scale=self.train_dataset.scale_factor,
        )
        return camera, data

    def finish_train(self, camera: Cameras, data: Dict) -> Tuple[Cameras, Dict]:
        camera, data = super().finish_train(camera, data)
        data["track_batch"] = data["track_batch"].to(self.device)
        camera.metadata["track_targets"] = data["track_batch"].targets
        return camera, data
