"""The editing tools: which voxels a brush covers, and morphological clean-ups of one label.

Every function returns ``(mask, box)``: a boolean mask over the box (a tuple of slices into
the label array) of the voxels to set, for :meth:`EditHistory.apply`. Nothing here writes.
Sizes are in millimetres through the volume's spacing, so a 5 mm brush is 5 mm on any scan.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..model.labels import LabelMap
from ..model.volume import Volume

__all__ = ["brush_mask", "fill_holes", "keep_largest_component", "remove_islands", "interpolate_slices",
           "voxel_axis_for_normal", "spacing_of"]

Box = tuple[slice, slice, slice]


def spacing_of(affine: np.ndarray) -> np.ndarray:
    """(3,) mm per voxel step along each voxel axis."""
    return np.linalg.norm(np.asarray(affine, float)[:3, :3], axis=0)


def voxel_axis_for_normal(affine: np.ndarray, normal_ras: np.ndarray) -> int:
    """The voxel axis most nearly along a world direction (a slice view's normal): the axis a
    2D brush stays in the plane of."""
    dirs = np.asarray(affine, float)[:3, :3] / spacing_of(affine)
    return int(np.argmax(np.abs(dirs.T @ np.asarray(normal_ras, float))))


def brush_mask(labels: LabelMap, center_ras, radius_mm: float, *, shape: str = "disk",
               normal_ras=(0.0, 0.0, 1.0), image: Volume | None = None,
               threshold: tuple[float, float] | None = None,
               paint_over: np.ndarray | None = None) -> tuple[np.ndarray, Box] | None:
    """Voxels within ``radius_mm`` of ``center_ras``: a disk in the slice through the centre
    (``shape="disk"``, in the plane whose normal is ``normal_ras``) or a ball (``"sphere"``).

    ``threshold`` keeps only voxels whose ``image`` value lies in [lo, hi] (e.g. HU), the
    threshold-in-brush tool; ``image`` must be on the labels' grid. ``paint_over`` (values) limits
    the brush to voxels currently holding one of them (e.g. [0]: only background). Returns None
    when the brush misses the volume.
    """
    if radius_mm <= 0 or not np.isfinite(radius_mm):
        raise ValueError(f"brush radius must be a positive number of mm, got {radius_mm}")
    aff = np.asarray(labels.affine, float)
    shape3 = np.array(labels.shape)
    ijk = (np.linalg.inv(aff) @ np.append(np.asarray(center_ras, float), 1.0))[:3]
    sp = spacing_of(aff)
    half = np.ceil(radius_mm / sp).astype(int)
    axis = voxel_axis_for_normal(aff, normal_ras) if shape == "disk" else None
    centre = np.rint(ijk).astype(int)
    if axis is not None:
        half[axis] = 0
    lo = np.maximum(centre - half, 0)
    hi = np.minimum(centre + half + 1, shape3)
    if np.any(hi <= lo):
        return None
    box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))
    grids = np.meshgrid(*[np.arange(a, b) for a, b in zip(lo, hi)], indexing="ij")
    # distance in mm through the full affine (handles anisotropic and oblique grids)
    offs = np.stack([g - c for g, c in zip(grids, ijk if axis is None else np.where(np.arange(3) == axis, centre, ijk))], -1)
    d = np.linalg.norm(offs @ aff[:3, :3].T, axis=-1)
    mask = d <= radius_mm
    if threshold is not None:
        if image is None or tuple(image.shape) != tuple(labels.shape):
            raise ValueError("threshold painting needs the image on the labels' grid")
        vals = np.asarray(image.array[box], float)
        mask &= (vals >= threshold[0]) & (vals <= threshold[1])
    if paint_over is not None:
        mask &= np.isin(np.asarray(labels.array[box]), np.asarray(paint_over))
    return mask, box


def _full_box(labels: LabelMap) -> Box:
    return tuple(slice(0, n) for n in labels.shape)  # type: ignore[return-value]


def fill_holes(labels: LabelMap, value: int, axis: int | None = None) -> tuple[np.ndarray, Box]:
    """Background voxels enclosed by ``value``: in 3D, or slice by slice along ``axis`` (what a
    user painting outlines slice by slice expects)."""
    arr = np.asarray(labels.array)
    region = arr == value
    if axis is None:
        filled = ndimage.binary_fill_holes(region)
    else:
        filled = np.zeros_like(region)
        for k in np.flatnonzero(region.any(axis=tuple(a for a in range(3) if a != axis))):
            idx = [slice(None)] * 3
            idx[axis] = k
            filled[tuple(idx)] = ndimage.binary_fill_holes(region[tuple(idx)])
    return filled & (arr == 0), _full_box(labels)


def keep_largest_component(labels: LabelMap, value: int) -> tuple[np.ndarray, Box]:
    """Voxels of ``value`` outside its largest 26-connected component (to set to 0)."""
    region = np.asarray(labels.array) == value
    comp, n = ndimage.label(region, structure=np.ones((3, 3, 3), bool))
    if n <= 1:
        return np.zeros_like(region), _full_box(labels)
    sizes = np.bincount(comp.ravel())
    sizes[0] = 0
    return region & (comp != int(np.argmax(sizes))), _full_box(labels)


def remove_islands(labels: LabelMap, value: int, min_mm3: float) -> tuple[np.ndarray, Box]:
    """Voxels of ``value`` in 26-connected pieces smaller than ``min_mm3`` (to set to 0)."""
    region = np.asarray(labels.array) == value
    comp, n = ndimage.label(region, structure=np.ones((3, 3, 3), bool))
    if n == 0:
        return region, _full_box(labels)
    voxel_mm3 = float(abs(np.linalg.det(np.asarray(labels.affine, float)[:3, :3])))
    sizes = np.bincount(comp.ravel()) * voxel_mm3
    small = sizes < min_mm3
    small[0] = False
    return small[comp], _full_box(labels)


def _signed_distance(mask2d: np.ndarray, spacing2d) -> np.ndarray:
    """Negative inside, positive outside, in mm."""
    outside = ndimage.distance_transform_edt(~mask2d, sampling=spacing2d)
    inside = ndimage.distance_transform_edt(mask2d, sampling=spacing2d)
    return outside - inside


def interpolate_slices(labels: LabelMap, value: int, axis: int) -> tuple[np.ndarray, Box]:
    """Fill the slices between slices painted with ``value`` along voxel ``axis``.

    Between two painted slices k0 < k1 with unpainted ones in between, each slice k gets the
    zero level of the linear blend of the two slices' signed distance maps (shape-based
    interpolation, as in ITK-SNAP and Slicer's "fill between slices"). Only background voxels
    are set, so other labels are never overwritten.
    """
    arr = np.asarray(labels.array)
    region = arr == value
    painted = np.flatnonzero(region.any(axis=tuple(a for a in range(3) if a != axis)))
    out = np.zeros_like(region)
    sp = spacing_of(labels.affine)
    sp2 = [s for a, s in enumerate(sp) if a != axis]

    def plane(k: int) -> tuple:
        idx: list = [slice(None)] * 3
        idx[axis] = int(k)
        return tuple(idx)

    for k0, k1 in zip(painted[:-1], painted[1:]):
        if k1 - k0 < 2:
            continue
        d0, d1 = _signed_distance(region[plane(k0)], sp2), _signed_distance(region[plane(k1)], sp2)
        for k in range(k0 + 1, k1):
            t = (k - k0) / (k1 - k0)
            out[plane(k)] = ((1 - t) * d0 + t * d1) < 0
    return out & (arr == 0), _full_box(labels)
