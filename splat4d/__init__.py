"""splat4d: shared core of the dynamic Gaussian splatting methods (rasterization backend)."""

from splat4d.checkpoints import allow_numpy_scalars_in_checkpoints
from splat4d.rasterization import rasterize

allow_numpy_scalars_in_checkpoints()

__all__ = ["rasterize"]
