"""Dice, HD95 and volumes against an independent numpy/scipy computation; ``main.py stats``.

The reference HD95 follows MONAI's definition (see viewer/metrics.py): surface = mask minus its
6-connected erosion; distances from one surface to the other by an exact Euclidean distance
transform with ``sampling=spacing``; HD95 = the larger of the two directed 95th percentiles.
"""

from __future__ import annotations

import json
import math

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from viewer.analysis.metrics import dice_per_label, hd95_per_label, label_stats
from viewer.model import LabelMap

from .conftest import run_cli

SHAPE = (40, 36, 30)


def ball(center, radius_mm, spacing=(1.0, 1.0, 1.0), shape=SHAPE) -> np.ndarray:
    """Boolean (I, J, K) ball of ``radius_mm`` around a voxel-index ``center``."""
    idx = np.indices(shape, dtype=float)
    d2 = sum(((idx[a] - center[a]) * spacing[a]) ** 2 for a in range(3))
    return d2 <= radius_mm ** 2


def ref_dice(a: np.ndarray, b: np.ndarray) -> float:
    na, nb = int(a.sum()), int(b.sum())
    return 1.0 if na + nb == 0 else 2.0 * int((a & b).sum()) / (na + nb)


def ref_hd95(a: np.ndarray, b: np.ndarray, spacing) -> float:
    if not a.any() and not b.any():
        return 0.0
    if not a.any() or not b.any():
        return math.inf
    sa, sb = a & ~ndimage.binary_erosion(a), b & ~ndimage.binary_erosion(b)
    # distance of every voxel to the nearest surface voxel of the other mask, in mm
    d_ab = ndimage.distance_transform_edt(~sb, sampling=spacing)[sa]
    d_ba = ndimage.distance_transform_edt(~sa, sampling=spacing)[sb]
    return max(float(np.percentile(d_ab, 95)), float(np.percentile(d_ba, 95)))


def labels_of(*masks: np.ndarray) -> np.ndarray:
    """Masks -> one uint8 label array, mask n getting label n + 1 (later masks win)."""
    out = np.zeros(SHAPE, np.uint8)
    for n, m in enumerate(masks):
        out[m] = n + 1
    return out


ANISO = (0.7, 1.3, 3.0)
CASES = {  # name: (pred masks, ref masks, spacing)
    "identical": ([ball((20, 18, 15), 8)], [ball((20, 18, 15), 8)], (1.0, 1.0, 1.0)),
    "shifted sphere": ([ball((20, 18, 15), 8)], [ball((23, 18, 15), 8)], (1.0, 1.0, 1.0)),
    "disjoint": ([ball((8, 18, 15), 5)], [ball((30, 18, 15), 6)], (1.0, 1.0, 1.0)),
    "anisotropic": ([ball((20, 18, 15), 9, ANISO)], [ball((22, 16, 16), 8, ANISO)], ANISO),
    "two labels, one at the border": (
        [ball((20, 18, 15), 8), ball((2, 2, 2), 5)], [ball((21, 19, 15), 7), ball((1, 3, 2), 6)],
        (1.2, 0.8, 2.0)),
    "ellipsoid vs box": ([ball((20, 18, 15), 10, (1.0, 2.0, 1.5))],
                         [np.pad(np.ones((14, 8, 12), bool), ((13, 13), (14, 14), (9, 9)))], (1.0, 2.0, 1.5)),
}


@pytest.mark.parametrize("name", list(CASES))
def test_dice_and_hd95_match_independent_computation(name):
    preds, refs, spacing = CASES[name]
    pred, ref = labels_of(*preds), labels_of(*refs)
    values = list(range(1, len(preds) + 1))
    dice = dice_per_label(pred, ref, values)
    hd = hd95_per_label(pred, ref, values, spacing)
    for v in values:
        a, b = pred == v, ref == v
        assert dice[v] == pytest.approx(ref_dice(a, b), abs=1e-6)
        # MONAI computes the distances in float32: equal to 1e-6 relative
        assert hd[v] == pytest.approx(ref_hd95(a, b, spacing), rel=1e-6, abs=1e-6)
    if name == "identical":
        assert dice[1] == 1.0 and hd[1] == 0.0
    if name == "disjoint":
        assert dice[1] == 0.0 and hd[1] > 10.0


