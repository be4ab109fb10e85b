""".nii.gz through python-isal's igzip, straight into the final array, with zlib as the fallback.

Every file is written by nibabel itself (or, for the stream damage, from nibabel's own bytes),
and every load is compared bit for bit with nibabel's raw array
(``np.asanyarray(nib.load(f).dataobj)``). Each row runs under both decompressors: the installed
one (python-isal, a dependency) and the standard library's zlib, in a child process where
``import isal`` fails as it does when the package is missing. A damaged stream must be a
LoadError under both, never wrong voxels.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import subprocess
import sys
import tracemalloc
from pathlib import Path
from typing import Callable

import nibabel as nib
import numpy as np
import pytest

from viewer.io import kind_of, load
from viewer.io.common import gzip_backend, open_gzip
from viewer.model import LoadError

ROOT = Path(__file__).resolve().parents[2]
BACKENDS = ["isal", "zlib"]


def _values(dtype, shape, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    dt = np.dtype(dtype)
    if dt.kind == "f":
        a = rng.normal(0, 300, shape).astype(dt)
        a.flat[7] = np.nan  # bit for bit, NaN included
        a.flat[11] = -np.inf
        return a
    info = np.iinfo(dt)
    return rng.integers(max(info.min, -30000), min(info.max, 30000), shape, endpoint=True).astype(dt)


def nifti(dtype, shape=(37, 29, 23), name="v.nii.gz", cls=nib.Nifti1Image, endian="<") -> Callable[[Path], Path]:
    def make(tmp: Path) -> Path:
        header = cls.header_class(endianness=endian)
        img = cls(_values(dtype, shape), np.diag([0.8, 0.9, 2.5, 1.0]), header=header)
        path = tmp / name
        nib.save(img, str(path))
        return path
    return make


# id -> file maker; the stored dtype, byte order and layout vary, the reference is always nibabel's
GOOD: dict[str, Callable[[Path], Path]] = {
    "int16": nifti(np.int16, name="i16.nii.gz"),
    "uint8": nifti(np.uint8, name="u8.nii.gz"),
    "int8": nifti(np.int8, name="i8.nii.gz"),
    "uint16": nifti(np.uint16, name="u16.nii.gz"),
    "int32": nifti(np.int32, name="i32.nii.gz"),
    "float32-nan-inf": nifti(np.float32, name="f32.nii.gz"),
    "float64": nifti(np.float64, name="f64.nii.gz"),
    "int16-big-endian": nifti(np.int16, name="be16.nii.gz", endian=">"),
    "float32-big-endian": nifti(np.float32, name="bef32.nii.gz", endian=">"),
    # 256*256*40 int16 = 5 MiB: the reads cross the 4 MiB chunk boundary
    "int16-several-chunks": nifti(np.int16, (256, 256, 40), name="big.nii.gz"),
    "nifti2-int16": nifti(np.int16, name="n2.nii.gz", cls=nib.Nifti2Image),
    "4d-first-frame": nifti(np.int16, (21, 19, 17, 3), name="f4.nii.gz"),
    "pair-hdr-gz": nifti(np.int16, name="pair.hdr.gz", cls=nib.Nifti1Pair),
    "pair-img-gz": nifti(np.float32, name="pairf.img.gz", cls=nib.Nifti1Pair),
    "analyze-img-gz": nifti(np.int16, name="an.img.gz", cls=nib.AnalyzeImage),
}


def damaged(name: str, change: Callable[[bytes], bytes]) -> Callable[[Path], Path]:
    def make(tmp: Path) -> Path:
        path = nifti(np.int16, name=name)(tmp)
        path.write_bytes(change(path.read_bytes()))
        return path
    return make


def _xor(data: bytes, at: int, n: int = 1) -> bytes:
    out = bytearray(data)
    for k in range(at, at + n):
        out[k] ^= 0x5A
    return bytes(out)


def _two_members(data: bytes) -> bytes:
    raw = gzip.decompress(data)
    return gzip.compress(raw[:5000]) + gzip.compress(raw[5000:])


# id -> (file maker, None when it must load equal to nibabel, else words of the one-line error)
STREAMS: dict[str, tuple[Callable[[Path], Path], str | None]] = {
    "crc-flipped": (damaged("crc.nii.gz", lambda b: _xor(b, len(b) - 8)), r"corrupt.*CRC"),
    "length-trailer-wrong": (damaged("len.nii.gz", lambda b: _xor(b, len(b) - 4)), r"corrupt.*length"),
    "cut-in-trailer": (damaged("cut8.nii.gz", lambda b: b[:-4]), r"truncated or corrupt"),
    "cut-in-half": (damaged("half.nii.gz", lambda b: b[: len(b) // 2]), r"truncated"),
    "deflate-bytes-flipped": (damaged("mid.nii.gz", lambda b: _xor(b, len(b) // 2, 8)), r"truncated|corrupt"),
    "garbage-after-stream": (damaged("tail.nii.gz", lambda b: b + b"garbage!"), r"truncated or corrupt"),
    "two-members": (damaged("two.nii.gz", _two_members), None),
    "zero-padding-after-stream": (damaged("pad.nii.gz", lambda b: b + bytes(64)), None),
}

_CHILD = r"""
import hashlib, json, sys
if sys.argv[1] == "zlib":
    sys.modules["isal"] = None  # as if python-isal were not installed: `import isal` fails
