"""The CT phantom: one label table for both anatomies (the demo's reference patient and the varied
training phantoms), each anatomy deterministic, anatomically oriented and fast."""

from __future__ import annotations

import time

import numpy as np
import pytest
from scipy import ndimage

from viewer.model import LabelMap, Volume
from viewer.samples import phantom
from viewer.samples.phantom import (BONE, KIDNEYS, LIVER, MARKER_RADIUS_MM, MARKER_RAS, PHANTOM_COLORS,
                                    PHANTOM_LABELS, PHANTOM_SMALL_LABELS, SPLEEN, ct_phantom, phantom_case,
                                    phantom_cases)


def _table(lab: LabelMap) -> dict[int, tuple[str, tuple[float, ...]]]:
    return {l.value: (l.name, tuple(l.color)) for l in lab.table}


# one label table -------------------------------------------------------------------------------
def _segmentation_demo() -> tuple[Volume, LabelMap]:
    from viewer.samples.registry import demo_objects

    (image, _), (labels, _) = demo_objects("segmentation")[:2]
    return image, labels


def _default_demo() -> tuple[Volume, LabelMap]:
    from viewer.samples.registry import demo_objects

    (image, _), (labels, _), _globe = demo_objects("default")
    return image, labels


# every way a caller gets a phantom: the two demo scenes, the tests' small grids, the benchmarks' cases
SOURCES = {
    "default-demo": _default_demo,
    "segmentation-demo": _segmentation_demo,
    "reference-small-grid": lambda: ct_phantom((40, 40, 24), (4.8, 4.8, 8.0), seed=5),
    "varied-seed-0": lambda: ct_phantom((96, 96, 64), (2.0, 2.0, 2.5), seed=0, anatomy="varied"),
    "phantom_case-seed-7": lambda: (lambda c: (c.image, c.labels))(phantom_case(7)),
}


def test_the_table_is_one_table():
    assert PHANTOM_LABELS == {1: "liver", 2: "kidneys", 3: "spleen", 4: "bone"}
    assert (LIVER, KIDNEYS, SPLEEN, BONE) == (1, 2, 3, 4)
    assert set(PHANTOM_COLORS) == set(PHANTOM_LABELS)
    assert phantom.LABEL_NAMES is PHANTOM_LABELS  # the demo's old name is the same dict, not a copy
    # the old import paths hand out the very same functions
    from viewer.samples import datasets, demo

    assert demo.ct_phantom is ct_phantom and demo.LABEL_NAMES is PHANTOM_LABELS
    assert datasets.phantom_case is phantom_case and datasets.PHANTOM_LABELS is PHANTOM_LABELS


@pytest.mark.parametrize("make", list(SOURCES.values()), ids=list(SOURCES))
def test_every_phantom_has_the_same_labels_on_the_same_organs(make):
    """Names and colours are the table's, and each value is the organ it names, by anatomy: the
    liver on the patient's right, the spleen on the left, two posterior kidneys, bone brightest."""
    vol, lab = make()
    assert _table(lab) == {v: (n, PHANTOM_COLORS[v]) for v, n in PHANTOM_LABELS.items()}
    assert set(np.unique(lab.array)) == {0, LIVER, KIDNEYS, SPLEEN, BONE}

    def world(value: int) -> np.ndarray:
        return vol.index_to_world(np.argwhere(lab.array == value))

    assert world(LIVER).mean(0)[0] > 0 > world(SPLEEN).mean(0)[0]
    kidneys = world(KIDNEYS)
    assert (kidneys[:, 0] > 0).any() and (kidneys[:, 0] < 0).any()  # one on each side
    assert kidneys.mean(0)[1] < world(LIVER).mean(0)[1]  # posterior to the liver
    _, n = ndimage.label(lab.array == KIDNEYS)
    assert n >= 2
    hu = vol.array
    med = {v: np.median(hu[lab.array == v]) for v in PHANTOM_LABELS}
    assert med[BONE] > 250 and max(med[LIVER], med[KIDNEYS], med[SPLEEN]) < 80


@pytest.mark.parametrize("kwargs, message", [
    (dict(anatomy="random"), "anatomy must be one of reference, varied"),
    (dict(small_organs=True), "small_organs needs anatomy='varied'"),
], ids=["unknown-anatomy", "small-organs-on-the-reference"])
def test_bad_options_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ct_phantom((16, 16, 8), **kwargs)


# the reference patient -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def reference() -> tuple[Volume, LabelMap]:
    return ct_phantom()


def test_reference_is_deterministic_and_seeded(reference):
    vol, lab = reference
    vol2, lab2 = ct_phantom()
    np.testing.assert_array_equal(vol.array, vol2.array)
    np.testing.assert_array_equal(lab.array, lab2.array)
    np.testing.assert_array_equal(vol.affine, vol2.affine)
    other, _ = ct_phantom(seed=1)
    assert not np.array_equal(vol.array, other.array)


