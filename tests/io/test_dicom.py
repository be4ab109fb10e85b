"""DICOM series loading on real files written with pydicom: order, geometry, rescale, series.

``write_dicom_series`` writes a CT series the way scanners do (LPS geometry, stored values
plus RescaleSlope/Intercept) but hostile to naive readers: random file names without
extensions, nested folders, scrambled InstanceNumber and non-DICOM files mixed in.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Sequence

import nibabel as nib
import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, MRImageStorage, generate_uid
from pydicom.valuerep import DSfloat

from viewer.io import load
from viewer.io.dicom import list_series
from viewer.model import LoadError

from .test_volume_formats import (MARKER, RAS_TO_LPS, SHAPE, marker_volume, marker_world,
                                  oblique_affine, rotation, truth_world)


def _ds(values) -> list[DSfloat]:
    """Decimal strings of at most 16 characters, as the DS VR requires."""
    return [DSfloat(float(v), auto_format=True) for v in np.ravel(values)]


def write_dicom_series(volume: np.ndarray, affine_ras: np.ndarray, folder: Path, modality: str = "CT",
                       series_description: str = "test series", shuffle_names: bool = False, seed: int = 0,
                       slope: float | Sequence[float] = 1.0, intercept: float = -1024.0,
                       series_uid: str | None = None) -> tuple[str, list[Path]]:
    """Write ``volume`` (I, J, K) as one single-frame slice per k; returns (uid, files).

    Slice k holds ``volume[:, :, k].T`` (rows = j, columns = i) at
    ``ImagePositionPatient = LPS(affine @ (0, 0, k))``; the in-plane axes of ``affine_ras``
    must be orthogonal (the slice axis may be tilted: gantry tilt). Values are stored as
    ``round((value - intercept) / slope)`` (slope may differ per slice). With
    ``shuffle_names`` files get random names without extensions, a third of them in nested
    subfolders, written in random order; InstanceNumber is always scrambled.
    """
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    n = volume.shape[2]
    slopes = np.broadcast_to(np.asarray(slope, float), (n,))
    lps = RAS_TO_LPS @ affine_ras
    col_step, row_step = lps[:3, 0], lps[:3, 1]  # along i (a row) and along j (a column)
    rowcos, colcos = col_step / np.linalg.norm(col_step), row_step / np.linalg.norm(row_step)
    normal = np.cross(rowcos, colcos)
    series_uid = series_uid or generate_uid()
    study_uid, frame_uid = generate_uid(), generate_uid()
    sop_class = {"CT": CTImageStorage, "MR": MRImageStorage}[modality]
    files: list[Path] = []
    for order, k in enumerate(rng.permutation(n) if shuffle_names else range(n)):
        stored = np.rint((volume[:, :, k].astype(float) - intercept) / slopes[k]).T
        signed = stored.min() < 0
        assert stored.min() >= (-32768 if signed else 0) and stored.max() <= (32767 if signed else 65535)
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = sop_class
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = sop_class, meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study_uid, series_uid, frame_uid
        ds.PatientName, ds.PatientID = "Phantom^Test", "PHANTOM-001"
        ds.Modality, ds.SeriesDescription, ds.SeriesNumber = modality, series_description, 1
        ds.InstanceNumber = int(rng.integers(1, 10_000))  # deliberately meaningless
        ds.ImageOrientationPatient = _ds(np.r_[rowcos, colcos])
        ds.ImagePositionPatient = _ds(lps[:3, :3] @ [0, 0, k] + lps[:3, 3])
        ds.PixelSpacing = _ds([np.linalg.norm(row_step), np.linalg.norm(col_step)])  # [rows, cols]
        ds.SliceThickness = _ds([abs(lps[:3, 2] @ normal)])[0]
        ds.Rows, ds.Columns = volume.shape[1], volume.shape[0]
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.HighBit = 16, 15
        ds.BitsStored = 16
        ds.PixelRepresentation = int(signed)
        ds.RescaleSlope, ds.RescaleIntercept = _ds([slopes[k]])[0], _ds([intercept])[0]
        ds.WindowCenter, ds.WindowWidth = _ds([40, 400])
        ds.PixelData = stored.astype(np.int16 if signed else np.uint16).tobytes()
        if shuffle_names:
            sub = folder / ("a/b" if order % 3 == 0 else "")
            sub.mkdir(parents=True, exist_ok=True)
            path = sub / rng.bytes(6).hex()
        else:
            path = folder / f"{modality.lower()}{seed}_{k:03d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        files.append(path)
    return series_uid, files


def _flip_k(affine: np.ndarray, n: int) -> np.ndarray:
    """Affine of the same grid with its k axis reversed."""
    flip = np.eye(4)
    flip[2, 2], flip[2, 3] = -1.0, n - 1
    return affine @ flip


def _tilted() -> np.ndarray:
    aff = oblique_affine()
    aff[:3, 2] += 0.4 * aff[:3, 1] / np.linalg.norm(aff[:3, 1])  # gantry tilt: k leans along j
    return aff


def _mirrored() -> np.ndarray:
    aff = oblique_affine()
    aff[:3, 2] *= -1  # k runs against the slice normal: the loader must reverse it
    return aff


@pytest.mark.parametrize("truth", [oblique_affine(), _tilted(), _mirrored()],
                         ids=["oblique", "tilted", "mirrored"])
def test_dicom_matches_nifti_in_world(tmp_path: Path, truth: np.ndarray) -> None:
    arr = marker_volume()
    nib.save(nib.Nifti1Image(arr, truth), str(tmp_path / "ref.nii"))
    uid, _ = write_dicom_series(arr, truth, tmp_path / "dcm", shuffle_names=True, seed=3)
    (tmp_path / "dcm" / "README.txt").write_text("not a DICOM file")
    (tmp_path / "dcm" / "a" / "junk").write_bytes(bytes(range(256)) * 4)

    nii, dcm = load(tmp_path / "ref.nii"), load(tmp_path / "dcm")

    # DICOM stacks along +normal; a k axis against the normal comes back reversed
    reverse = np.linalg.det(truth[:3, :3]) < 0
    expect_arr = arr[:, :, ::-1] if reverse else arr
    expect_aff = _flip_k(truth, SHAPE[2]) if reverse else truth
    assert dcm.shape == SHAPE and dcm.array.dtype == np.int16
    np.testing.assert_array_equal(dcm.array, expect_arr)
    np.testing.assert_allclose(dcm.affine, expect_aff, atol=1e-4)
    nii_aff = _flip_k(nii.affine, SHAPE[2]) if reverse else nii.affine
    np.testing.assert_allclose(dcm.affine, nii_aff, atol=1e-4)
    np.testing.assert_allclose(marker_world(dcm), truth_world(truth), atol=1e-4)
    np.testing.assert_allclose(marker_world(dcm), marker_world(nii), atol=1e-4)
    for ijk in [(0, 0, 0), (23, 0, 0), (0, 19, 0), (5, 7, 11)]:  # corners and an inner voxel
        dijk = (ijk[0], ijk[1], SHAPE[2] - 1 - ijk[2]) if reverse else ijk
        np.testing.assert_allclose(dcm.index_to_world(dijk), nii.index_to_world(ijk), atol=1e-4)
        assert dcm.array[dijk] == nii.array[ijk]
    assert dcm.modality == "CT" and dcm.meta["format"] == "DICOM" and dcm.meta["modality"] == "CT"
    assert dcm.meta["series_uid"] == uid and dcm.meta["window"] == (400.0, 40.0)
    assert dcm.name == "dcm" and dcm.source == str(tmp_path / "dcm") and "note" not in dcm.meta


def test_standard_axial_series_is_lps(tmp_path: Path) -> None:
    # the usual CT: rows go to patient left, columns to posterior, slices feet -> head
    truth = np.array([[-0.7, 0, 0, 120.0], [0, -0.8, 0, 100.0], [0, 0, 2.5, -300.0], [0, 0, 0, 1]])
    write_dicom_series(marker_volume(), truth, tmp_path, shuffle_names=True)
    vol = load(tmp_path)
    assert vol.axcodes == "LPS"
    np.testing.assert_allclose(vol.affine, truth, atol=1e-6)  # PixelSpacing order matters here
    np.testing.assert_allclose(vol.spacing, (0.7, 0.8, 2.5))


@pytest.mark.parametrize(
    "values, slope, intercept, dtype",
    [
        (np.arange(4096) - 1024, 1.0, -1024.0, np.int16),              # stored 0..4095 -> HU
        (np.arange(0, 4096, 2) - 1024, [1.0, 2.0] * 6, -1024.0, np.int16),  # per-slice integer slope
        (np.arange(4096) * 0.5 - 1024, 0.5, -1024.0, np.float32),      # fractional slope
        (np.arange(0, 60000, 7), 1.0, 0.0, np.int32),                  # too big for int16
    ],
    ids=["ct-hu", "per-slice-slope", "fractional-slope", "wide-range"],
)
def test_rescale_is_applied_exactly(tmp_path: Path, values, slope, intercept, dtype) -> None:
    arr = np.resize(values, (24, 20, 12)).astype(np.float64)
    write_dicom_series(arr, np.diag([0.7, 0.8, 2.5, 1.0]), tmp_path, slope=slope, intercept=intercept)
    vol = load(tmp_path)
    assert vol.array.dtype == dtype
    np.testing.assert_array_equal(vol.array, arr)


def _two_series(folder: Path, **kw) -> tuple[str, str]:
    big, _ = write_dicom_series(marker_volume(), oblique_affine(), folder, series_description="Big CT", **kw)
    small_arr = marker_volume(shape=(16, 16, 5), marker=(3, 4, 2))
    small, _ = write_dicom_series(small_arr, np.diag([1.0, 1.0, 3.0, 1.0]), folder, modality="MR",
                                  series_description="Small MR", seed=1, **kw)
    return big, small


def test_several_series_largest_first_and_pick_by_uid(tmp_path: Path) -> None:
    big, small = _two_series(tmp_path, shuffle_names=True)

    vol = load(tmp_path)
    assert vol.shape == SHAPE and vol.meta["series_uid"] == big
    assert vol.meta["note"] == "2 series in folder; loaded the largest: 'Big CT' (CT, 20x24x12)"
    assert [s["description"] for s in vol.meta["series"]] == ["Big CT", "Small MR"]

    other = load(tmp_path, series=small)
    assert other.shape == (16, 16, 5) and other.modality == "MR" and other.meta["series_uid"] == small
    assert "note" not in other.meta

    infos = list_series(tmp_path)
    assert [(s.uid, s.description, s.modality, s.shape, s.n_files) for s in infos] == [
        (big, "Big CT", "CT", (20, 24, 12), 12), (small, "Small MR", "MR", (16, 16, 5), 5)]
    assert len(infos[1].files) == 5
    assert "Phantom" not in repr(vol.meta) and "PHANTOM" not in repr(infos)  # no patient data

    with pytest.raises(LoadError, match="no series with UID"):
        load(tmp_path, series="1.2.3.4")


def test_one_file_loads_its_own_series(tmp_path: Path) -> None:
    big, small = _two_series(tmp_path)  # both series side by side in one folder
    one = next(tmp_path.glob("mr*.dcm"))  # some slice of the small series
    vol = load(one)
    assert vol.meta["series_uid"] == small and vol.shape == (16, 16, 5) and "note" not in vol.meta
    assert vol.name == tmp_path.name


def test_series_mixing_orientations_is_split(tmp_path: Path) -> None:
    uid, _ = write_dicom_series(marker_volume(), oblique_affine(), tmp_path / "ax")
    tilted = np.eye(4)
    tilted[:3, :3] = rotation("x", 90)  # a coronal localizer inside the same series
    localizer = marker_volume(shape=(24, 20, 3), marker=(1, 1, 1))
    write_dicom_series(localizer, tilted, tmp_path / "loc", series_uid=uid, seed=2)
    infos = list_series(tmp_path)
    assert [s.uid for s in infos] == [uid, uid + "#2"] and infos[1].shape == (20, 24, 3)
    assert load(tmp_path).shape == SHAPE
    assert load(tmp_path, series=uid + "#2").shape == (24, 20, 3)


def test_pydicom_sample_ct_loads(tmp_path: Path) -> None:
    src = Path(get_testdata_file("CT_small.dcm"))
    shutil.copy(src, tmp_path / "CT_small.dcm")
    ref = pydicom.dcmread(src)

    for target in (tmp_path / "CT_small.dcm", tmp_path):
        vol = load(target)
        assert vol.shape == (128, 128, 1) and vol.modality == "CT" and vol.axcodes == "LPS"
        expected = ref.pixel_array.T * float(ref.RescaleSlope) + float(ref.RescaleIntercept)
        np.testing.assert_array_equal(vol.array[:, :, 0], expected)
        row_mm, col_mm = map(float, ref.PixelSpacing)
        np.testing.assert_allclose(vol.spacing, [col_mm, row_mm, float(ref.SliceThickness)])
        lps = np.array([-1, -1, 1]) * vol.affine[:3, 3]
        np.testing.assert_allclose(lps, [float(v) for v in ref.ImagePositionPatient])


def test_uneven_spacing_loads_with_warning(tmp_path: Path) -> None:
    _, files = write_dicom_series(marker_volume(), oblique_affine(), tmp_path)
    files[5].unlink()  # a missing slice
    vol = load(tmp_path)
    assert vol.shape == (24, 20, 11) and "not uniform" in vol.meta["note"]


def test_duplicate_file_is_ignored(tmp_path: Path) -> None:
    _, files = write_dicom_series(marker_volume(), oblique_affine(), tmp_path)
    shutil.copy(files[3], tmp_path / "copy_of_slice3")
    vol = load(tmp_path)
    assert vol.shape == SHAPE and "duplicate" in vol.meta["note"]
    np.testing.assert_array_equal(vol.array, marker_volume())


def test_two_slices_at_one_position_are_refused(tmp_path: Path) -> None:
    uid, _ = write_dicom_series(marker_volume(), oblique_affine(), tmp_path / "echo1")
    write_dicom_series(marker_volume(seed=5), oblique_affine(), tmp_path / "echo2", series_uid=uid)
    with pytest.raises(LoadError, match="same position") as err:
        load(tmp_path)
    assert str(tmp_path) in str(err.value) and "\n" not in str(err.value)


def test_truncated_slice_names_the_file(tmp_path: Path) -> None:
    _, files = write_dicom_series(marker_volume(), oblique_affine(), tmp_path)
    data = files[4].read_bytes()
    files[4].write_bytes(data[: len(data) - 300])
    with pytest.raises(LoadError, match=files[4].name):
        load(tmp_path)


def test_compressed_without_decoder_is_a_clear_error(tmp_path: Path) -> None:
    from pydicom.pixels import get_decoder
    from pydicom.uid import JPEGLSLossless

    if get_decoder(JPEGLSLossless).is_available:
        pytest.skip("a JPEG-LS decoder is installed here")
    shutil.copy(get_testdata_file("MR_small_jpeg_ls_lossless.dcm"), tmp_path / "jls")
    with pytest.raises(LoadError, match="JPEG-LS") as err:
        load(tmp_path)
    assert "\n" not in str(err.value)


def test_marker_index_is_column_row_slice(tmp_path: Path) -> None:
    # array[i, j, k]: i = column index (along a row), j = row index: the marker must not swap
    write_dicom_series(marker_volume(), np.diag([0.7, 0.8, 2.5, 1.0]), tmp_path, shuffle_names=True)
    vol = load(tmp_path)
    assert np.unravel_index(np.argmax(vol.array), vol.shape) == MARKER
