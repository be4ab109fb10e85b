"""Label editing: brush geometry in millimetres, threshold-in-brush, morphological tools, and an
undo history whose memory follows the voxels touched, not the volume."""

from __future__ import annotations

import numpy as np
import pytest

from viewer.edit import (EditHistory, brush_mask, fill_holes, interpolate_slices, keep_largest_component,
                         remove_islands, voxel_axis_for_normal)
from viewer.model import LabelMap, Volume
from viewer.model.labels import LabelTable


def labels_on(shape, spacing=(1.0, 1.0, 1.0), dtype=np.uint8) -> LabelMap:
    aff = np.diag([*spacing, 1.0])
    return LabelMap(np.zeros(shape, dtype), aff, LabelTable.for_values([1, 2]))


@pytest.mark.parametrize("spacing,radius,shape,expected", [
    ((1, 1, 1), 5.0, "disk", np.pi * 25),
    ((0.5, 0.5, 3.0), 5.0, "disk", np.pi * 25 / 0.25),     # 0.25 mm² pixels in the axial plane
    ((1, 1, 1), 6.0, "sphere", 4 / 3 * np.pi * 216),
    ((0.8, 0.8, 2.0), 6.0, "sphere", 4 / 3 * np.pi * 216 / (0.8 * 0.8 * 2.0)),
], ids=["disk-iso", "disk-aniso", "sphere-iso", "sphere-aniso"])
def test_brush_covers_its_size_in_mm(spacing, radius, shape, expected):
    lab = labels_on((64, 64, 32), spacing)
    centre = np.array([32, 32, 16]) * np.array(spacing, float)
    mask, box = brush_mask(lab, centre, radius, shape=shape, normal_ras=(0, 0, 1))
    assert mask.sum() == pytest.approx(expected, rel=0.12)
    if shape == "disk":
        assert box[2].stop - box[2].start == 1  # one axial slice


def test_disk_lies_in_the_plane_of_the_view():
    lab = labels_on((40, 40, 40))
    for normal, axis in (((1, 0, 0), 0), ((0, 1, 0), 1), ((0, 0, 1), 2)):
        assert voxel_axis_for_normal(lab.affine, normal) == axis
        _, box = brush_mask(lab, (20, 20, 20), 4.0, normal_ras=normal)
        assert box[axis].stop - box[axis].start == 1


def test_brush_off_the_volume_is_nothing_and_bad_radius_refused():
    lab = labels_on((10, 10, 10))
    assert brush_mask(lab, (500, 500, 500), 3.0) is None
    with pytest.raises(ValueError):
        brush_mask(lab, (5, 5, 5), 0.0)


def test_threshold_in_brush_and_paint_over():
    lab = labels_on((30, 30, 5))
    img = np.zeros((30, 30, 5), np.float32)
    img[:15] = 100.0  # half the brush is "bone"
    vol = Volume(img, np.eye(4))
    mask, box = brush_mask(lab, (15, 15, 2), 6.0, image=vol, threshold=(50, 200))
    painted = np.zeros(lab.shape, bool)
    painted[box] = mask
    assert painted.any() and np.all(img[painted] == 100.0)
    lab.array[10:20, 10:20, 2] = 2
    mask, box = brush_mask(lab, (15, 15, 2), 6.0, paint_over=[0])
    assert not np.any(lab.array[box][mask] == 2)


def test_undo_redo_restore_exactly_and_track_saved_state():
    lab = labels_on((40, 40, 10))
    lab.array[5:10, 5:10, 5] = 2
    start = lab.array.copy()
    hist = EditHistory(lab)
    boxes = []
    hist.changed.connect(boxes.append)
    mask, box = brush_mask(lab, (8, 8, 5), 4.0)
    c1 = hist.apply(mask, 1, box, "paint")
    after1 = lab.array.copy()
    mask, box = brush_mask(lab, (20, 20, 5), 3.0)
    hist.apply(mask, 1, box)
    assert hist.dirty and len(boxes) == 2 and c1.n_voxels == int((after1 != start).sum())
    hist.undo()
    np.testing.assert_array_equal(lab.array, after1)
    hist.undo()
    np.testing.assert_array_equal(lab.array, start)
    assert not hist.dirty and hist.undo() is None
    hist.redo()
    np.testing.assert_array_equal(lab.array, after1)
    hist.mark_saved()
    assert not hist.dirty
    hist.redo()
    assert hist.dirty
    # a no-op edit records nothing
    assert hist.apply(np.zeros(lab.shape, bool), 1) is None


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int32])
def test_undo_memory_follows_the_voxels_touched_not_the_volume(dtype):
    lab = labels_on((256, 256, 200), dtype=dtype)  # 13 M voxels
    hist = EditHistory(lab)
    touched = 0
    rng = np.random.default_rng(0)
    for _ in range(30):
        c = rng.uniform(20, 180, 3)
        mask, box = brush_mask(lab, c, 6.0, shape="disk")
        change = hist.apply(mask, int(rng.integers(1, 3)), box)
        touched += change.n_voxels if change else 0
    itemsize = np.dtype(dtype).itemsize
    assert touched > 2000
    # values (old + one new per stroke) and one bit per voxel of each tight box
    assert hist.nbytes <= 2 * touched * itemsize + 64 * 30
    assert hist.nbytes < lab.array.nbytes / 100


