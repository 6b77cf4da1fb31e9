"""splat4d: shared core of the dynamic Gaussian splatting methods (rasterization backend)."""

import os
import sys

# torch's OpenMP threads busy-wait between parallel regions by default; next to other CPU-bound
# processes that turns fair sharing (2-3x slower) into a collapse (4-8x, benchmarks/
# cpu_sharing.py). libgomp reads the policy once, when torch is imported, so this only helps
# when splat4d comes first; ns-train imports torch before its plugins (the Makefile and README
# set the variable for it).
if "torch" not in sys.modules:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from splat4d.checkpoints import allow_numpy_scalars_in_checkpoints
from splat4d.rasterization import rasterize

allow_numpy_scalars_in_checkpoints()

__all__ = ["rasterize"]