def test_hd95_is_max_of_directed_percentiles_not_pooled():
    # the same ball, plus a small far blob in the prediction: 6% of the prediction's surface
    # but only 3% of both surfaces pooled, so only the directed percentile sees it
    b = ball((14, 18, 15), 6)
    a = b.copy()
    a[30:33, 15:18, 13:17] = True
    pred, ref = labels_of(a), labels_of(b)
    sa, sb = a & ~ndimage.binary_erosion(a), b & ~ndimage.binary_erosion(b)
    d_ab = ndimage.distance_transform_edt(~sb)[sa]
    d_ba = ndimage.distance_transform_edt(~sa)[sb]
    pooled = float(np.percentile(np.concatenate([d_ab, d_ba]), 95))
    hd = hd95_per_label(pred, ref, [1], (1, 1, 1))[1]
    assert hd == pytest.approx(max(np.percentile(d_ab, 95), np.percentile(d_ba, 95)), rel=1e-6)
    assert hd > 10.0 and pooled == 0.0


def test_empty_labels():
    pred, ref = labels_of(ball((20, 18, 15), 6)), np.zeros(SHAPE, np.uint8)
    assert dice_per_label(pred, ref, [1, 2]) == {1: 0.0, 2: 1.0}
    assert hd95_per_label(pred, ref, [1, 2], (1, 1, 1)) == {1: math.inf, 2: 0.0}
    assert hd95_per_label(ref, pred, [1], (1, 1, 1)) == {1: math.inf}


def test_label_stats_volumes_and_names():
    affine = np.array([[0.0, -1.5, 0, 10], [0.9, 0, 0, -5], [0, 0, 2.5, 3], [0, 0, 0, 1]])  # rotated axes
    spacing = (0.9, 1.5, 2.5)
    pred = labels_of(ball((20, 18, 15), 9, spacing), ball((5, 5, 5), 3, spacing))
    ref = labels_of(ball((21, 18, 14), 9, spacing))
    mask, refmap = LabelMap(pred, affine), LabelMap(ref, affine)
    st = label_stats(mask, refmap)
    assert list(st) == ["1", "2"]
    voxel_ml = 0.9 * 1.5 * 2.5 / 1000
    for v in (1, 2):
        a, b = pred == v, ref == v
        row = st[str(v)]
        assert row["name"] == f"label {v}" and row["voxels"] == int(a.sum())
        assert row["volume_ml"] == pytest.approx(a.sum() * voxel_ml, rel=1e-9)
        assert row["dice"] == pytest.approx(ref_dice(a, b), abs=1e-6)
        assert row["hd95_mm"] == pytest.approx(ref_hd95(a, b, spacing), rel=1e-6, abs=1e-6)
    assert st["2"]["dice"] == 0.0 and st["2"]["hd95_mm"] == math.inf
    assert set(label_stats(mask, None)["1"]) == {"name", "voxels", "volume_ml"}
    shifted = affine.copy()
    shifted[0, 3] += 1.0
    with pytest.raises(ValueError, match="different grids"):
        label_stats(mask, LabelMap(ref, shifted))
    with pytest.raises(ValueError, match="different grids"):
        label_stats(mask, LabelMap(ref[:-1], affine))


# the command line ------------------------------------------------------------------------------
AFFINE = np.array([[-1.25, 0, 0, 30.0], [0, -0.75, 0, 20.0], [0, 0, 2.0, -25.0], [0, 0, 0, 1]])
SPACING = (1.25, 0.75, 2.0)  # exact in float32, as NIfTI stores the affine


def _save(path, arr, affine=AFFINE):
    nib.save(nib.Nifti1Image(arr, affine), str(path))
    return path


def test_stats_cli_matches_independent_computation(tmp_path):
    pred = labels_of(ball((20, 18, 15), 8, SPACING), ball((8, 8, 8), 4, SPACING))
    ref = labels_of(ball((22, 17, 15), 8, SPACING), ball((30, 28, 22), 3, SPACING))
    ref[ball((10, 26, 6), 3, SPACING)] = 7  # only in the reference
    mp, rp = _save(tmp_path / "pred.nii.gz", pred), _save(tmp_path / "ref.nii.gz", ref)
    r = run_cli("stats", "--mask", mp, "--reference", rp)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert list(out) == ["1", "2", "7"]
    voxel_ml = 1.25 * 0.75 * 2.0 / 1000
    for v in (1, 2, 7):
        a, b = pred == v, ref == v
        row = out[str(v)]
        assert row["voxels"] == int(a.sum()) and row["name"] == f"label {v}"
        assert row["volume_ml"] == pytest.approx(a.sum() * voxel_ml, rel=1e-9)
        assert row["dice"] == pytest.approx(ref_dice(a, b), abs=1e-6)
        hd = ref_hd95(a, b, SPACING)
        assert (row["hd95_mm"] is None) if math.isinf(hd) else row["hd95_mm"] == pytest.approx(hd, rel=1e-6)
    assert out["7"]["voxels"] == 0 and out["7"]["hd95_mm"] is None
    # without a reference: sizes only
    r = run_cli("stats", "--mask", mp)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == {k: {f: out[k][f] for f in ("name", "voxels", "volume_ml")}
                                    for k in ("1", "2")}