def test_reference_geometry(reference):
    vol, lab = reference
    assert vol.shape == (128, 128, 96) and vol.array.dtype == np.int16
    assert vol.axcodes == "LPS"  # voxel axes as in a DICOM-ordered array
    np.testing.assert_allclose(np.diag(vol.affine)[:3], [-1.5, -1.5, 2.0])
    np.testing.assert_allclose(vol.center_world(), 0.0, atol=1e-9)
    assert vol.modality == "CT" and vol.name == "CT phantom"
    np.testing.assert_array_equal(lab.affine, vol.affine)
    assert lab.shape == vol.shape and lab.array.dtype == np.uint8


def test_reference_hounsfield_ranges(reference):
    vol, lab = reference
    a = vol.array
    assert -1100 <= a.min() and a.max() <= 2200
    corner = a[:10, :10, :]  # outside the body: air
    assert abs(np.median(corner) + 1000) < 5 and 5 < corner.std() < 15  # noise sd ~10 HU
    for value, hu in {LIVER: 60, KIDNEYS: 30, SPLEEN: 50}.items():
        assert abs(np.median(a[lab.array == value]) - hu) < 5, value
    bone = a[lab.array == BONE]
    assert 650 <= np.median(bone) <= 1250 and bone.max() < 1300


def test_marker_is_at_marker_ras(reference):
    vol, lab = reference
    ijk = np.rint(vol.world_to_index(np.asarray(MARKER_RAS))).astype(int)
    assert vol.array[tuple(ijk)] > 1500
    assert vol.value_at(np.asarray(MARKER_RAS)) > 1500
    # the bright voxels are a sphere centred exactly on MARKER_RAS, with the documented radius
    bright = np.argwhere(vol.array > 1500)
    centre = vol.index_to_world(bright.mean(axis=0))
    np.testing.assert_allclose(centre, MARKER_RAS, atol=0.5)
    vox_ml = len(bright) * vol.voxel_ml
    assert vox_ml == pytest.approx(4 / 3 * np.pi * MARKER_RADIUS_MM ** 3 / 1000, rel=0.15)
    # asymmetric: patient's left (-x in RAS), anterior (+y), superior (+z)
    assert MARKER_RAS[0] < 0 < MARKER_RAS[1] and MARKER_RAS[2] > 0


@pytest.mark.parametrize("shape, spacing", [((48, 48, 32), (4.0, 4.0, 6.0)),  # same 192 mm view
                                            ((32, 32, 24), (1.5, 1.5, 2.0))],  # a small view
                         ids=["192mm-coarse", "48mm-view"])
def test_reference_on_other_grids_keeps_every_organ_and_the_marker(shape, spacing):
    vol, lab = ct_phantom(shape, spacing, seed=2)
    assert vol.shape == lab.shape == shape and vol.axcodes == "LPS"
    assert set(np.unique(lab.array)) == {0, 1, 2, 3, 4}
    marker = np.asarray(vol.meta["marker_ras"])
    assert vol.value_at(marker) > 1500
    if np.allclose(np.multiply(shape, spacing), 192.0):
        np.testing.assert_allclose(marker, MARKER_RAS)  # the same patient, coarser


def test_reference_is_fast():
    t0 = time.perf_counter()
    ct_phantom()
    assert time.perf_counter() - t0 < 1.0


# the varied anatomy ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def phantoms():
    return phantom_cases(4, first_seed=10)


def test_varied_is_deterministic_and_seeds_differ():
    a, b, c = phantom_case(3), phantom_case(3), phantom_case(4)
    assert np.array_equal(a.image.array, b.image.array) and np.array_equal(a.labels.array, b.labels.array)
    assert not np.array_equal(a.image.array, c.image.array)
    # the anatomy differs, not just the noise
    assert np.mean(a.labels.array != c.labels.array) > 0.01
    assert [x.name for x in phantom_cases(2, first_seed=3)] == [a.name, c.name] == ["phantom-0003", "phantom-0004"]
    # phantom_case is ct_phantom's varied anatomy, wrapped as a Case
    vol, lab = ct_phantom((96, 96, 64), (2.0, 2.0, 2.5), seed=3, anatomy="varied")
    assert np.array_equal(vol.array, a.image.array) and np.array_equal(lab.array, a.labels.array)


def test_varied_geometry_and_types(phantoms):
    for case in phantoms:
        img, lab = case.image, case.labels
        assert isinstance(img, Volume) and isinstance(lab, LabelMap)
        assert img.modality == "CT" and img.array.dtype == np.int16 and lab.array.dtype == np.uint8
        assert img.shape == lab.shape == (96, 96, 64)
        assert np.allclose(img.affine, lab.affine) and img.axcodes == "LPS"
        assert np.allclose(img.spacing, (2.0, 2.0, 2.5))
        assert np.allclose(img.center_world(), 0.0, atol=1e-9)  # the grid is centred at world 0
        assert {l.value: l.name for l in lab.table} == PHANTOM_LABELS


