"""Procedural multi-scale textures with natural-image statistics (numpy, deterministic).

Fractal value noise: octaves of smoothly interpolated lattice noise whose amplitude halves (``gain``)
as the frequency doubles, so the power spectrum falls off roughly as 1/f² like photographs,
instead of the per-pixel noise of a checker-and-cell texture. Evaluated at surface points in an
object's own coordinates, so a texture moves with its object and is exact at any resolution.
"""

from __future__ import annotations

import numpy as np

LATTICE_PRIMES = np.array([12.9898, 78.233, 37.719])


def lattice_hash(dots: np.ndarray, seed: int) -> np.ndarray:
    """Pseudo-random value in [0, 1) from a lattice point's dot product with LATTICE_PRIMES."""
    h = np.sin(dots + seed * 3.7) * 43758.5453
    return h - np.floor(h)


def value_noise(points: np.ndarray, seed: int) -> np.ndarray:
    """Lattice noise at points [N, 3] (lattice units), trilinear with smoothstep weights, [N] in [0, 1)."""
    base = np.floor(points)
    frac = points - base
    w1 = frac * frac * (3.0 - 2.0 * frac)  # smoothstep: C1-continuous across cells
    w0 = 1.0 - w1
    dots = base @ LATTICE_PRIMES
    out = np.zeros(len(points))
    for corner in np.ndindex(2, 2, 2):
        weight = (w1 if corner[0] else w0)[:, 0] * (w1 if corner[1] else w0)[:, 1] * (w1 if corner[2] else w0)[:, 2]
        out += weight * lattice_hash(dots + float(np.dot(corner, LATTICE_PRIMES)), seed)
    return out


def fractal_noise(
    points: np.ndarray, frequency: float, octaves: int = 6, gain: float = 0.5, seed: int = 0
) -> np.ndarray:
    """Σ_k gain^k · noise(2^k · frequency · p), normalised to [0, 1]; points [N, 3] -> [N]."""
    total, norm, amplitude = np.zeros(len(points)), 0.0, 1.0
    for k in range(octaves):
        # a fixed rotation-free shift per octave keeps the lattices of successive octaves unaligned
        total += amplitude * value_noise(points * frequency * 2.0**k + 17.31 * k, seed + k)
        norm += amplitude
        amplitude *= gain
    return total / norm


def fractal_albedo(
    points: np.ndarray, colors: np.ndarray, frequency: float, seed: int, contrast: float = 2.2
) -> np.ndarray:
    """Two-colour fractal albedo [N, 3]: colours[0] ↔ colours[1] by one noise field, with a finer,
    independent luminance field on top (grain). ``colors`` is [2, 3]."""
    mix = np.clip(0.5 + contrast * (fractal_noise(points, frequency, seed=seed) - 0.5), 0.0, 1.0)[:, None]
    grain = 0.8 + 0.4 * fractal_noise(points, 4.0 * frequency, octaves=4, seed=seed + 101)[:, None]
    return np.clip((colors[0] * (1.0 - mix) + colors[1] * mix) * grain, 0.0, 1.0)
