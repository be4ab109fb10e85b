"""Hostile volume files: each is refused with one line, fast, in little memory, and never hangs.

Every case builds a real file with the real libraries (nibabel, SimpleITK, pynrrd, pydicom)
or by hand where the point is a lying header, then runs ``main.py info FILE`` in a subprocess
with its address space capped (RLIMIT_AS) and a wall-clock timeout: a header that makes the
loader allocate gigabytes dies of MemoryError instead of passing, a FIFO that blocks trips
the timeout. The CLI must exit 2 with exactly one line on stderr that names the path, and
print nothing on stdout. Files that are strange but fine (scaled NIfTI, a FIFO beside a
DICOM series, data in another folder) must load, with their true values.
"""

from __future__ import annotations

import bz2
import gzip
import os
import re
import resource
import shutil
import subprocess
import sys
import time
import tracemalloc
import warnings
import zlib
from pathlib import Path
from typing import Callable

import nibabel as nib
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from pydicom.data import get_testdata_file

from viewer.io import load
from viewer.model import LoadError

ROOT = Path(__file__).resolve().parents[2]
MEMORY_CAP = 1536 << 20  # bytes of address space for the CLI: imports fit, a blow-up does not
TIME_CAP = 20.0  # seconds for one `main.py info` (imports included) on a busy 2-core machine
GIB = 2**30


def run_info(path: Path, timeout: float = TIME_CAP) -> tuple[subprocess.CompletedProcess, float]:
    """``main.py info PATH`` under the memory cap; (result, seconds)."""
    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))

    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    env.pop("DISPLAY", None)
    start = time.perf_counter()
    result = subprocess.run([sys.executable, str(ROOT / "main.py"), "info", str(path)], cwd=ROOT,
                            capture_output=True, text=True, timeout=timeout, preexec_fn=cap, env=env)
    return result, time.perf_counter() - start


# --- file makers --------------------------------------------------------------------------------
def nifti_claiming(name: str, shape=(1024, 1024, 512)) -> Callable[[Path], Path]:
    """A ~400-byte NIfTI whose header claims ``shape`` int16 voxels (1 GiB by default: within
    the memory of any test machine, so only the file-size check can refuse it)."""
    def make(tmp: Path) -> Path:
        img = nib.Nifti1Image(np.zeros((4, 4, 2), np.int16), np.eye(4))
        img.header.set_data_shape(shape)
        img.header["vox_offset"] = 352
        block = img.header.binaryblock + b"\0" * 4 + np.zeros(32, np.int16).tobytes()
        path = tmp / name
        path.write_bytes(gzip.compress(block) if name.endswith(".gz") else block)
        return path
    return make


def analyze_pair(img_kind: str) -> Callable[[Path], Path]:
    """A .hdr/.img pair whose .img is a FIFO or too small for the header, or whose .hdr is a FIFO."""
    def make(tmp: Path) -> Path:
        nib.save(nib.Nifti1Pair(np.zeros((64, 64, 64), np.int16), np.eye(4)), str(tmp / "p.hdr"))
        if img_kind == "hdr-fifo":  # the user opens the .img; its header is a FIFO
            (tmp / "p.hdr").unlink()
            os.mkfifo(tmp / "p.hdr")
            return tmp / "p.img"
        (tmp / "p.img").unlink()
        if img_kind == "fifo":
            os.mkfifo(tmp / "p.img")
        else:
            (tmp / "p.img").write_bytes(b"\0" * 100)
        return tmp / "p.hdr"
    return make


def fifo(name: str) -> Callable[[Path], Path]:
    def make(tmp: Path) -> Path:
        os.mkfifo(tmp / name)
        return tmp / name
    return make


def corrupt_middle(name: str, writer: Callable[[Path], None], start: float = 0.5,
                   n: int = 24) -> Callable[[Path], Path]:
    """A valid compressed file with ``n`` bytes flipped in the middle of its stream."""
    def make(tmp: Path) -> Path:
        path = tmp / name
        writer(path)
        data = bytearray(path.read_bytes())
        at = int(len(data) * start)
        for k in range(at, at + n):
            data[k] ^= 0x5A
        path.write_bytes(bytes(data))
        return path
    return make


