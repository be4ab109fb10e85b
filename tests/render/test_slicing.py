"""Cutting slices: exact voxels for axis-aligned volumes, sub-pixel agreement for oblique ones."""

from __future__ import annotations

import numpy as np
import pytest

from viewer.render.slicing import ORIENTATIONS, axis_aligned, extract_slice, plane_axes, slice_step


def _marker_display_xy(cut, mask_value):
    r, c = np.argwhere(cut.pixels == mask_value)[0]
    return cut.origin[0] + c * cut.spacing[0], cut.origin[1] + r * cut.spacing[1]


AFFINES = {
    "RAS": np.diag([1.0, 1.2, 2.0, 1.0]),
    "LPS": np.array([[-0.8, 0, 0, 40], [0, -0.8, 0, 30], [0, 0, 2.5, -60], [0, 0, 0, 1.0]]),
    "sagittal-acq": np.array([[0, 0, -1.5, 20], [1.1, 0, 0, -30], [0, -0.9, 0, 50], [0, 0, 0, 1.0]]),
}


@pytest.mark.parametrize("name", list(AFFINES))
@pytest.mark.parametrize("view", list(ORIENTATIONS))
def test_aligned_slice_puts_the_voxel_where_it_is(name, view):
    aff = AFFINES[name]
    assert axis_aligned(aff) is not None
    a = np.zeros((11, 13, 9), np.int16)
    ijk = (3, 9, 6)
    a[ijk] = 7
    p = aff[:3, :3] @ ijk + aff[:3, 3]
    cut = extract_slice(a, aff, view, p)
    u, v, _ = plane_axes(view)
    x, y = _marker_display_xy(cut, 7)
    assert (x, y) == pytest.approx((u @ p, v @ p), abs=1e-9)
    assert cut.pixels.dtype == np.int16  # no interpolation, exact values
    # display coordinates increase along columns and rows
    assert cut.spacing[0] > 0 and cut.spacing[1] > 0


@pytest.mark.parametrize("view", list(ORIENTATIONS))
def test_oblique_slice_within_a_voxel(view):
    th = np.deg2rad(20)
    rot = np.array([[np.cos(th), -np.sin(th), 0], [np.sin(th), np.cos(th), 0], [0, 0, 1]])
    aff = np.eye(4)
    aff[:3, :3] = rot @ np.diag([1.0, 1.0, 1.0])
    aff[:3, 3] = [5, -3, 2]
    assert axis_aligned(aff) is None
    i, j, k = np.indices((30, 30, 30))
    a = np.exp(-((i - 20) ** 2 + (j - 9) ** 2 + (k - 14) ** 2) / 4.0).astype(np.float32)
    p = aff[:3, :3] @ [20, 9, 14] + aff[:3, 3]
    cut = extract_slice(a, aff, view, p)
    r, c = np.unravel_index(np.nanargmax(cut.pixels), cut.pixels.shape)
    x, y = cut.origin[0] + c * cut.spacing[0], cut.origin[1] + r * cut.spacing[1]
    u, v, _ = plane_axes(view)
    assert abs(x - u @ p) <= 1.0 and abs(y - v @ p) <= 1.0


def test_slice_outside_volume_is_none():
    aff = np.eye(4)
    assert extract_slice(np.zeros((4, 4, 4)), aff, "axial", np.array([0, 0, 10.0])) is None


def test_radiological_orientation_vectors():
    # axial and coronal: patient's right on the screen's left; sagittal: anterior on the left
    u, v, n = plane_axes("axial")
    assert u @ [1, 0, 0] == -1 and v @ [0, 1, 0] == 1
    u, v, n = plane_axes("coronal")
    assert u @ [1, 0, 0] == -1 and v @ [0, 0, 1] == 1
    u, v, n = plane_axes("sagittal")
    assert u @ [0, 1, 0] == -1 and v @ [0, 0, 1] == 1
    assert slice_step(AFFINES["LPS"], "axial") == pytest.approx(2.5)


@pytest.mark.parametrize("value,text", [
    (400, "400"), (40, "40"), (2500.7, "2501"),  # HU-sized: whole numbers
    (1.0, "1"), (0.5, "0.5"), (0.123456, "0.123"), (-0.25, "-0.25"), (37.5, "37.5"),  # small: 3 digits
])
def test_window_level_corner_text_keeps_small_values(value, text):
    """A 0-1 saliency overlay or a normalised MR read "W 0 L 0" when the corner rounded to whole numbers."""
    from viewer.render.slice_view import _wl_text

    assert _wl_text(value) == text