def test_history_limit_drops_the_oldest_steps():
    lab = labels_on((64, 64, 64))
    hist = EditHistory(lab, limit_bytes=3_000)
    for k in range(20):
        mask, box = brush_mask(lab, (32, 32, 2 + 3 * k), 10.0)
        hist.apply(mask, 1, box)
    assert hist.nbytes <= 3_000 + 500 and hist.dropped > 0 and hist.dirty


def test_edits_to_a_read_only_map_go_to_a_private_copy():
    arr = np.zeros((10, 10, 10), np.uint8)
    arr.flags.writeable = False
    lab = LabelMap(arr, np.eye(4))
    hist = EditHistory(lab)
    mask, box = brush_mask(lab, (5, 5, 5), 2.0)
    hist.apply(mask, 1, box)
    assert lab.array is not arr and lab.array.sum() > 0 and arr.sum() == 0


def test_fill_holes_3d_and_per_slice():
    lab = labels_on((20, 20, 6))
    yy, xx = np.mgrid[:20, :20]
    ring = (np.hypot(yy - 10, xx - 10) <= 6) & (np.hypot(yy - 10, xx - 10) >= 4)
    lab.array[:, :, 2][ring] = 1
    mask3d, _ = fill_holes(lab, 1)          # open at top and bottom in 3D: nothing enclosed
    assert not mask3d.any()
    mask2d, _ = fill_holes(lab, 1, axis=2)  # slice by slice: the disk's inside
    assert mask2d[10, 10, 2] and mask2d.sum() == int((np.hypot(yy - 10, xx - 10) < 4).sum())


def test_keep_largest_and_remove_islands_in_mm3():
    lab = labels_on((30, 30, 30), spacing=(2, 2, 2))  # 8 mm³ voxels
    lab.array[2:10, 2:10, 2:10] = 1    # 512 voxels
    lab.array[20:22, 20:22, 20:22] = 1  # 8 voxels = 64 mm³
    lab.array[25, 25, 25] = 1          # 1 voxel = 8 mm³
    mask, _ = keep_largest_component(lab, 1)
    assert mask.sum() == 9
    mask, _ = remove_islands(lab, 1, min_mm3=50.0)
    assert mask.sum() == 1 and mask[25, 25, 25]


def test_interpolation_between_painted_slices():
    lab = labels_on((40, 40, 11))
    yy, xx = np.mgrid[:40, :40]
    lab.array[:, :, 0][np.hypot(yy - 20, xx - 20) <= 5] = 1
    lab.array[:, :, 10][np.hypot(yy - 20, xx - 20) <= 13] = 1
    lab.array[0:3, 0:3, 5] = 2  # another label in the way stays
    mask, _ = interpolate_slices(lab, 1, axis=2)
    assert not mask[:, :, 0].any() and not mask[:, :, 10].any()
    middle = mask[:, :, 5]
    r = np.sqrt(middle.sum() / np.pi)
    assert 8.0 <= r <= 10.0  # halfway between radii 5 and 13
    assert not mask[0:3, 0:3, 5].any()


def test_a_stroke_of_many_dabs_is_one_undo_step():
    lab = labels_on((60, 60, 5))
    lab.array[28:32, 10:50, 2] = 2
    start = lab.array.copy()
    hist = EditHistory(lab)
    hist.begin_group()
    for x in range(10, 50, 2):  # overlapping dabs across label 2
        mask, box = brush_mask(lab, (30, x, 2), 4.0)
        hist.apply(mask, 1, box)
    stroke = hist.end_group("paint")
    assert len(hist.done) == 1 and stroke.what == "paint"
    after = lab.array.copy()
    assert stroke.n_voxels == int((after != start).sum())
    hist.undo()
    np.testing.assert_array_equal(lab.array, start)  # label 2 back where the dabs crossed it
    hist.redo()
    np.testing.assert_array_equal(lab.array, after)
