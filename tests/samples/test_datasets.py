"""Built-in data sets besides the CT phantom (test_phantom.py): the MNI152 template (and its deep grey
nuclei), the frog, hemisphere splitting; all reachable through ``viewer.samples.datasets``."""

from __future__ import annotations

import socket

import numpy as np
import pytest
from scipy import ndimage

from viewer.samples.datasets import (FROG_LABELS, MNI152_DEEP_LABELS, MNI152_LABELS, frog_case, mni152_case,
                                     mni152_deep_case, phantom_case, split_left_right)
from viewer.samples.phantom import LIVER, SPLEEN


@pytest.fixture(scope="module")
def mni():
    """The 2 mm template, loaded with every network connection refused (it must never download)."""
    from viewer.samples import brain

    def refuse(*a, **k):
        raise AssertionError("loading the MNI152 template tried to open a network connection")

    brain._mni152_arrays.cache_clear()  # really read the files here
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(socket, "create_connection", refuse)
        mp.setattr(socket.socket, "connect", refuse)
        return mni152_case(2)


# MNI152 ----------------------------------------------------------------------------------------
def test_mni152_case(mni):
    img, lab = mni.image, mni.labels
    assert img.modality == "MR" and img.axcodes == "RAS" and img.shape == lab.shape == (99, 117, 95)
    assert np.allclose(img.spacing, 2.0) and np.allclose(img.affine, lab.affine)
    assert {l.value: l.name for l in lab.table} == MNI152_LABELS
    ml = lab.volumes_ml()
    assert set(ml) == {1, 2}
    # this template's maps (see mni152_case): GM ~1090 mL, WM ~635 mL
    assert 900 < ml[1] < 1250 and 500 < ml[2] < 750 and 1400 < ml[1] + ml[2] < 1900
    # WM is brighter than GM on T1, and both brighter than the background
    t1 = img.array
    assert t1[lab.array == 2].mean() > t1[lab.array == 1].mean() > t1[lab.array == 0].mean()
    # cached arrays are shared and read-only; each call builds new objects
    again = mni152_case(2)
    assert again.image is not img and again.image.array is img.array
    assert not img.array.flags.writeable
    with pytest.raises(ValueError):
        mni152_case(0)


# hemispheres -----------------------------------------------------------------------------------
def test_split_left_right_preserves_world_and_covers_brain(mni):
    left, right = split_left_right(mni)
    full = mni.labels
    # halves tile the grid along x: together exactly the original voxels
    assert left.image.shape[0] + right.image.shape[0] == mni.image.shape[0]
    assert left.image.shape[1:] == right.image.shape[1:] == mni.image.shape[1:]
    total = {v: left.labels.voxel_counts()[v] + right.labels.voxel_counts()[v] for v in (1, 2)}
    assert total == full.voxel_counts()
    for half in (left, right):  # the symmetric template: halves of nearly equal size
        assert 0.45 < half.labels.voxel_counts()[1] / full.voxel_counts()[1] < 0.55
    # a voxel's world position and values are the same before and after
    rng = np.random.default_rng(0)
    for half, sign in ((left, -1), (right, 1)):
        ijk = rng.integers(0, half.image.shape, size=(200, 3))
        world = half.image.index_to_world(ijk)
        assert np.all(world[:, 0] < 0) if sign < 0 else np.all(world[:, 0] >= 0)
        orig = np.rint(mni.image.world_to_index(world)).astype(int)
        assert np.allclose(mni.image.index_to_world(orig), world, atol=1e-9)
        assert np.array_equal(half.image.array[tuple(ijk.T)], mni.image.array[tuple(orig.T)])
        assert np.array_equal(half.labels.array[tuple(ijk.T)], full.array[tuple(orig.T)])
        assert np.allclose(half.image.affine, half.labels.affine)
    assert left.name.endswith("left") and right.name.endswith("right")


def test_split_left_right_on_lps_phantom():
    case = phantom_case(5)  # LPS: voxel axis i points to the patient's left
    left, right = split_left_right(case)
    assert left.image.shape[0] == right.image.shape[0] == 48
    assert left.image.index_to_world([0, 0, 0])[0] < 0 < right.image.index_to_world([0, 0, 0])[0]
    assert np.array_equal(np.concatenate([right.image.array, left.image.array]), case.image.array)
    # the liver sits on the right, the spleen on the left
    assert LIVER in right.labels.voxel_counts() and SPLEEN in left.labels.voxel_counts()
    assert right.labels.voxel_counts()[LIVER] > left.labels.voxel_counts().get(LIVER, 0)
    assert left.labels.voxel_counts()[SPLEEN] > right.labels.voxel_counts().get(SPLEEN, 0)
    shifted = phantom_case(5)
    shifted.image.affine[0, 3] += 500.0  # all of it now lies at x > 0
    shifted.labels.affine[0, 3] += 500.0
    with pytest.raises(ValueError, match="one side"):
        split_left_right(shifted)


@pytest.fixture(scope="module")
def deep():
    return mni152_deep_case(0)


def test_mni152_deep_nuclei(deep):
    img, lab = deep.image, deep.labels
    assert img.modality == "MR" and img.axcodes == "RAS" and np.allclose(img.spacing, 1.0)
    assert {l.value: l.name for l in lab.table} == MNI152_DEEP_LABELS
    left, right = split_left_right(deep)
    for half in (left, right):  # each nucleus on each side: a few mL, one connected region
        ml = half.labels.volumes_ml()
        assert set(ml) == {1, 2, 3} and all(3.0 < v < 14.0 for v in ml.values()), ml
        for v in (1, 2, 3):
            comp, n = ndimage.label(half.labels.array == v)
            assert np.bincount(comp.ravel())[1:].max() > 0.9 * (half.labels.array == v).sum()
    # no longer the symmetric template: the right half is not the left half's mirror image
    mirrored = left.labels.array[::-1]
    n = min(mirrored.shape[0], right.labels.array.shape[0])
    assert np.mean(mirrored[-n:] != right.labels.array[:n]) > 0.0005
    # grey nuclei are darker than white matter around them on this T1
    t1 = img.array
    wm_around = ndimage.binary_dilation(lab.array > 0, iterations=3) & (lab.array == 0) & (t1 > 200)
    assert t1[lab.array > 0].mean() < 195 < t1[wm_around].mean()
    assert mni152_deep_case(0).image.array is t1 and not t1.flags.writeable  # cached, read-only


def test_frog_case():
    case = frog_case(0)
    img, lab = case.image, case.labels
    assert img.modality == "MR" and lab.shape == img.shape
    assert {l.value: l.name for l in lab.table} == FROG_LABELS
    left, right = split_left_right(case)
    for half in (left, right):  # each side holds half a brain and heart, one eye, one kidney
        ml = half.labels.volumes_ml()
        assert set(ml) == {1, 2, 3, 4} and all(1.0 < v < 8.0 for v in ml.values()), ml
    # the organs are the file's tissue labels: eyes (retina + white) are two separate blobs
    _, n_eyes = ndimage.label(lab.array == 2)
    assert n_eyes == 2
    # intensities: synthetic but not a lookup of the label (noise, texture and bias)
    brain = img.array[ndimage.binary_erosion(lab.array == 1)]
    assert 100 < np.median(brain) < 135 and brain.std() > 3
    assert np.array_equal(frog_case(0).image.array, img.array)
