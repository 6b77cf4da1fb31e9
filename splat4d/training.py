"""Train a nerfstudio ``TrainerConfig`` in this process, as ``ns-train`` does without its
command line and launcher (the benchmarks and end-to-end tests use it)."""

from __future__ import annotations

import random

import numpy as np
import torch
from nerfstudio.engine.trainer import Trainer, TrainerConfig


def train_in_process(config: TrainerConfig) -> Trainer:
    """Seeds like ``ns-train`` (``config.machine.seed``), timestamps the run, writes its
    config.yml and trains; returns the trainer (the run is in ``config.get_base_dir()``)."""
    trainer = set_up_trainer(config)
    trainer.train()
    return trainer


def set_up_trainer(config: TrainerConfig) -> Trainer:
    """:func:`train_in_process` up to training: the trainer with its pipeline (data loaded,
    initialization done), ready for ``trainer.train()``."""
    random.seed(config.machine.seed)
    np.random.seed(config.machine.seed)
    torch.manual_seed(config.machine.seed)
    config.set_timestamp()
    config.save_config()
    trainer = config.setup(local_rank=0, world_size=1)
    trainer.setup()
    return trainer
