"""Segmentation metrics per label: Dice, 95th-percentile Hausdorff distance, volumes.

Dice is ``monai.metrics.compute_dice``; HD95 is ``monai.metrics.compute_hausdorff_distance(
percentile=95)`` rebuilt from MONAI's own surface distances (``get_edge_surface_distance``) with
the final quantile in float64 instead of float32 (MONAI's differs by up to ~1e-5 mm), so the
numbers match what MONAI-based training loops report. MONAI's HD95 is the larger of the two
*directed* 95th percentiles:

    surface(M) = M & ~binary_erosion(M)           (6-connected erosion; outside the array is 0)
    d(A -> B)  = for each voxel of surface(A), the Euclidean distance in mm (voxel index
                 differences scaled by the spacing) to the nearest voxel of surface(B)
    HD95       = max(percentile95(d(P -> R)), percentile95(d(R -> P)))   (linear interpolation)

not the 95th percentile of the pooled distances of both directions.

Empty labels: present in neither mask -> Dice 1.0 and HD95 0.0 (nothing to disagree about);
present in one only -> Dice 0.0 and HD95 ``inf`` (no surface to measure to; written as
``null`` in JSON by ``main.py stats``).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from scipy import ndimage

from ..model.labels import LabelMap
from ..model.volume import axcodes, voxel_volume_ml

__all__ = ["dice_per_label", "hd95_per_label", "label_stats", "same_grid", "check_same_grid"]


def _boxes(arr: np.ndarray, labels: Sequence[int]) -> dict[int, tuple[slice, ...] | None]:
    """Bounding box (index slices) of each label in ``arr``; None where it is absent.

    One pass over the array for all positive labels (``ndimage.find_objects``) instead of one
    comparison per label: atlases have hundreds of labels on 512^3 grids.
    """
    out: dict[int, tuple[slice, ...] | None] = {}
    positive = [v for v in labels if 0 < v <= 1_000_000]
    if positive and arr.dtype.kind in "iu":
        objs = ndimage.find_objects(np.asarray(arr), max_label=max(positive))
        out.update({v: objs[v - 1] for v in positive})
    for v in labels:
        if v not in out:
            idx = np.nonzero(np.asarray(arr) == v)
            out[v] = tuple(slice(int(i.min()), int(i.max()) + 1) for i in idx) if idx[0].size else None
    return out


def _pairs(pred: np.ndarray, ref: np.ndarray, labels: Sequence[int]):
    """Yield ``(label, pred_mask, ref_mask)`` cropped to the union of both boxes plus one voxel.

    Either mask is None when the label is absent from that array. Cropping is exact for both
    metrics: Dice only counts, and the one-voxel margin keeps every surface voxel a surface voxel.
    """
    pred, ref = np.asarray(pred), np.asarray(ref)
    if pred.shape != ref.shape:
        raise ValueError(f"prediction {pred.shape} and reference {ref.shape} differ in shape")
    labels = [int(v) for v in labels]
    bp, br = _boxes(pred, labels), _boxes(ref, labels)
    for v in labels:
        boxes = [b for b in (bp[v], br[v]) if b is not None]
        if not boxes:
            yield v, None, None
            continue
        box = tuple(slice(max(0, min(b[a].start for b in boxes) - 1),
                          min(pred.shape[a], max(b[a].stop for b in boxes) + 1)) for a in range(pred.ndim))
        p, r = pred[box] == v, ref[box] == v
        yield v, (p if bp[v] is not None else None), (r if br[v] is not None else None)


def dice_per_label(pred: np.ndarray, ref: np.ndarray, labels: list[int]) -> dict[int, float]:
    """Dice coefficient 2|P & R| / (|P| + |R|) of each label.

    Parameters
    ----------
    pred, ref : (I, J, K) integer label arrays on the same grid.
    labels : label values to score (0 is scored like any other value if asked for).

    Returns
    -------
    {label: dice} in 0..1; 1.0 when the label is in neither array, 0.0 when in one only.
    """
    import torch
    from monai.metrics import compute_dice

    out: dict[int, float] = {}
    for v, p, r in _pairs(pred, ref, labels):
        if p is None or r is None:
            out[v] = 1.0 if p is None and r is None else 0.0
            continue
        # (batch 1, channel 1) masks of 0/1 as uint8: MONAI reads a single channel as class
        # indices and scores class 1 with exact int64 counts (float one-hot inputs would be
        # summed in float32, inexact above 2^24 voxels, and take 4-8x the memory)
        pt, rt = (torch.from_numpy(m.view(np.uint8)[None, None]) for m in (p, r))
        out[v] = float(compute_dice(pt, rt, include_background=True, ignore_empty=False)[0, 0])
    return out


def hd95_per_label(pred: np.ndarray, ref: np.ndarray, labels: list[int],
                   spacing: Sequence[float]) -> dict[int, float]:
    """95th-percentile symmetric Hausdorff distance of each label, in mm (see module doc).

    Parameters
    ----------
    pred, ref : (I, J, K) integer label arrays on the same grid.
    labels : label values to score.
    spacing : (3,) voxel size along i, j, k in mm (``Volume.spacing``).

    Returns
    -------
    {label: mm}; 0.0 when the label is in neither array, ``inf`` when in one only.
    """
    import warnings

    import torch
    from monai.metrics.utils import get_edge_surface_distance

    spacing = [float(s) for s in spacing]
    out: dict[int, float] = {}
    for v, p, r in _pairs(pred, ref, labels):
        if p is None or r is None:
            out[v] = 0.0 if p is None and r is None else math.inf
            continue
        with warnings.catch_warnings():  # empty masks never get here; MONAI's own FutureWarnings
            warnings.simplefilter("ignore")
            _, dists, _ = get_edge_surface_distance(torch.from_numpy(p), torch.from_numpy(r),
                                                    distance_metric="euclidean", spacing=spacing,
                                                    symmetric=True)
        # what compute_hausdorff_distance(percentile=95) does, but with the quantile taken in
        # float64: its float32 quantile interpolates with errors of ~1e-5 mm
        out[v] = max(float(torch.quantile(d.double(), 0.95)) for d in dists)
    return out


def same_grid(a, b, atol: float = 1e-3) -> bool:
    """Whether two volumes/label maps share shape and affine (to ``atol`` mm)."""
    return tuple(a.array.shape) == tuple(b.array.shape) and bool(np.allclose(a.affine, b.affine, atol=atol))


def check_same_grid(mask, reference) -> None:
    """Raise ValueError (one line, both grids described) unless the two share a grid."""
    if not same_grid(mask, reference):
        raise ValueError(f"the mask ({_grid_text(mask)}) and the reference ({_grid_text(reference)}) "
                         "lie on different grids")


def _grid_text(m) -> str:
    sp = np.linalg.norm(np.asarray(m.affine)[:3, :3], axis=0)
    origin = np.asarray(m.affine)[:3, 3]
    return (f"shape {tuple(int(s) for s in m.array.shape)}, axes {axcodes(m.affine)}, spacing "
            f"({', '.join(f'{s:g}' for s in sp)}) mm, origin ({', '.join(f'{o:g}' for o in origin)}) mm")


def label_stats(mask: LabelMap, reference: LabelMap | None = None) -> dict[str, dict]:
    """Per-label size of ``mask`` and, with a reference, its agreement with it.

    Parameters
    ----------
    mask : (I, J, K) label map (e.g. a model's prediction).
    reference : (I, J, K) ground truth on the same grid, or None.

    Returns
    -------
    {"<value>": {"name", "voxels", "volume_ml"[, "dice", "hd95_mm"]}} for every non-zero
    label in the mask's table or in either array, in increasing order. ``voxels`` and
    ``volume_ml`` are the mask's (mL = voxels x |det(affine)| / 1000). Names come from the
    mask's table, else the reference's. ``hd95_mm`` may be ``inf`` (see module doc).

    Raises
    ------
    ValueError : mask and reference lie on different grids (shape or affine), one line.
    """
    if reference is not None:
        check_same_grid(mask, reference)
    counts = mask.voxel_counts()
    values = set(counts) | {lab.value for lab in mask.table}
    if reference is not None:
        values |= set(reference.voxel_counts())
    values = sorted(v for v in values if v != 0)
    ml = voxel_volume_ml(mask.affine)
    out: dict[str, dict] = {}
    for v in values:
        table = mask.table if v in mask.table else reference.table if reference is not None \
            and v in reference.table else None
        n = int(counts.get(v, 0))
        out[str(v)] = {"name": table[v].name if table is not None else f"label {v}", "voxels": n,
                       "volume_ml": n * ml}
    if reference is not None and values:
        spacing = np.linalg.norm(mask.affine[:3, :3], axis=0)
        dice = dice_per_label(mask.array, reference.array, values)
        hd = hd95_per_label(mask.array, reference.array, values, spacing)
        for v in values:
            out[str(v)].update(dice=dice[v], hd95_mm=hd[v])
    return out


CONFUSION_TABLE = [  # value, name, colour: the overlay a reader checks a prediction with
    (1, "agree", (0.35, 0.8, 0.35)),
    (2, "false positive (prediction only)", (1.0, 0.2, 0.2)),
    (3, "false negative (reference only)", (0.2, 0.5, 1.0)),
]


def confusion_map(pred: np.ndarray, ref: np.ndarray, value: int | None = None) -> np.ndarray:
    """(I, J, K) uint8: 1 where prediction and reference agree on a label, 2 where the prediction
    has a label the reference does not (a false positive), 3 where the reference has one the
    prediction misses or labels otherwise (a false negative); 0 elsewhere.

    With ``value``, only that label counts (a voxel of another label is background for both).
    A voxel both sides label, but differently, counts as a false negative of the reference's label.
    """
    p = np.asarray(pred)
    r = np.asarray(ref)
    if value is not None:
        p, r = p == value, r == value
        out = np.zeros(p.shape, np.uint8)
        out[p & r] = 1
        out[p & ~r] = 2
        out[~p & r] = 3
        return out
    out = np.zeros(p.shape, np.uint8)
    labelled_p, labelled_r = p != 0, r != 0
    out[labelled_p & (p == r)] = 1
    out[labelled_p & ~labelled_r] = 2
    out[labelled_r & (p != r)] = 3
    return out
