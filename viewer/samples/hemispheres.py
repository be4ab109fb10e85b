"""A case cut into its left and right parts on the world plane x = 0 (RAS mm): two data sets from
one, e.g. train on a brain's left hemisphere and test on its right."""

from __future__ import annotations

import numpy as np

from ..model.labels import LabelMap, LabelTable
from ..model.volume import Volume
from ..plugins import Case

__all__ = ["split_left_right"]


def split_left_right(case: Case) -> tuple[Case, Case]:
    """Cut a case on the world plane x = 0 into its left (x < 0) and right (x >= 0) parts.

    The voxel axis most aligned with world x is cropped; each half keeps the voxel spacing and
    orientation, and its affine's origin moves so that every voxel keeps its world position
    (``half.affine @ (i', j, k, 1) == case.affine @ (i' + offset, j, k, 1)``). A voxel's side
    is the x of its slice's centre line (the centre of the other two axes): exact for grids
    aligned with world x (any RAS/LPS grid), the nearest voxel slice for oblique ones. Voxels
    exactly on x = 0 go to the right half, so the halves partition the grid.

    Returns
    -------
    (left, right) : Cases named ``"<name> left"`` / ``"<name> right"``, arrays are views.

    Raises
    ------
    ValueError : the grid does not reach both sides of x = 0.
    """
    aff = case.image.affine
    cos = np.abs(aff[0, :3]) / np.linalg.norm(aff[:3, :3], axis=0)
    axis = int(np.argmax(cos))
    n = case.image.shape[axis]
    centre = (np.asarray(case.image.shape, float) - 1) / 2.0
    ijk = np.repeat(centre[None], n, axis=0)
    ijk[:, axis] = np.arange(n)
    left_of = case.image.index_to_world(ijk)[:, 0] < 0  # (n,) monotonic along the axis
    idx = np.flatnonzero(left_of)
    if idx.size == 0 or idx.size == n:
        raise ValueError("the grid lies on one side of x = 0: nothing to split")
    # the left slices are one contiguous run at the start (RAS grids) or at the end (LPS grids)
    left_sl = slice(int(idx[0]), int(idx[-1]) + 1)
    right_sl = slice(0, left_sl.start) if left_sl.start > 0 else slice(left_sl.stop, n)

    def crop(sl: slice, side: str) -> Case:
        index = tuple(sl if a == axis else slice(None) for a in range(3))
        affine = aff.copy()
        affine[:3, 3] += aff[:3, axis] * sl.start  # voxel sl.start becomes the new voxel 0
        img, lab = case.image, case.labels
        image = Volume(img.array[index], affine, modality=img.modality, name=f"{img.name} {side}",
                       source=img.source, meta=dict(img.meta))
        labels = LabelMap(lab.array[index], affine.copy(), LabelTable.from_list(lab.table.to_list()),
                          name=f"{lab.name} {side}", source=lab.source, meta=dict(lab.meta))
        return Case(image, labels, name=f"{case.name} {side}")

    return crop(left_sl, "left"), crop(right_sl, "right")
