"""Bad input: every failure is one LoadError line that names the path, never a traceback.

Each case builds a real broken file (or folder) in ``tmp_path`` and says which words the
message must contain, so a user reading it knows what is wrong.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Callable

import nibabel as nib
import numpy as np
import pytest
from pydicom.data import get_testdata_file

from viewer.io import load
from viewer.model import LoadError

from .test_volume_formats import oblique_affine, marker_volume, write_itk, write_nifti, write_nrrd

GARBAGE = bytes(np.random.default_rng(7).integers(0, 256, 3000, dtype=np.uint8))


def _garbage(name: str) -> Callable[[Path], Path]:
    def make(tmp: Path) -> Path:
        (tmp / name).write_bytes(GARBAGE)
        return tmp / name
    return make


def _truncated(name: str, writer, keep: float = 0.5) -> Callable[[Path], Path]:
    """A valid file cut short: the header survives, the voxel data does not."""
    def make(tmp: Path) -> Path:
        path = tmp / name
        writer(path, marker_volume(), oblique_affine())
        data = path.read_bytes()
        path.write_bytes(data[: int(len(data) * keep)])
        return path
    return make


def _huge_nifti(version: int, n: int) -> Callable[[Path], Path]:
    """A small valid NIfTI whose header dims are then edited to claim n x n x n voxels."""
    def make(tmp: Path) -> Path:
        path = tmp / f"huge{version}.nii"
        cls = nib.Nifti1Image if version == 1 else nib.Nifti2Image
        img = cls(np.zeros((4, 4, 4), np.int16), np.eye(4))
        img.to_filename(path)
        hdr = img.header.copy()
        hdr.set_data_shape((n, n, n))
        data = path.read_bytes()
        block = hdr.binaryblock
        path.write_bytes(block + data[len(block):])  # same offsets, only the dims differ
        return path
    return make


def _missing(tmp: Path) -> Path:
    return tmp / "does_not_exist.nii.gz"


def _empty(name: str) -> Callable[[Path], Path]:
    def make(tmp: Path) -> Path:
        (tmp / name).touch()
        return tmp / name
    return make


def _text_folder(tmp: Path) -> Path:
    folder = tmp / "notes"
    (folder / "sub").mkdir(parents=True)
    (folder / "readme.txt").write_text("scan notes\n")
    (folder / "sub" / "IM0001").write_text("this is not DICOM either\n")
    return folder


def _dicomdir_only(tmp: Path) -> Path:
    shutil.copy(get_testdata_file("DICOMDIR"), tmp / "DICOMDIR")  # an index, no images
    return tmp / "DICOMDIR"


def _fake_dicm(tmp: Path) -> Path:
    (tmp / "IM0002").write_bytes(b"\0" * 128 + b"DICM" + GARBAGE)  # DICOM magic, garbage after
    return tmp / "IM0002"


def _detached_data_gone(name: str, writer) -> Callable[[Path], Path]:
    """A .mhd/.nhdr header whose separate voxel-data file was not copied along."""
    def make(tmp: Path) -> Path:
        writer(tmp / name, marker_volume(), oblique_affine())
        for f in tmp.iterdir():
            if f.name != name:
                f.unlink()
        return tmp / name
    return make


def _report(tmp: Path) -> Path:
    shutil.copy(get_testdata_file("reportsi.dcm"), tmp / "report.dcm")  # a structured report
    return tmp / "report.dcm"


CASES: dict[str, tuple[Callable[[Path], Path], str]] = {
    "missing": (_missing, "no such file"),
    "empty-nii": (_empty("e.nii"), "empty"),
    "empty-dcm": (_empty("e.dcm"), "empty"),
    "truncated-nii": (_truncated("t.nii", write_nifti), "truncated|corrupt"),
    "truncated-nii-gz": (_truncated("t.nii.gz", write_nifti), "truncated|corrupt|NIfTI"),
    "truncated-nrrd": (_truncated("t.nrrd", write_nrrd), "truncated|corrupt"),
    "truncated-nrrd-raw": (_truncated("t.nrrd", lambda p, a, m: write_nrrd(p, a, m, encoding="raw")),
                           "truncated|corrupt"),
    "truncated-mha": (_truncated("t.mha", write_itk), "truncated|corrupt"),
    "mhd-without-raw": (_detached_data_gone("d.mhd", write_itk), "data file .* missing"),
    "nhdr-without-data": (_detached_data_gone("d.nhdr", lambda p, a, m: write_nrrd(p, a, m, detached=True)),
                          "data file .* missing"),
    "garbage-nii": (_garbage("g.nii"), "NIfTI"),
    "garbage-nii-gz": (_garbage("g.nii.gz"), "NIfTI"),
    "garbage-nrrd": (_garbage("g.nrrd"), "NRRD"),
    "garbage-nhdr": (_garbage("g.nhdr"), "NRRD"),
    "garbage-mha": (_garbage("g.mha"), "MetaImage"),
    "garbage-mhd": (_garbage("g.mhd"), "MetaImage"),
    "garbage-dcm": (_garbage("g.dcm"), "DICOM"),
    "garbage-with-dicm-magic": (_fake_dicm, "DICOM file holds no image"),
    "dicom-report-not-image": (_report, "holds no image"),
    "nifti1-32767-cubed": (_huge_nifti(1, 32767), "GiB"),
    "nifti2-100000-cubed": (_huge_nifti(2, 100_000), "GiB"),
    "folder-without-dicom": (_text_folder, "no readable DICOM series"),
    "dicomdir-without-images": (_dicomdir_only, "no readable DICOM series"),
    "unsupported-extension": (_garbage("x.xyzabc"), "unsupported format"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_clear_line(tmp_path: Path, case: str) -> None:
    make, words = CASES[case]
    path = make(tmp_path)

    with pytest.raises(LoadError, match=words) as err:
        load(path)

    msg = str(err.value)
    assert str(path) in msg and err.value.path == str(path)
    assert "\n" not in msg and "Traceback" not in msg


def test_4d_nifti_gives_first_frame(tmp_path: Path) -> None:
    frames = np.stack([marker_volume(seed=s) for s in range(4)], axis=-1)
    nib.save(nib.Nifti1Image(frames, oblique_affine()), str(tmp_path / "f.nii.gz"))
    vol = load(tmp_path / "f.nii.gz")
    assert vol.shape == (24, 20, 12) and vol.meta["frames"] == 4
    np.testing.assert_array_equal(vol.array, frames[..., 0])


def test_float_nifti_with_nan_and_inf_loads(tmp_path: Path) -> None:
    arr = marker_volume(np.float32)
    arr[:3, 0, 0] = np.nan, np.inf, -np.inf
    write_nifti(tmp_path / "nan.nii", arr, oblique_affine())
    vol = load(tmp_path / "nan.nii")
    assert np.isnan(vol.array[0, 0, 0]) and np.isposinf(vol.array[1, 0, 0])
    stats = vol.stats()
    assert stats["max"] == 3000.0 and stats["min"] >= -1000.0
    assert all(np.isfinite(v) for v in stats.values())
