"""From a case or a scan to the network's grid, and back: canonical (RAS) voxel order, the
training spacing, a soft-tissue window for CT (a lesion 25 HU brighter than liver must not drown
in a window wide enough for bone and air), and the boxes' inscribed ellipsoids as targets."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from plugins._seg.preprocess import Canonical, Normalisation, resample_to, to_canonical
from viewer.model import Volume

__all__ = ["Prepared", "normalisation_for", "prepare", "ellipsoid_target", "back_to_grid", "CT_WINDOW"]

# HU: soft tissue and what lies next to it; bone and air clip to its ends
CT_WINDOW = (-200.0, 300.0)


@dataclass
class Prepared:
    """One image on the network's grid: normalised float32 (I, J, K), its affine (canonical voxel
    -> RAS mm), how to go back, and (with boxes) the target mask (uint8) or None."""

    image: np.ndarray
    affine: np.ndarray
    canonical: Canonical
    canonical_shape: tuple[int, int, int]  # the canonical array's shape before resampling
    target: np.ndarray | None = None
    klass: int = 0


def normalisation_for(modality: str) -> Normalisation:
    """CT: the fixed soft-tissue window, z-scored over its range; anything else: per-volume z-score."""
    if (modality or "").upper() == "CT":
        lo, hi = CT_WINDOW
        return Normalisation("ct", lo, hi, (lo + hi) / 2, (hi - lo) / 4)
    return Normalisation("mr")


def _spacing(affine: np.ndarray) -> np.ndarray:
    return np.linalg.norm(np.asarray(affine, float)[:3, :3], axis=0)


def prepare(volume: Volume, spacing: tuple[float, float, float], norm: Normalisation) -> Prepared:
    """``volume`` in canonical order at ``spacing`` mm, normalised."""
    arr, aff, can = to_canonical(np.asarray(volume.array), np.asarray(volume.affine, float))
    have = _spacing(aff)
    image = resample_to(np.asarray(arr, np.float32), tuple(have), tuple(spacing), order=1)
    if image.shape != arr.shape:  # the resampled grid's affine: same corner, new steps
        scale = np.array(arr.shape, float) / np.array(image.shape, float)
        aff = aff.copy()
        origin = aff[:3, :3] @ ((scale - 1) / 2) + aff[:3, 3]  # grid_mode: voxel faces stay where they were
        aff[:3, :3] = aff[:3, :3] * scale
        aff[:3, 3] = origin
    return Prepared(norm(image).astype(np.float32, copy=False), aff, can, tuple(int(s) for s in arr.shape))


def ellipsoid_target(shape: tuple[int, ...], affine: np.ndarray, boxes) -> np.ndarray:
    """uint8 mask of the ellipsoids inscribed in ``boxes`` (RAS mm) on the grid (shape, affine);
    each box is rasterised at least at its centre voxel, however small."""
    mask = np.zeros(shape, np.uint8)
    inv = np.linalg.inv(np.asarray(affine, float))
    for box in boxes:
        lo, hi = np.asarray(box[:3], float), np.asarray(box[3:], float)
        centre, semi = (lo + hi) / 2, np.maximum((hi - lo) / 2, 1e-3)
        corners = np.array([[x, y, z, 1.0] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
        ijk = (inv @ corners.T)[:3]
        a = np.clip(np.floor(ijk.min(axis=1)).astype(int), 0, np.array(shape) - 1)
        b = np.clip(np.ceil(ijk.max(axis=1)).astype(int), 0, np.array(shape) - 1)
        grid = np.stack(np.meshgrid(*(np.arange(a[d], b[d] + 1) for d in range(3)), indexing="ij"), -1).astype(float)
        ras = grid @ np.asarray(affine, float)[:3, :3].T + np.asarray(affine, float)[:3, 3]
        inside = (((ras - centre) / semi) ** 2).sum(-1) <= 1.0
        mask[a[0]:b[0] + 1, a[1]:b[1] + 1, a[2]:b[2] + 1] |= inside.astype(np.uint8)
        c = np.rint(inv @ np.append(centre, 1.0))[:3].astype(int)
        if np.all(c >= 0) and np.all(c < np.array(shape)):
            mask[tuple(c)] = 1
    return mask


def back_to_grid(array: np.ndarray, prepared: Prepared) -> np.ndarray:
    """A map on the network's grid -> the source volume's own voxel order and shape."""
    canonical = resample_to(np.asarray(array, np.float32), (1.0, 1.0, 1.0), (1.0, 1.0, 1.0), order=1,
                            shape=prepared.canonical_shape)
    return np.ascontiguousarray(prepared.canonical.undo(canonical))
