"""Lets torch (weights_only loading, the default since torch 2.6) read nerfstudio checkpoints:
nerfstudio's exponential-decay scheduler stores numpy scalars in its state."""

import numpy as np
import torch


def allow_numpy_scalars_in_checkpoints() -> None:
    torch.serialization.add_safe_globals([np.core.multiarray.scalar, np.dtype, type(np.dtype("float64"))])
