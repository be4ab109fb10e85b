"""What the MR-like samples (the deep-grey MNI152 subject, the frog) share: smooth random fields and
the artefacts an MR scanner adds. numpy + scipy only."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

__all__ = ["smooth_field", "mr_scanner"]


def smooth_field(rng: np.random.Generator, shape: tuple[int, ...], cell: int) -> np.ndarray:
    """A smooth random field in [-1, 1] (cubic upsampling of a grid of one value per ``cell`` voxels)."""
    coarse = rng.uniform(-1.0, 1.0, tuple(max(2, s // cell + 2) for s in shape)).astype(np.float32)
    f = ndimage.zoom(coarse, [s / c for s, c in zip(shape, coarse.shape)], order=3, grid_mode=True, mode="nearest")
    f = f[tuple(slice(0, s) for s in shape)]
    return f / max(float(np.abs(f).max()), 1e-6)


def mr_scanner(rng: np.random.Generator, image: np.ndarray, noise_sd: float, bias: float = 0.12) -> np.ndarray:
    """What an MR scanner adds: a smooth multiplicative bias field and Rician noise."""
    image = image * np.exp(bias * smooth_field(rng, image.shape, 40))
    n1 = rng.standard_normal(image.shape, dtype=np.float32) * np.float32(noise_sd)
    n2 = rng.standard_normal(image.shape, dtype=np.float32) * np.float32(noise_sd)
    return np.sqrt((image + n1) ** 2 + n2 ** 2).astype(np.float32)