import numpy as np
from viewer.io import load
from viewer.io.common import gzip_backend
from viewer.model import LoadError
out = {"backend": gzip_backend()}
for p in sys.argv[2:]:
    try:
        a = load(p).array
        out[p] = {"sha": hashlib.sha256(a.tobytes(order="F")).hexdigest(), "dtype": a.dtype.str,
                  "shape": list(a.shape), "fortran": bool(a.flags.f_contiguous)}
    except LoadError as e:
        out[p] = {"error": str(e)}
print(json.dumps(out))
"""


def _reference(path: Path) -> dict:
    """nibabel's own raw array (first frame of a 4D file), as the child reports a load."""
    a = np.asanyarray(nib.load(str(path)).dataobj)
    if a.ndim == 4:
        a = a[..., 0]
    return {"sha": hashlib.sha256(a.tobytes(order="F")).hexdigest(), "dtype": a.dtype.str, "shape": list(a.shape)}


@pytest.fixture(scope="module")
def loaded(tmp_path_factory) -> dict[str, dict]:
    """Every GOOD and STREAMS file, loaded once per decompressor in a child process:
    {backend: {"backend": name, path: result}} plus {"files": {id: path}}."""
    tmp = tmp_path_factory.mktemp("gz")
    files = {case: str(make(tmp)) for case, make in GOOD.items()}
    files.update({case: str(make(tmp)) for case, (make, _) in STREAMS.items()})
    out: dict[str, dict] = {"files": files}
    for backend in BACKENDS:
        run = subprocess.run([sys.executable, "-c", _CHILD, backend, *files.values()], cwd=ROOT,
                             capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, run.stderr[-2000:]
        out[backend] = json.loads(run.stdout.splitlines()[-1])
    return out


def test_the_installed_decompressor_is_isal_and_reads_in_place(tmp_path: Path) -> None:
    """python-isal is a dependency, so the fast path is the one in use; its readinto fills the
    caller's buffer with no temporary of the read's size (a GzipFile's readinto makes one)."""
    assert gzip_backend() == "isal"
    data = np.random.default_rng(5).integers(0, 50, 12 << 20, dtype=np.uint8).tobytes()
    (tmp_path / "d.gz").write_bytes(gzip.compress(data, 1))
    into = np.empty(len(data), np.uint8)
    with open_gzip(tmp_path / "d.gz") as fh:
        fh.seek(3)
        tracemalloc.start()
        try:
            got = fh.readinto(memoryview(into)[: len(data) - 3])
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert fh.read(10) == b""
    assert got == len(data) - 3 and into[: got].tobytes() == data[3:]
    assert peak < 1 << 20, peak  # 12 MiB decompressed, well under 1 MiB allocated


@pytest.mark.parametrize("backend", BACKENDS)
def test_child_used_the_backend_asked_for(loaded, backend: str) -> None:
    assert loaded[backend]["backend"] == backend


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", list(GOOD))
def test_same_voxels_as_nibabel_bit_for_bit(loaded, case: str, backend: str) -> None:
    path = loaded["files"][case]
    got = loaded[backend][path]
    assert "error" not in got, got
    assert {k: got[k] for k in ("sha", "dtype", "shape")} == _reference(Path(path))
    assert got["fortran"]  # as nibabel gives it: array[i, j, k] with i fastest


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", list(STREAMS))
def test_damaged_streams_are_one_line_errors(loaded, case: str, backend: str) -> None:
    path = loaded["files"][case]
    got = loaded[backend][path]
    words = STREAMS[case][1]
    if words is None:
        assert "error" not in got, got
        assert {k: got[k] for k in ("sha", "dtype", "shape")} == _reference(Path(path))
    else:
        assert "error" in got, got
        assert got["error"].startswith(f"{path}: ") and "\n" not in got["error"]
        assert __import__("re").search(words, got["error"]), got["error"]


def test_no_second_copy_of_the_array(tmp_path: Path) -> None:
    """Decompressed straight into the result: the load's Python-heap peak (tracemalloc sees
    numpy's buffers) is the array plus a few MiB, not two arrays as a read() then copy gives."""
    shape = (256, 256, 128)  # 16 MiB of int16
    arr = (np.arange(np.prod(shape), dtype=np.int64) % 4001 - 2000).astype(np.int16).reshape(shape, order="F")
    path = tmp_path / "big.nii.gz"
    nib.save(nib.Nifti1Image(arr, np.eye(4)), str(path))
    del arr
    tracemalloc.start()
    try:
        vol = load(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    nbytes = vol.array.nbytes
    assert nbytes == 16 << 20 and vol.array.dtype == np.int16
    assert peak <= 1.25 * nbytes, peak / nbytes
    assert int(vol.array[5, 0, 0]) == 5 - 2000 and int(vol.array[0, 1, 0]) == (256 % 4001) - 2000


def test_scaled_gz_is_exact_through_the_fast_path(tmp_path: Path) -> None:
    """scl_slope/scl_inter still give raw * slope + inter, computed in float64, rounded once."""
    raw = _values(np.int16, (64, 48, 40), seed=4)
    img = nib.Nifti1Image(raw, np.eye(4))
    img.header.set_slope_inter(0.37, -1024.25)
    nib.save(img, str(tmp_path / "s.nii.gz"))
    vol = load(tmp_path / "s.nii.gz")
    expected = (raw.astype(np.float64) * np.float64(np.float32(0.37)) + np.float64(np.float32(-1024.25)))
    assert vol.array.dtype == np.float32
    np.testing.assert_array_equal(vol.array, expected.astype(np.float32))


@pytest.mark.parametrize("name, kind", [("a.hdr.gz", "volume"), ("a.img.gz", "volume"), ("a.nii.gz", "volume"),
                                        ("a.gz", "unknown")])
def test_compressed_pairs_are_volumes(name: str, kind: str) -> None:
    assert kind_of(name) == kind


def test_compressed_pair_missing_its_image_is_one_line(tmp_path: Path) -> None:
    path = nifti(np.int16, name="p.hdr.gz", cls=nib.Nifti1Pair)(tmp_path)
    (tmp_path / "p.img.gz").unlink()
    with pytest.raises(LoadError, match=r"p\.hdr\.gz: .*(no such file|not a readable)"):
        load(path)


@pytest.mark.parametrize("dtype", [np.int16, np.float32, np.uint8])
def test_saved_nii_gz_reads_back_in_nibabel_and_is_reproducible(tmp_path: Path, dtype) -> None:
    """``save_nifti`` (``main.py convert``) writes .nii.gz through ISA-L: nibabel reads the same
    voxels and affine back, and saving twice gives the same bytes (gzip mtime 0, as nibabel)."""
    from viewer.io import save_nifti
    from viewer.model import Volume

    values = _values(dtype, (45, 38, 21), seed=6)
    affine = np.array([[0.0, -0.9, 0.0, 12.0], [0.8, 0.0, 0.0, -4.0], [0.0, 0.0, 2.5, 7.0], [0, 0, 0, 1]])
    vol = Volume(values, affine)
    a, b = tmp_path / "a.nii.gz", tmp_path / "b.nii.gz"
    save_nifti(vol, a)
    save_nifti(vol, b)
    img = nib.load(str(a))
    back = np.asanyarray(img.dataobj)
    assert back.dtype == np.dtype(dtype) and back.tobytes(order="F") == values.tobytes(order="F")
    np.testing.assert_allclose(img.affine, affine)
    data = a.read_bytes()
    assert data[:2] == b"\x1f\x8b" and data[4:8] == bytes(4)  # gzip, mtime 0
    assert data[3] & 0x08 == 0  # no FNAME: the temporary file's name is not written
    assert data == b.read_bytes()
    np.testing.assert_array_equal(load(a).array, values)
