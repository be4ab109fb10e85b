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


# --- NRRD and MetaImage: the same frame contract, checked against the writing library's array ---
def _nrrd(path, data, kinds, encoding):
    import nrrd
    steps = iter(np.diag([1.5, 1.5, 2.0]))
    dirs = [next(steps) if k == "domain" else np.full(3, np.nan) for k in kinds]
    nrrd.write(str(path), data, {"kinds": kinds, "encoding": encoding, "space": "left-posterior-superior",
                                 "space directions": np.array(dirs)}, index_order="F")
    return path


@pytest.mark.parametrize("kinds,encoding", [
    (["domain", "domain", "domain", "list"], "raw"),
    (["domain", "domain", "domain", "time"], "gzip"),
    (["list", "domain", "domain", "domain"], "raw"),  # the frame axis first (fastest), as DWI files are
], ids=["time-last-raw", "time-last-gzip", "list-first-raw"])
def test_every_nrrd_frame_equals_pynrrds(tmp_path, kinds, encoding):
    import nrrd
    rng = np.random.default_rng(1)
    spatial = [9, 8, 7]
    shape = [4 if k != "domain" else spatial.pop(0) for k in kinds]
    data = rng.integers(-500, 1000, shape).astype(np.int16)
    path = _nrrd(tmp_path / "t.nrrd", data, kinds, encoding)
    ref, _ = nrrd.read(str(path), index_order="F")
    t = kinds.index(next(k for k in kinds if k != "domain"))
    layer = ImageLayer(load_path(path))
    assert layer.n_frames == 4
    for k in (0, 3, 1, 2):
        frame = layer.read_frame(k)
        assert frame.shape == layer.data.array.shape and frame.dtype == layer.data.array.dtype
        assert np.array_equal(frame, np.take(ref, k, axis=t))
    with pytest.raises(IndexError):
        layer.read_frame(4)


@pytest.mark.parametrize("ncomp", [1, 3], ids=["scalar", "vector"])
def test_every_metaimage_frame_equals_simpleitks(tmp_path, ncomp):
    import SimpleITK as sitk
    rng = np.random.default_rng(2)
    tzyx = rng.integers(0, 1000, (4, 7, 8, 9, ncomp) if ncomp > 1 else (4, 7, 8, 9)).astype(np.int16)
    img = sitk.GetImageFromArray(tzyx, isVector=ncomp > 1)
    img.SetSpacing((1.5, 1.5, 2.0, 1.0))
    path = tmp_path / "t.mha"
    sitk.WriteImage(img, str(path))
    layer = ImageLayer(load_path(path))
    assert layer.n_frames == 4 and layer.data.array.shape == (9, 8, 7)
    for k in (0, 3, 2):
        want = tzyx[k, ..., 0] if ncomp > 1 else tzyx[k]
        frame = layer.read_frame(k)
        assert frame.dtype == layer.data.array.dtype
        assert np.array_equal(frame, want.transpose(2, 1, 0))
    with pytest.raises(IndexError):
        layer.read_frame(-1)