def ct_like(shape=(40, 36, 30)) -> np.ndarray:
    """int16 noise over smooth structure: compresses, and every byte of the stream matters."""
    rng = np.random.default_rng(3)
    return (rng.integers(-1000, 1000, shape)).astype(np.int16)


def write_nii_gz(path: Path) -> None:
    nib.save(nib.Nifti1Image(ct_like(), np.eye(4)), str(path))


def write_mha_compressed(path: Path) -> None:
    sitk.WriteImage(sitk.GetImageFromArray(ct_like().transpose(2, 1, 0).copy()), str(path), True)


def write_nrrd_encoded(encoding: str) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        import nrrd
        nrrd.write(str(path), ct_like(), {"encoding": encoding}, index_order="F")
    return write


def mhd(data_file: str, dims=(64, 64, 64), extra: str = "", element="MET_SHORT",
        make_data: Callable[[Path], None] | None = None, folder: str = "",
        files: tuple[str, ...] = ()) -> Callable[[Path], Path]:
    """A detached MetaImage header naming ``data_file`` (then ``files``, for a LIST);
    ``make_data(tmp)`` creates the data."""
    def make(tmp: Path) -> Path:
        where = tmp / folder if folder else tmp
        where.mkdir(parents=True, exist_ok=True)
        if make_data is not None:
            make_data(tmp)
        head = (f"ObjectType = Image\nNDims = {len(dims)}\nDimSize = {' '.join(map(str, dims))}\n"
                f"ElementType = {element}\n{extra}ElementDataFile = {data_file}\n")
        (where / "h.mhd").write_text(head + "".join(f"{f}\n" for f in files))
        return where / "h.mhd"
    return make


def mha_attached(dims, payload: bytes, compressed: bool = False) -> Callable[[Path], Path]:
    def make(tmp: Path) -> Path:
        head = (f"ObjectType = Image\nNDims = 3\nBinaryData = True\nBinaryDataByteOrderMSB = False\n"
                f"CompressedData = {compressed}\nDimSize = {' '.join(map(str, dims))}\n"
                f"ElementType = MET_SHORT\nElementDataFile = LOCAL\n")
        (tmp / "a.mha").write_bytes(head.encode() + payload)
        return tmp / "a.mha"
    return make


def nrrd_file(name: str, fields: dict[str, str], payload: bytes = b"",
              data: tuple[str, bytes] | None = None, make_data: Callable[[Path], None] | None = None,
              folder: str = "") -> Callable[[Path], Path]:
    """A hand-written NRRD header (attached ``payload``, or a detached ``data`` file)."""
    def make(tmp: Path) -> Path:
        where = tmp / folder if folder else tmp
        where.mkdir(parents=True, exist_ok=True)
        if data is not None:
            (tmp / data[0]).write_bytes(data[1])
        if make_data is not None:
            make_data(tmp)
        head = "NRRD0004\n" + "".join(f"{k}: {v}\n" for k, v in fields.items()) + "\n"
        (where / name).write_bytes(head.encode() + payload)
        return where / name
    return make


BASE = {"type": "short", "dimension": "3", "sizes": "64 64 64", "endian": "little", "encoding": "raw"}


def with_(**kw: str) -> dict[str, str]:
    out = dict(BASE)
    out.update({k.replace("_", " "): v for k, v in kw.items()})
    return out


def dicom_copy(tmp: Path, name: str, **changes) -> Path:
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom rightly warns that 'NaN' is no valid DS
        for key, value in changes.items():
            setattr(ds, key, value)
    (tmp / "series").mkdir(exist_ok=True)
    ds.save_as(tmp / "series" / name)
    return tmp / "series"


def dicom_nan_slope(tmp: Path) -> Path:
    return dicom_copy(tmp, "IM1", RescaleSlope="NaN")


def dicom_inf_intercept(tmp: Path) -> Path:
    return dicom_copy(tmp, "IM1", RescaleIntercept="inf")