def test_varied_hounsfield_ranges(phantoms):
    for case in phantoms:
        hu, lab = case.image.array.astype(float), case.labels.array
        corner = hu[:5, :5, :]  # outside the body
        assert abs(corner.mean() + 1000) < 5 and 8 < corner.std() < 22  # air plus ~15 HU noise
        assert hu.min() >= -1024 and 900 <= hu.max() <= 1400
        # each organ's core, away from partial-volume edges
        inner = {v: ndimage.binary_erosion(lab == v) for v in PHANTOM_LABELS}
        med = {v: float(np.median(hu[m])) for v, m in inner.items()}
        assert 45 <= med[LIVER] <= 75 and 30 <= med[SPLEEN] <= 60 and 15 <= med[KIDNEYS] <= 45
        assert 250 <= med[BONE] <= 1250  # bone: cancellous to cortical
        body = hu > -500
        assert 0.2 < body.mean() < 0.75
        # subcutaneous fat exists: plenty of voxels near -100 HU
        assert np.mean((hu > -140) & (hu < -60)) > 0.02


def test_varied_labels_present_plausible_and_placed(phantoms):
    vols = []
    for case in phantoms:
        lab, img = case.labels, case.image
        ml = lab.volumes_ml()
        assert set(ml) == {LIVER, KIDNEYS, SPLEEN, BONE}
        assert 100 < ml[LIVER] < 700 and 15 < ml[SPLEEN] < 200 and 15 < ml[KIDNEYS] < 200 and 40 < ml[BONE] < 400
        assert ml[LIVER] == max(ml[v] for v in (LIVER, KIDNEYS, SPLEEN))  # the liver is the largest organ
        # organs never overlap and keep a gap: no organ voxel touches another organ's
        organs = np.where(np.isin(lab.array, (LIVER, KIDNEYS, SPLEEN)), lab.array, 0)
        for v in (LIVER, KIDNEYS, SPLEEN):
            ring = ndimage.binary_dilation(organs == v) & (organs != v)
            assert not (organs[ring] > 0).any(), v
        # every labelled voxel is inside the body, never in air
        assert img.array[lab.array > 0].min() > -600
        vols.append(ml[LIVER])
    assert len(set(np.round(vols, 3))) == len(vols)  # sizes vary between seeds


def test_varied_other_grid_and_speed():
    t = time.perf_counter()
    phantom_case(0)
    assert time.perf_counter() - t < 1.5
    small = phantom_case(1, shape=(48, 40, 32), spacing=(4.0, 4.5, 5.0))
    assert small.image.shape == (48, 40, 32) and np.allclose(small.image.spacing, (4.0, 4.5, 5.0))
    assert set(small.labels.volumes_ml()) == {LIVER, KIDNEYS, SPLEEN, BONE}


SMALL_GRID = dict(shape=(128, 128, 80), spacing=(1.5, 1.5, 2.0))


@pytest.mark.parametrize("seed", [0, 100, 101], ids=["train-seed-0", "test-seed-100", "test-seed-101"])
def test_small_organs(seed):
    case = phantom_case(seed, small_organs=True, **SMALL_GRID)
    plain = phantom_case(seed, **SMALL_GRID)
    lab, hu = case.labels, case.image.array.astype(float)
    assert {l.value: l.name for l in lab.table} == PHANTOM_SMALL_LABELS
    ml = lab.volumes_ml()
    assert set(ml) == {1, 2, 3} and all(0.3 < v < 6.0 for v in ml.values()), ml  # small: a few mL at most
    # the big organs are still in the image, unlabelled: only the small ones' voxels changed much
    changed = np.abs(hu - plain.image.array.astype(float)) > 60
    assert changed[lab.array == 0].mean() < 0.002
    # no small organ takes a kidney's or a bone's voxels
    assert not np.isin(plain.labels.array[lab.array > 0], (KIDNEYS, BONE)).any()
    centroid = {v: case.image.index_to_world(np.argwhere(lab.array == v).mean(0)) for v in (1, 3)}
    assert centroid[1][0] > 10 and centroid[3][0] < 5  # gallbladder on the right (liver side), pancreas left
    inner = {v: ndimage.binary_erosion(lab.array == v) for v in (1, 2, 3)}
    assert -15 < np.median(hu[inner[1]]) < 40  # bile, darker than the liver around it
    _, n_adrenals = ndimage.label(lab.array == 2)
    assert n_adrenals >= 2  # one above each kidney
    assert np.array_equal(case.image.array, phantom_case(seed, small_organs=True, **SMALL_GRID).image.array)