def _bad_grid(tmp_path):
    return _save(tmp_path / "ref.nii.gz", labels_of(ball((20, 18, 15), 8)), AFFINE @ np.diag([1, 1, 1.5, 1]))


def _fractional(tmp_path):
    return _save(tmp_path / "mask.nii.gz", labels_of(ball((20, 18, 15), 8)).astype(np.float32) * 0.5)


BAD = {  # name: (write the bad file, is it the mask (else the reference), words the message holds)
    "grids differ": (_bad_grid, False, "different grids"),
    "float mask with fractions": (_fractional, True, "non-integer"),
    "missing mask": (lambda tp: tp / "nope.nii.gz", True, "no such file"),
    "missing reference": (lambda tp: tp / "nope.nii.gz", False, "no such file"),
}


@pytest.mark.parametrize("name", list(BAD))
def test_stats_cli_bad_inputs_exit_2_with_one_line(tmp_path, name):
    make, is_mask, words = BAD[name]
    good = _save(tmp_path / "good.nii.gz", labels_of(ball((20, 18, 15), 8)))
    bad = make(tmp_path)
    mp, rp = (bad, good) if is_mask else (good, bad)
    r = run_cli("stats", "--mask", mp, "--reference", rp)
    assert r.returncode == 2 and r.stdout == ""
    lines = r.stderr.strip().splitlines()
    # the message names the file at fault
    assert len(lines) == 1 and lines[0].startswith(f"error: {bad}: ") and words in lines[0], r.stderr


@pytest.mark.parametrize("how", ["--labels itksnap", "--labels slicer", "sidecar"])
def test_stats_takes_label_names_from_a_label_file(tmp_path, how):
    pred = labels_of(ball((20, 18, 15), 8, SPACING), ball((8, 8, 8), 4, SPACING))
    mp = _save(tmp_path / "pred.nii.gz", pred)
    if how == "--labels slicer":
        names = tmp_path / "names.ctbl"
        names.write_text("0 Background 0 0 0 0\n1 left_caudate 255 0 0 255\n2 thalamus 0 255 0 255\n")
    else:
        names = tmp_path / ("pred.txt" if how == "sidecar" else "names.txt")
        names.write_text('0 0 0 0 0 0 0 "Clear Label"\n1 255 0 0 1 1 1 "left caudate"\n2 0 255 0 1 1 1 "thalamus"\n')
    extra = [] if how == "sidecar" else ["--labels", names]
    r = run_cli("stats", "--mask", mp, *extra)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["1"]["name"] in ("left caudate", "left_caudate") and out["2"]["name"] == "thalamus"


def test_stats_bad_label_file_is_one_line(tmp_path):
    mp = _save(tmp_path / "pred.nii.gz", labels_of(ball((20, 18, 15), 8, SPACING)))
    bad = tmp_path / "names.txt"
    bad.write_text("1 caudate red green blue 255\n")
    r = run_cli("stats", "--mask", mp, "--labels", bad)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and lines[0].startswith(f"error: {bad}: "), r.stderr


def test_confusion_map_counts_match_the_sets():
    from viewer.analysis.metrics import confusion_map

    rng = np.random.default_rng(3)
    pred = rng.integers(0, 3, (20, 20, 20)).astype(np.uint8)
    ref = rng.integers(0, 3, (20, 20, 20)).astype(np.uint8)
    conf = confusion_map(pred, ref)
    assert (conf == 1).sum() == ((pred != 0) & (pred == ref)).sum()
    assert (conf == 2).sum() == ((pred != 0) & (ref == 0)).sum()
    assert (conf == 3).sum() == ((ref != 0) & (pred != ref)).sum()
    one = confusion_map(pred, ref, value=2)
    assert (one == 2).sum() == ((pred == 2) & (ref != 2)).sum() and (one == 3).sum() == ((ref == 2) & (pred != 2)).sum()
