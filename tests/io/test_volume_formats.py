"""NIfTI, NRRD and MetaImage loaders on real files: geometry, values, 4D and NaN handling.

Every geometry test writes a volume whose ground-truth voxel -> RAS affine is OBLIQUE and
anisotropic, with one bright marker voxel, and checks where the loaded marker lands in the
world: a flipped axis, a swapped spacing or a missing LPS->RAS conversion all move it.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import nibabel as nib
import nrrd
import numpy as np
import pytest
import SimpleITK as sitk

from viewer.io import load
from viewer.model import Volume

SHAPE = (24, 20, 12)
MARKER = (17, 5, 8)
SPACING = (0.7, 0.8, 2.5)
RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])  # its own inverse


def rotation(axis: str, degrees: float) -> np.ndarray:
    """(3, 3) right-handed rotation about a world axis."""
    c, s = np.cos(np.radians(degrees)), np.sin(np.radians(degrees))
    a, b = {"x": (1, 2), "y": (2, 0), "z": (0, 1)}[axis]
    r = np.eye(3)
    r[a, a], r[a, b], r[b, a], r[b, b] = c, -s, s, c
    return r


def oblique_affine(spacing=SPACING, origin=(-40.5, 12.25, 63.0)) -> np.ndarray:
    """Ground truth (4, 4) voxel -> RAS mm: 20 deg about z, then 10 deg about x."""
    aff = np.eye(4)
    aff[:3, :3] = rotation("x", 10) @ rotation("z", 20) @ np.diag(spacing)
    aff[:3, 3] = origin
    return aff


def marker_volume(dtype=np.int16, shape=SHAPE, marker=MARKER, seed: int = 0) -> np.ndarray:
    """(I, J, K) noise in -1000..999 with one voxel of 3000 at ``marker``."""
    arr = np.random.default_rng(seed).integers(-1000, 1000, shape).astype(dtype)
    arr[marker] = 3000
    return arr


def marker_world(vol: Volume) -> np.ndarray:
    """RAS mm of the brightest voxel of a loaded volume."""
    return vol.index_to_world(np.unravel_index(np.nanargmax(vol.array), vol.shape))


def truth_world(affine: np.ndarray, ijk=MARKER) -> np.ndarray:
    return affine[:3, :3] @ np.asarray(ijk, float) + affine[:3, 3]


# --- writers: each takes (path, array (I, J, K), RAS affine) ------------------------------------
def write_nifti(path: Path, arr: np.ndarray, affine: np.ndarray) -> None:
    nib.save(nib.Nifti1Image(arr, affine), str(path))


_NRRD_FLIP = {"left-posterior-superior": RAS_TO_LPS, "scanner-xyz": RAS_TO_LPS,
              "right-anterior-superior": np.eye(4), "left-anterior-superior": np.diag([-1.0, 1, 1, 1])}


def write_nrrd(path: Path, arr: np.ndarray, affine: np.ndarray, space: str = "left-posterior-superior",
               encoding: str = "gzip", detached: bool = False) -> None:
    m = _NRRD_FLIP[space] @ affine
    header = {"space": space, "space directions": m[:3, :3].T,  # one row per axis
              "space origin": m[:3, 3], "kinds": ["domain"] * 3, "encoding": encoding}
    nrrd.write(str(path), arr, header, detached_header=detached, index_order="F")


def write_itk(path: Path, arr: np.ndarray, affine: np.ndarray, compress: bool = False) -> None:
    m = RAS_TO_LPS @ affine
    spacing = np.linalg.norm(m[:3, :3], axis=0)
    img = sitk.GetImageFromArray(np.ascontiguousarray(arr.transpose(2, 1, 0)))  # (z, y, x)
    img.SetSpacing(spacing.tolist())
    img.SetDirection((m[:3, :3] / spacing).ravel().tolist())  # row-major, unit columns
    img.SetOrigin(m[:3, 3].tolist())
    sitk.WriteImage(img, str(path), useCompression=compress)


WRITERS = {
    "nifti": ("vol.nii.gz", write_nifti),
    "nrrd-lps-gzip": ("vol.nrrd", write_nrrd),
    "nrrd-ras-raw": ("vol.nrrd", partial(write_nrrd, space="right-anterior-superior", encoding="raw")),
    "nrrd-las": ("vol.nrrd", partial(write_nrrd, space="left-anterior-superior")),
    "nrrd-scanner-xyz": ("vol.nrrd", partial(write_nrrd, space="scanner-xyz")),
    "nhdr-detached-gzip": ("vol.nhdr", partial(write_nrrd, detached=True)),
    "mha": ("vol.mha", write_itk),
    "mha-compressed": ("vol.mha", partial(write_itk, compress=True)),
    "mhd-detached": ("vol.mhd", write_itk),
}


@pytest.mark.parametrize("case", list(WRITERS))
def test_oblique_marker_lands_where_written(tmp_path: Path, case: str) -> None:
    filename, writer = WRITERS[case]
    truth, arr = oblique_affine(), marker_volume()
    path = tmp_path / filename
    writer(path, arr, truth)

    vol = load(path)

    assert vol.shape == SHAPE and vol.name == "vol" and vol.source == str(path)
    np.testing.assert_array_equal(vol.array, arr)
    np.testing.assert_allclose(vol.affine, truth, atol=1e-4)
    np.testing.assert_allclose(marker_world(vol), truth_world(truth), atol=1e-4)
    np.testing.assert_allclose(vol.spacing, SPACING, atol=1e-5)


def test_metaimage_array_is_a_transposed_view(tmp_path: Path) -> None:
    write_itk(tmp_path / "v.mha", marker_volume(), oblique_affine())
    vol = load(tmp_path / "v.mha")
    # SimpleITK's (z, y, x) C-ordered array, transposed without a copy: x runs fastest
    assert vol.array.flags.f_contiguous and not vol.array.flags.owndata


def test_nrrd_spacings_only_gives_diagonal_affine(tmp_path: Path) -> None:
    arr = marker_volume()
    nrrd.write(str(tmp_path / "s.nrrd"), arr, {"spacings": list(SPACING)}, index_order="F")
    vol = load(tmp_path / "s.nrrd")
    np.testing.assert_allclose(vol.affine, np.diag([*SPACING, 1.0]))
    np.testing.assert_array_equal(vol.array, arr)


def test_nrrd_big_endian_loads_native(tmp_path: Path) -> None:
    arr = marker_volume()
    write_nrrd(tmp_path / "be.nrrd", arr.astype(">i2"), oblique_affine(), encoding="raw")
    vol = load(tmp_path / "be.nrrd")
    assert vol.array.dtype.isnative
    np.testing.assert_array_equal(vol.array, arr)


@pytest.mark.parametrize(
    "frame_axis, kinds, none_direction",
    [
        (3, ["domain", "domain", "domain", "list"], True),      # time series, frames last
        (0, ["vector", "domain", "domain", "domain"], True),    # DWI-style vector first
        (3, ["domain", "domain", "domain", "list"], False),     # spacings-only file
    ],
)
def test_nrrd_4d_gives_first_frame(tmp_path: Path, frame_axis, kinds, none_direction) -> None:
    frames = np.stack([marker_volume(seed=s) for s in range(3)], axis=frame_axis)
    m = RAS_TO_LPS @ oblique_affine()
    header = {"kinds": kinds, "encoding": "gzip"}
    if none_direction:
        dirs = np.insert(m[:3, :3].T, frame_axis, np.nan, axis=0)
        header.update({"space": "left-posterior-superior", "space directions": dirs,
                       "space origin": m[:3, 3]})
    else:
        header["spacings"] = [*SPACING, np.nan]
    nrrd.write(str(tmp_path / "f.nrrd"), frames, header, index_order="F")

    vol = load(tmp_path / "f.nrrd")

    assert vol.meta["frames"] == 3 and "first" in vol.meta["note"]
    np.testing.assert_array_equal(vol.array, marker_volume(seed=0))
    if none_direction:
        np.testing.assert_allclose(vol.affine, oblique_affine(), atol=1e-6)


def test_nrrd_single_slice_is_3d(tmp_path: Path) -> None:
    arr = marker_volume()[:, :, 0]
    nrrd.write(str(tmp_path / "one.nrrd"), arr, {"space": "left-posterior-superior",
               "space directions": np.diag([0.7, 0.8, 2.5])[:2], "space origin": [1.0, 2.0, 3.0]})
    vol = load(tmp_path / "one.nrrd")
    assert vol.shape == (24, 20, 1)
    np.testing.assert_allclose(vol.affine[:3, 3], [-1.0, -2.0, 3.0])


@pytest.mark.parametrize("vector", [False, True], ids=["4d", "vector-pixel"])
def test_metaimage_4d_or_vector_gives_first(tmp_path: Path, vector: bool) -> None:
    vols = [marker_volume(seed=s) for s in range(3)]
    zyx = np.stack([v.transpose(2, 1, 0) for v in vols], axis=-1 if vector else 0)
    img = sitk.GetImageFromArray(zyx, isVector=vector)
    if vector:
        img.SetSpacing(SPACING)
    else:
        img.SetSpacing([*SPACING, 1.0])
    sitk.WriteImage(img, str(tmp_path / "m.mha"))

    vol = load(tmp_path / "m.mha")

    np.testing.assert_array_equal(vol.array, vols[0])
    np.testing.assert_allclose(vol.affine, np.diag([-0.7, -0.8, 2.5, 1.0]))  # identity LPS
    assert vol.meta["components" if vector else "frames"] == 3 and "first" in vol.meta["note"]


@pytest.mark.parametrize("filename, writer", [WRITERS["nifti"], WRITERS["nrrd-lps-gzip"], WRITERS["mha"]],
                         ids=["nifti", "nrrd", "mha"])
def test_nan_and_inf_voxels_load(tmp_path: Path, filename, writer) -> None:
    arr = marker_volume(np.float32)
    arr[0, 0, 0], arr[1, 0, 0], arr[2, 0, 0] = np.nan, np.inf, -np.inf
    writer(tmp_path / filename, arr, oblique_affine())

    vol = load(tmp_path / filename)

    np.testing.assert_array_equal(vol.array, arr)  # NaN == NaN here
    stats = vol.stats()
    assert np.isfinite(list(stats.values())).all()
    assert stats["max"] == 3000.0 and stats["min"] >= -1000.0


def test_atomic_writes_get_the_usual_file_mode(tmp_path):
    """Files written through a temporary name get 0666 less the umask, not mkstemp's 0600."""
    import os

    from viewer.io.common import atomic_path

    mask = os.umask(0o022)
    os.umask(mask)
    with atomic_path(tmp_path / "out.txt") as tmp:
        tmp.write_text("x")
    assert (tmp_path / "out.txt").stat().st_mode & 0o777 == 0o666 & ~mask


@pytest.mark.parametrize("descrip, values, ct", [
    (b"CT", (0, 200), True),  # exactly "CT": NUL-padded in the header
    (b"ct scan", (0, 200), True),
    (b"Hounsfield units", (0, 200), True),
    (b"T1 MPRAGE", (0, 200), False),
    (b"", (-1024, 1500), True),  # no description: an HU-like range
], ids=["CT", "ct-scan", "hounsfield", "mr", "hu-range"])
def test_nifti_modality_from_the_description_or_the_range(tmp_path, descrip, values, ct):
    import nibabel as nib

    from viewer.io import load_path

    data = np.linspace(values[0], values[1], 8 * 8 * 8).reshape(8, 8, 8).astype(np.int16)
    img = nib.Nifti1Image(data, np.eye(4))
    img.header["descrip"] = descrip
    nib.save(img, tmp_path / "v.nii")
    assert (load_path(tmp_path / "v.nii").modality == "CT") == ct
