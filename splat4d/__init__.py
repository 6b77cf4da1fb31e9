"""splat4d: shared core of the dynamic Gaussian splatting methods (rasterization backend)."""

from splat4d.rasterization import rasterize

__all__ = ["rasterize"]