def dicom_claims_huge(tmp: Path) -> Path:
    # 128 x 128 pixels in the file, 30000 x 30000 in the header: the size check must fire
    # before the (30000, 30000, 1) array is allocated
    return dicom_copy(tmp, "IM1", Rows=30000, Columns=30000)


def gzip_bomb(tmp: Path) -> Path:
    # a 1000-voxel header whose gzip stream expands to 256 MiB of zeros
    stream = zlib.compressobj(9, zlib.DEFLATED, 31)
    body = b"".join(stream.compress(b"\0" * (1 << 20)) for _ in range(256)) + stream.flush()
    return nrrd_file("bomb.nrrd", with_(type="uchar", sizes="10 10 10", encoding="gzip"), body)(tmp)


def nrrd_like_text(name: str, text: str) -> Callable[[Path], Path]:
    def make(tmp: Path) -> Path:
        (tmp / name).write_text(text)
        return tmp / name
    return make


def elsewhere_raw(tmp: Path) -> None:
    (tmp / "elsewhere").mkdir(exist_ok=True)
    (tmp / "elsewhere" / "d.raw").write_bytes(b"\0" * 100)


def fifo_at(name: str) -> Callable[[Path], None]:
    def make(tmp: Path) -> None:
        os.mkfifo(tmp / name)
    return make


def list_with_fifo(tmp: Path) -> None:
    (tmp / "s0.raw").write_bytes(b"\0" * 8 * 8 * 2)
    os.mkfifo(tmp / "s1.raw")


