"""From a scan on any grid to the network's input, and back.

1. Canonical orientation: the voxel axes are permuted and flipped (views, no copies) so that
   they run towards R, A, S. Networks see every scan the same way round, whatever the scanner's
   voxel order (LPS DICOM, RAS NIfTI, sagittal acquisitions).
2. Resampling to the training spacing (linear for images, nearest for labels) when the
   spacing differs by more than 10 %.
3. Intensity normalisation fit for the modality (nnU-Net's recipe): CT is clipped to the
   0.5-99.5 percentiles of the labelled voxels of the training set and z-scored with their mean
   and standard deviation (one fixed window in HU, stored in the checkpoint); MRI is z-scored per
   volume over its foreground (voxels above the 10th percentile of the non-zero ones).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage

__all__ = ["Canonical", "to_canonical", "Normalisation", "fit_normalisation", "resample_to"]


@dataclass
class Canonical:
    """How an array was turned to RAS voxel order; ``undo`` maps a canonical array back.

    perm : voxel axis of the source that becomes canonical axis 0, 1, 2.
    flip : canonical axes that were reversed.
    shape : the source's shape.
    """

    perm: tuple[int, int, int]
    flip: tuple[bool, bool, bool]
    shape: tuple[int, int, int]

    def apply(self, array: np.ndarray) -> np.ndarray:
        out = np.transpose(array, self.perm)
        return out[tuple(slice(None, None, -1) if f else slice(None) for f in self.flip)]

    def undo(self, array: np.ndarray) -> np.ndarray:
        """Canonical (I, J, K[, ...]) -> source voxel order (trailing axes kept)."""
        out = array[tuple(slice(None, None, -1) if f else slice(None) for f in self.flip)]
        inv = np.argsort(self.perm)
        return np.transpose(out, (*inv, *range(3, out.ndim)))


def to_canonical(array: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray, Canonical]:
    """(array in RAS voxel order, its affine, how to undo it); views, no copies."""
    m = np.asarray(affine, float)[:3, :3]
    # the source axis pointing most along world axis w becomes canonical axis w (greedy, so
    # an oblique axis never takes the world axis another one follows more closely)
    perm = [-1, -1, -1]
    cos = np.abs(m / np.linalg.norm(m, axis=0))
    for flat in np.argsort(-cos, axis=None):
        w, a = divmod(int(flat), 3)
        if perm[w] < 0 and a not in perm:
            perm[w] = a
    flip = tuple(bool(m[w, perm[w]] < 0) for w in range(3))
    can = Canonical(tuple(perm), flip, tuple(int(s) for s in array.shape[:3]))  # type: ignore[arg-type]
    out = can.apply(array)
    # new affine: index along canonical axis w -> source index (possibly reversed)
    sel = np.zeros((4, 4))
    sel[3, 3] = 1.0
    for w in range(3):
        a = perm[w]
        if flip[w]:
            sel[a, w] = -1.0
            sel[a, 3] = array.shape[a] - 1
        else:
            sel[a, w] = 1.0
    return out, np.asarray(affine, float) @ sel, can


@dataclass
class Normalisation:
    """Intensity normalisation; ``mode`` "ct" (fixed window, dataset z-score) or "mr" (per volume)."""

    mode: str
    clip_low: float = 0.0
    clip_high: float = 0.0
    mean: float = 0.0
    std: float = 1.0

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """(…) intensities -> float32 network input."""
        x = np.array(image, dtype=np.float32)  # one copy; everything after works in place
        if np.asarray(image).dtype.kind == "f":
            np.nan_to_num(x, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
        if self.mode == "ct":
            np.clip(x, self.clip_low, self.clip_high, out=x)
            x -= self.mean
            x /= max(self.std, 1e-6)
            return x
        nz = x[x > 0] if np.any(x > 0) else x.ravel()
        fg = x > np.percentile(nz, 10) if nz.size else np.ones(x.shape, bool)
        vals = x[fg] if fg.any() else x.ravel()
        lo, hi = np.percentile(vals, [0.5, 99.5])
        x = np.clip(x, lo, hi)
        return (x - vals.mean()) / max(float(vals.std()), 1e-6)

    def to_dict(self) -> dict:
        return asdict(self)


def fit_normalisation(images: list[np.ndarray], labels: list[np.ndarray], modality: str) -> Normalisation:
    """CT: window and z-score from the labelled voxels of all training images; else MRI."""
    if modality.upper() != "CT":
        return Normalisation("mr")
    vals = []
    rng = np.random.default_rng(0)
    for img, lab in zip(images, labels):
        v = np.asarray(img)[np.asarray(lab) > 0].astype(np.float32)
        if v.size > 200_000:
            v = rng.choice(v, 200_000, replace=False)
        vals.append(v)
    allv = np.concatenate(vals) if vals else np.zeros(1, np.float32)
    allv = allv[np.isfinite(allv)]
    lo, hi = (float(x) for x in np.percentile(allv, [0.5, 99.5]))
    clipped = np.clip(allv, lo, hi)
    return Normalisation("ct", lo, hi, float(clipped.mean()), float(clipped.std()))


def resample_to(array: np.ndarray, spacing: tuple[float, ...], target: tuple[float, ...],
                order: int, shape: tuple[int, ...] | None = None) -> np.ndarray:
    """Resample a (I, J, K) array from ``spacing`` to ``target`` mm (or to exactly ``shape``).

    order 0 for labels (nearest), 1 for images (trilinear). Returns the input itself when no
    axis changes by more than 10 %.
    """
    spacing, target = np.asarray(spacing, float), np.asarray(target, float)
    if shape is None:
        if np.all(np.abs(spacing / target - 1) <= 0.1):
            return array
        shape = tuple(max(1, int(round(n * s / t))) for n, s, t in zip(array.shape, spacing, target))
    if tuple(shape) == tuple(array.shape):
        return array
    zoom = [n_out / n_in for n_out, n_in in zip(shape, array.shape)]
    out = ndimage.zoom(np.asarray(array, np.float32 if order else array.dtype), zoom, order=order,
                       mode="nearest", grid_mode=True)
    # zoom may be off by one voxel from the requested shape on some ratios: pad/crop to it
    if out.shape != tuple(shape):
        fixed = np.zeros(shape, out.dtype)
        sl = tuple(slice(0, min(a, b)) for a, b in zip(out.shape, shape))
        fixed[sl] = out[sl]
        out = fixed
    return out
