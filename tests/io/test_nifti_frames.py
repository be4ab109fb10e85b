"""4D NIfTI: every time frame can be read back exactly as nibabel reads it, and a layer shows the
frame asked for (only the latest request wins)."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from viewer.io import load_path
from viewer.model import ImageLayer


def _write(path, data, slope=None, inter=None):
    img = nib.Nifti1Image(data, np.diag([1.5, 1.5, 2.0, 1.0]))
    if slope is not None:
        img.header.set_slope_inter(slope, inter)
    nib.save(img, str(path))
    return path


@pytest.mark.parametrize("name,dtype,scale", [
    ("plain.nii", np.int16, None),
    ("plain.nii.gz", np.int16, None),
    ("scaled.nii", np.int16, (0.5, -10.0)),
    ("scaled.nii.gz", np.uint16, (2.0, 1.0)),
    ("float.nii.gz", np.float32, None),
])
def test_every_frame_equals_nibabels(tmp_path, name, dtype, scale):
    rng = np.random.default_rng(0)
    data = rng.integers(0, 1000, (9, 8, 7, 5)).astype(dtype)
    path = _write(tmp_path / name, data, *(scale or (None, None)))
    vol = load_path(path)
    layer = ImageLayer(vol)
    assert layer.n_frames == 5 and layer.frame == 0
    ref = nib.load(str(path)).get_fdata(dtype=np.float64)
    for k in (0, 3, 4, 1):
        frame = layer.read_frame(k)
        assert frame.shape == (9, 8, 7) and frame.dtype == vol.array.dtype
        np.testing.assert_allclose(frame, ref[..., k], rtol=0, atol=1e-3 if scale else 0)
    with pytest.raises(IndexError):
        layer.read_frame(5)


def test_five_dimensional_frames_in_file_order(tmp_path):
    data = np.arange(4 * 3 * 2 * 3 * 2, dtype=np.int32).reshape(4, 3, 2, 3, 2)
    path = _write(tmp_path / "five.nii.gz", data)
    layer = ImageLayer(load_path(path))
    assert layer.n_frames == 6
    for k in range(6):
        t, u = np.unravel_index(k, (3, 2), order="F")
        assert np.array_equal(layer.read_frame(k), data[..., t, u])


def test_layer_shows_only_the_latest_frame_asked_for(tmp_path):
    data = np.stack([np.full((4, 4, 3), v, np.int16) for v in (10, 20, 30)], axis=-1)
    layer = ImageLayer(load_path(_write(tmp_path / "t.nii", data)))
    seen = []
    layer.events.data.connect(lambda: seen.append(int(layer.data.array[0, 0, 0])))
    layer.frame = 1
    stale = layer.read_frame(1)
    layer.frame = 2
    assert layer.show_frame(1, stale) is False and seen == []  # the user moved on: dropped
    assert layer.show_frame(2, layer.read_frame(2)) is True and seen == [30]
    assert layer.display_state()["frame"] == 2  # scene files keep it


@pytest.mark.parametrize("value", [-1, 3, 1.5, True, "1"])
def test_frame_outside_the_file_is_refused(tmp_path, value):
    data = np.zeros((4, 4, 3, 3), np.int16)
    layer = ImageLayer(load_path(_write(tmp_path / "t.nii", data)))
    with pytest.raises(ValueError):
        layer.frame = value


def test_three_d_volume_has_one_frame(tmp_path):
    layer = ImageLayer(load_path(_write(tmp_path / "v.nii", np.zeros((4, 4, 3), np.int16))))
    assert layer.n_frames == 1
    with pytest.raises(ValueError):
        layer.frame = 1