# name -> (maker, words the one-line message must contain)
REFUSED: dict[str, tuple[Callable[[Path], Path], str]] = {
    # NIfTI: size claims, pairs, FIFOs, corrupt streams, bad scaling
    "nii-400-bytes-claims-1GiB": (nifti_claiming("claims.nii"), r"claims 1\.0 GiB .* holds only"),
    "nii-gz-claims-1GiB": (nifti_claiming("claims.nii.gz"), r"claims 1\.0 GiB .* gzip data"),
    "nii-claims-30000-cubed": (nifti_claiming("cube.nii", (30000, 30000, 30000)), r"GiB"),
    "hdr-img-pair-img-too-small": (analyze_pair("small"), r"claims .* holds only 100 bytes"),
    "hdr-img-pair-img-is-fifo": (analyze_pair("fifo"), r"image file .*p\.img: not a regular file \(a FIFO\)"),
    "img-opened-hdr-is-fifo": (analyze_pair("hdr-fifo"), r"header .*p\.hdr: not a regular file \(a FIFO\)"),
    "fifo-named-nii": (fifo("f.nii"), r"not a regular file \(a FIFO\)"),
    "fifo-named-nii-gz": (fifo("f.nii.gz"), r"not a regular file \(a FIFO\)"),
    "fifo-named-nrrd": (fifo("f.nrrd"), r"not a regular file \(a FIFO\)"),
    "fifo-named-mha": (fifo("f.mha"), r"not a regular file \(a FIFO\)"),
    "fifo-named-dcm": (fifo("f.dcm"), r"not a regular file \(a FIFO\)"),
    "nii-gz-corrupt-stream": (corrupt_middle("c.nii.gz", write_nii_gz), r"truncated|corrupt"),
    "nii-gz-corrupt-near-end": (corrupt_middle("c.nii.gz", write_nii_gz, start=0.97, n=4), r"truncated|corrupt"),
    # MetaImage: detached data that is a device, a FIFO, too small; lying attached data
    "mhd-data-is-dev-zero": (mhd("/dev/zero"), r"/dev/zero: not a regular file \(a character device\)"),
    "mhd-data-is-fifo": (mhd("d.raw", make_data=fifo_at("d.raw")), r"d\.raw: not a regular file \(a FIFO\)"),
    "mhd-data-too-small": (mhd("d.raw", (1024, 1024, 512), make_data=lambda t: (t / "d.raw").write_bytes(b"\0" * 64)),
                           r"claims 1\.0 GiB .* holds only 64 bytes"),
    "mhd-data-is-a-folder": (mhd("sub", make_data=lambda t: (t / "sub").mkdir()), r"not a regular file \(a folder\)"),
    "mhd-negative-dim-read-as-huge": (mhd("d.raw", (4, -4, 4), make_data=lambda t: (t / "d.raw").write_bytes(b"\0" * 128)),
                                      r"claims .*GiB"),
    "mhd-data-missing": (mhd("gone.raw"), r"data file .* missing \(gone\.raw\)"),
    "mhd-list-with-fifo": (mhd("LIST", (8, 8, 2), make_data=list_with_fifo, files=("s0.raw", "s1.raw")),
                           r"s1\.raw: not a regular file \(a FIFO\)"),
    "mhd-pattern-2e9-files": (mhd("s%03d.raw 1 2000000000 1", (8, 8, 4)), r"names 2000000000 files for 4 slices"),
    "mhd-compressed-over-list": (mhd("LIST", (8, 8, 2), extra="CompressedData = True\n", files=("s0.raw", "s1.raw"),
                                     make_data=lambda t: [(t / f"s{i}.raw").write_bytes(b"x" * 9) for i in (0, 1)]),
                                 r"several files is not supported"),
    "mha-claims-1GiB": (mha_attached((1024, 1024, 512), b"\0" * 100), r"claims 1\.0 GiB .* holds only 100 bytes"),
    "mha-compressed-claims-1GiB": (mha_attached((1024, 1024, 512), zlib.compress(b"\0" * 1000), True),
                                   r"claims 1\.0 GiB .* gzip data"),
    "mha-corrupt-zlib": (corrupt_middle("c.mha", write_mha_compressed, start=0.6), r"compressed data is corrupt"),
    "mha-zlib-cut-short": (mha_attached((40, 36, 30), zlib.compress(ct_like().tobytes())[:5000], True),
                           r"ends after .* bytes|truncated"),
    "mha-no-element-type-itk-chatter": (nrrd_like_text("g.mha", "ObjectType = Image\nNDims = 3\nDimSize = 8 9\n"
                                                                "ElementDataFile = LOCAL\n"),
                                        r"not a readable MetaImage file \(ElementType required"),
    # NRRD: detached data that is a device, a FIFO, too small; skips; compression
    "nhdr-data-is-dev-zero": (nrrd_file("h.nhdr", with_(data_file="/dev/zero")), r"not a regular file \(a character device\)"),
    "nhdr-data-is-fifo": (nrrd_file("h.nhdr", with_(data_file="d.raw"), make_data=fifo_at("d.raw")),
                          r"not a regular file \(a FIFO\)"),
    "nhdr-data-too-small": (nrrd_file("h.nhdr", with_(data_file="d.raw", sizes="1024 1024 512"),
                                      data=("d.raw", b"\0" * 64)), r"claims 1\.0 GiB .* holds only 64 bytes"),
    "nrrd-kinds-fewer-than-axes": (nrrd_file("k.nrrd", with_(sizes="2 2 2", kinds="domain"), b"\0" * 16),
                                   r"'kinds' has 1 entries for 3 axes"),
    "nhdr-data-list": (nrrd_file("h.nhdr", with_(data_file="LIST")), r"list or pattern of data files"),
    "nhdr-data-pattern": (nrrd_file("h.nhdr", with_(data_file="s%03d.raw 1 2000000000 1")),
                          r"list or pattern of data files"),
    "nrrd-claims-1GiB": (nrrd_file("c.nrrd", with_(sizes="1024 1024 512"), b"\0" * 100),
                         r"claims 1\.0 GiB .* holds only 100 bytes"),
    "nrrd-gzip-claims-1GiB": (nrrd_file("c.nrrd", with_(sizes="1024 1024 512", encoding="gzip"),
                                        gzip.compress(b"\0" * 1000)), r"claims 1\.0 GiB .* gzip data"),
    "nrrd-bzip2-claims-huge": (nrrd_file("c.nrrd", with_(sizes="1024 1024 512", encoding="bzip2"),
                                         bz2.compress(b"\0" * 1000)), r"claims 1\.0 GiB .* bzip2 data"),
    "nrrd-line-skip-2e9": (nrrd_file("s.nrrd", with_(sizes="2 2 2", line_skip="2000000000"), b"\0" * 16 + b"\n" * 5),
                           r"line skip 2000000000 passes the end .* \(5 lines there\)"),
    "nhdr-line-skip-2e9": (nrrd_file("s.nhdr", with_(sizes="2 2 2", data_file="d.raw", line_skip="2000000000"),
                                     data=("d.raw", b"\0" * 16)), r"line skip 2000000000 passes the end"),
    "nrrd-byte-skip-2e9": (nrrd_file("s.nrrd", with_(sizes="2 2 2", byte_skip="2000000000"), b"\0" * 16),
                           r"claims 1\.9 GiB .* holds only 16 bytes"),
    "nrrd-negative-line-skip": (nrrd_file("s.nrrd", with_(sizes="2 2 2", line_skip="-3"), b"\0" * 16), r"line skip: -3"),
    "nrrd-gzip-corrupt": (corrupt_middle("c.nrrd", write_nrrd_encoded("gzip"), start=0.6),
                          r"compressed data is corrupt|truncated|more bytes than the header"),
    "nrrd-bzip2-corrupt": (corrupt_middle("c.nrrd", write_nrrd_encoded("bzip2"), start=0.6),
                          r"compressed data is corrupt|truncated|more bytes than the header"),
    "nrrd-gzip-bomb-small-claim": (gzip_bomb, r"holds more bytes than the header says"),
    "nrrd-gzip-byte-skip-minus-1": (nrrd_file("s.nrrd", with_(sizes="2 2 2", encoding="gzip", byte_skip="-1"),
                                              gzip.compress(b"\0" * 16)), r"byte skip: -1.* not supported"),
    # DICOM: rescale that makes every voxel NaN; a header claiming far more pixels than the file
    "dicom-nan-rescale-slope": (dicom_nan_slope, r"RescaleSlope nan .* not finite"),
    "dicom-inf-rescale-intercept": (dicom_inf_intercept, r"RescaleIntercept inf: not finite"),
    "dicom-rows-columns-claim-30000": (dicom_claims_huge, r"IM1 holds \d+ bytes, too few for the 30000x30000"),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_hostile_file_is_one_line_fast_and_small(tmp_path: Path, case: str) -> None:
    make, words = REFUSED[case]
    path = make(tmp_path)

    result, seconds = run_info(path)

    assert result.returncode == 2, (result.returncode, result.stdout[-300:], result.stderr[-500:])
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: {path}: "), lines[0]
    assert re.search(words, lines[0]), lines[0]
    assert "Traceback" not in lines[0] and "MemoryError" not in lines[0]
    assert seconds < TIME_CAP


@pytest.mark.parametrize("case", ["nii-400-bytes-claims-1GiB", "mhd-data-too-small", "nrrd-gzip-claims-1GiB",
                                  "nrrd-line-skip-2e9", "nrrd-gzip-bomb-small-claim", "dicom-rows-columns-claim-30000"])
def test_blow_ups_are_refused_in_process_within_bounds(tmp_path: Path, case: str) -> None:
    """The loader itself (no interpreter start-up): well under a second, under 8 MiB of Python heap."""
    make, words = REFUSED[case]
    path = make(tmp_path)
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(LoadError, match=words):
            load(path)
        seconds = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert seconds < 1.0, seconds
    assert peak < 8 << 20, peak


# --- strange but valid: must load, with the right values ------------------------------------
SCALED = {  # name -> (stored dtype, slope, inter, file suffix)
    "uint16-ct-inter-minus-1024-nii": (np.uint16, 1.0, -1024.0, ".nii"),
    "uint16-ct-inter-minus-1024-nii-gz": (np.uint16, 1.0, -1024.0, ".nii.gz"),
    "int16-slope-0.5-nii": (np.int16, 0.5, 0.0, ".nii"),
    "int16-slope-0.5-inter-3-nii-gz": (np.int16, 0.5, 3.0, ".nii.gz"),
    "uint8-slope-2-nii": (np.uint8, 2.0, 0.0, ".nii"),
    "uint8-slope-2-nii-gz": (np.uint8, 2.0, 0.0, ".nii.gz"),
    "int32-slope-3-inter-minus-7-nii": (np.int32, 3.0, -7.0, ".nii"),
    "int32-slope-0.25-nii-gz": (np.int32, 0.25, 0.0, ".nii.gz"),
    "float32-slope-4-nii": (np.float32, 4.0, 1.5, ".nii"),
}


@pytest.mark.parametrize("case", list(SCALED))
def test_scaled_nifti_gives_true_float32_values(tmp_path: Path, case: str) -> None:
    dtype, slope, inter, suffix = SCALED[case]
    info = np.iinfo(dtype) if np.dtype(dtype).kind in "iu" else None
    lo, hi = (max(info.min, -30000), min(info.max, 60000)) if info else (-500, 500)
    raw = np.random.default_rng(1).integers(lo, hi, (33, 17, 9)).astype(dtype)
    img = nib.Nifti1Image(raw, np.diag([0.5, 0.7, 2.0, 1.0]))
    img.header.set_slope_inter(slope, inter)
    path = tmp_path / f"scaled{suffix}"
    nib.save(img, str(path))  # written by nibabel itself, stored type kept

    vol = load(path)

    assert nib.load(str(path)).get_data_dtype() == np.dtype(dtype)
    assert vol.array.dtype == np.float32 and vol.shape == raw.shape
    expected = raw.astype(np.float64) * slope + inter  # exact in float32 for these values
    np.testing.assert_array_equal(vol.array, expected.astype(np.float32))
    np.testing.assert_array_equal(vol.array.astype(np.float64), expected)
    assert vol.meta["scaling"] == {"slope": slope, "inter": inter, "stored": np.dtype(dtype).name}
    np.testing.assert_allclose(vol.spacing, (0.5, 0.7, 2.0))


def test_scaled_4d_nifti_gives_first_frame_scaled(tmp_path: Path) -> None:
    raw = np.random.default_rng(2).integers(0, 4000, (10, 9, 8, 3)).astype(np.uint16)
    img = nib.Nifti1Image(raw, np.eye(4))
    img.header.set_slope_inter(1.0, -1024.0)
    nib.save(img, str(tmp_path / "f.nii.gz"))
    vol = load(tmp_path / "f.nii.gz")
    assert vol.meta["frames"] == 3 and vol.array.dtype == np.float32
    np.testing.assert_array_equal(vol.array, raw[..., 0].astype(np.float32) - 1024)


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
def test_scaled_nifti_peak_memory_within_2_5x_of_result(tmp_path: Path, suffix: str) -> None:
    """Python-heap peak of the load (tracemalloc sees numpy's buffers) <= 2.5 x the float32 array."""
    raw = (np.arange(256 * 256 * 128, dtype=np.int64) % 3000).astype(np.int16).reshape(256, 256, 128, order="F")
    img = nib.Nifti1Image(raw, np.eye(4))
    img.header.set_slope_inter(1.0, -1024.0)
    nib.save(img, str(tmp_path / f"big{suffix}"))
    del raw, img
    tracemalloc.start()
    try:
        vol = load(tmp_path / f"big{suffix}")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    result = vol.array.nbytes
    assert vol.array.dtype == np.float32 and result == 256 * 256 * 128 * 4
    assert peak <= 2.5 * result, peak / result
    assert float(vol.array[5, 0, 0]) == 5 - 1024.0


def test_fifo_in_dicom_folder_is_skipped_not_opened(tmp_path: Path) -> None:
    folder = dicom_copy(tmp_path, "IM1")
    os.mkfifo(folder / "IM2")
    (folder / "sub").mkdir()
    os.mkfifo(folder / "sub" / "pipe")
    (folder / "zero").symlink_to("/dev/zero")

    result, seconds = run_info(folder)

    assert result.returncode == 0, result.stderr
    assert result.stderr == "" and '"kind": "volume"' in result.stdout
    assert '"shape": [128, 128, 1]' in result.stdout
    assert seconds < TIME_CAP


def test_dicom_single_file_beside_a_fifo_loads(tmp_path: Path) -> None:
    folder = dicom_copy(tmp_path, "IM1.dcm")
    os.mkfifo(folder / "IM2.dcm")
    result, _ = run_info(folder / "IM1.dcm")
    assert result.returncode == 0 and result.stderr == "", result.stderr


def _raw_elsewhere(tmp: Path, arr: np.ndarray) -> Path:
    (tmp / "elsewhere").mkdir()
    (tmp / "elsewhere" / "d.raw").write_bytes(arr.tobytes(order="F"))
    return tmp / "elsewhere" / "d.raw"


OUTSIDE = {  # name -> writes a header (in tmp/case/) naming data in tmp/elsewhere/; returns header
    "nhdr-relative": lambda t: nrrd_file("h.nhdr", with_(sizes="8 6 4", data_file="../elsewhere/d.raw"),
                                         folder="case")(t),
    "nhdr-absolute": lambda t: nrrd_file("h.nhdr", with_(sizes="8 6 4", data_file=str(t / "elsewhere" / "d.raw")),
                                         folder="case")(t),
    "mhd-relative": lambda t: mhd("../elsewhere/d.raw", (8, 6, 4), folder="case")(t),
}


@pytest.mark.parametrize("case", list(OUTSIDE))
def test_data_file_outside_the_header_folder_is_recorded(tmp_path: Path, case: str) -> None:
    arr = np.arange(8 * 6 * 4, dtype=np.int16).reshape(8, 6, 4, order="F")
    data = _raw_elsewhere(tmp_path, arr)
    header = OUTSIDE[case](tmp_path)

    vol = load(header)

    np.testing.assert_array_equal(vol.array, arr)
    assert vol.meta["outside_files"] == [str(data.resolve())]


@pytest.mark.parametrize("case", ["nhdr", "mhd"])
def test_data_file_beside_the_header_is_not_recorded(tmp_path: Path, case: str) -> None:
    arr = np.arange(8 * 6 * 4, dtype=np.int16).reshape(8, 6, 4, order="F")
    (tmp_path / "d.raw").write_bytes(arr.tobytes(order="F"))
    make = (nrrd_file("h.nhdr", with_(sizes="8 6 4", data_file="d.raw")) if case == "nhdr"
            else mhd("d.raw", (8, 6, 4)))
    vol = load(make(tmp_path))
    np.testing.assert_array_equal(vol.array, arr)
    assert "outside_files" not in vol.meta


def _sample() -> np.ndarray:
    return np.arange(4 * 3 * 2, dtype=np.int16).reshape(4, 3, 2, order="F") - 7


VALID_NRRD = {  # name -> maker; each must load to _sample()
    "raw-line-skip-2": nrrd_file("v.nhdr", with_(sizes="4 3 2", data_file="d.raw", line_skip="2"),
                                 data=("d.raw", b"junk line\nsecond\n" + _sample().tobytes(order="F"))),
    "raw-byte-skip-5": nrrd_file("v.nrrd", with_(sizes="4 3 2", byte_skip="5"), b"xxxxx" + _sample().tobytes(order="F")),
    "raw-byte-skip-minus-1": nrrd_file("v.nrrd", with_(sizes="4 3 2", byte_skip="-1"),
                                       b"trailing-junk-first" + _sample().tobytes(order="F")),
    "gzip-byte-skip-3": nrrd_file("v.nrrd", with_(sizes="4 3 2", encoding="gzip", byte_skip="3"),
                                  gzip.compress(b"abc" + _sample().tobytes(order="F"))),
    "gzip-two-members": nrrd_file("v.nrrd", with_(sizes="4 3 2", encoding="gzip"),
                                  gzip.compress(_sample().tobytes(order="F")[:10]) +
                                  gzip.compress(_sample().tobytes(order="F")[10:])),
    "bzip2": nrrd_file("v.nrrd", with_(sizes="4 3 2", encoding="bzip2"), bz2.compress(_sample().tobytes(order="F"))),
    "big-endian": nrrd_file("v.nrrd", with_(sizes="4 3 2", endian="big"), _sample().astype(">i2").tobytes(order="F")),
    "ascii": nrrd_file("v.nrrd", with_(sizes="4 3 2", encoding="ascii"),
                       " ".join(map(str, _sample().ravel(order="F"))).encode() + b"\n"),
}


@pytest.mark.parametrize("case", list(VALID_NRRD))
def test_valid_nrrd_variants_still_load(tmp_path: Path, case: str) -> None:
    vol = load(VALID_NRRD[case](tmp_path))
    assert vol.array.dtype == np.int16 and vol.array.dtype.isnative
    np.testing.assert_array_equal(vol.array, _sample())


def test_compressed_mha_still_loads_after_validation(tmp_path: Path) -> None:
    write_mha_compressed(tmp_path / "ok.mha")
    vol = load(tmp_path / "ok.mha")
    np.testing.assert_array_equal(vol.array, ct_like())


def test_mhd_pattern_of_slice_files_loads(tmp_path: Path) -> None:
    arr = _sample()
    for k in range(2):
        (tmp_path / f"s{k:03d}.raw").write_bytes(arr[:, :, k].tobytes(order="F"))
    vol = load(mhd("s%03d.raw 0 1 1", (4, 3, 2))(tmp_path))
    np.testing.assert_array_equal(vol.array, arr)


def test_nifti_warnings_and_log_become_a_note_not_stderr(tmp_path: Path) -> None:
    # an extension whose size is not a multiple of 16 (nibabel warns) and a voxel offset not
    # divisible by 16 (nibabel's logger prints): both tolerated, neither may reach stderr
    header = nib.Nifti1Header()
    header.set_data_shape((4, 4, 4))
    header.set_data_dtype(np.int16)
    header.set_sform(np.eye(4), code=1)
    header["vox_offset"] = 372
    extension = b"\x01\0\0\0" + np.array([20, 0], np.int32).tobytes() + b"hello world\0"
    path = tmp_path / "odd.nii"
    path.write_bytes(header.binaryblock + extension + np.arange(64, dtype=np.int16).tobytes())

    result, _ = run_info(path)
    vol = load(path)  # in process, where logging is not switched off as on the CLI

    assert result.returncode == 0 and result.stderr == "", result.stderr
    assert "nibabel: Extension size is not a multiple of 16" in result.stdout
    assert '"max": 63.0' in result.stdout
    assert "nibabel: Extension size is not a multiple of 16" in vol.meta["note"]
    assert "nibabel: vox offset (=372) not divisible by 16" in vol.meta["note"]


@pytest.mark.parametrize("keep", [False, True], ids=["validate-only", "keep"])
def test_decompression_is_bounded_by_the_claim_not_the_stream(keep: bool) -> None:
    """512 MiB of zeros in ~0.5 MiB of gzip: validating it peaks at a few MiB; keeping a 1 MiB
    claim from it is refused (more data than claimed) after decompressing only a little."""
    import io

    from viewer.io.common import inflate_exactly

    stream = zlib.compressobj(9, zlib.DEFLATED, 31)
    body = b"".join(stream.compress(b"\0" * (1 << 20)) for _ in range(512)) + stream.flush()
    want = (512 << 20) if not keep else (1 << 20)
    tracemalloc.start()
    start = time.perf_counter()
    try:
        if keep:
            with pytest.raises(LoadError, match="more bytes than the header says"):
                inflate_exactly(io.BytesIO(body), want, "gzip", "bomb.gz")
        else:
            assert inflate_exactly(io.BytesIO(body), want, "gzip", "bomb.gz", keep=False) is None
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < want + (16 << 20) if keep else peak < 32 << 20, peak
    assert time.perf_counter() - start < 10


@pytest.mark.skipif(not Path("/etc/passwd").is_file(), reason="needs /etc/passwd")
def test_nhdr_pulling_in_etc_passwd_says_so(tmp_path: Path) -> None:
    """The issue's case: a detached header may name any regular file; it is read (it is a
    valid NRRD), but the volume's meta names it, so `info` and the layer can show it."""
    header = nrrd_file("p.nhdr", with_(type="uchar", sizes="4 4 1", data_file="/etc/passwd"))(tmp_path)
    vol = load(header)
    assert vol.meta["outside_files"] == [str(Path("/etc/passwd").resolve())]
    assert bytes(vol.array.ravel(order="F")) == Path("/etc/passwd").read_bytes()[:16]
