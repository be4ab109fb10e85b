"""What a point renderer learned, as colours: the first three principal components of the
per-point descriptors (NPBG's own way of showing them)."""

from __future__ import annotations

import numpy as np

__all__ = ["descriptor_colors"]


def descriptor_colors(descriptors: np.ndarray, sample: int = 200_000, seed: int = 0) -> np.ndarray:
    """(N, C) descriptors -> (N, 3) uint8 colours: the projections on the first three principal
    components, each stretched from its 1st to its 99th percentile (a few outliers do not grey
    out the rest). With fewer than three channels the missing ones are mid-grey.

    The components are fitted on at most ``sample`` points (a random subset), so millions of
    points cost one matrix product."""
    d = np.asarray(descriptors, np.float32)
    if d.ndim != 2 or len(d) == 0:
        raise ValueError(f"descriptors must be (N, C) with N > 0, got shape {d.shape}")
    d = np.where(np.isfinite(d), d, 0.0)
    fit = d if len(d) <= sample else d[np.random.default_rng(seed).choice(len(d), sample, replace=False)]
    mean = fit.mean(0)
    _, _, vt = np.linalg.svd(fit - mean, full_matrices=False)
    k = min(3, vt.shape[0])
    proj = (d - mean) @ vt[:k].T  # (N, k)
    ref = (fit - mean) @ vt[:k].T
    # the sign of a component is arbitrary: make the largest projection positive, so that the
    # colours of the same model come out the same every time
    flip = np.where(np.abs(ref.max(0)) >= np.abs(ref.min(0)), 1.0, -1.0)
    proj, ref = proj * flip, ref * flip
    out = np.full((len(d), 3), 128, np.uint8)
    for i in range(k):
        lo, hi = np.percentile(ref[:, i], [1, 99])
        span = max(float(hi - lo), 1e-12)
        out[:, i] = np.clip((proj[:, i] - lo) / span * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return out
