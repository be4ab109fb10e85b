"""NIfTI-1/2 (.nii, .nii.gz, .hdr/.img, .hdr.gz/.img.gz) through nibabel."""

from __future__ import annotations

import bz2
import contextlib
import logging
import os
import warnings
import zlib
from pathlib import Path
from typing import Any, BinaryIO, Iterator

import nibabel as nib
import numpy as np
from nibabel.arrayproxy import ArrayProxy

from ..model.errors import LoadError
from ..model.labels import LabelMap
from ..model.volume import Volume
from .common import (atomic_path, check_data_fits_file, check_fits_in_memory, gzip_backend, gzip_errors,
                     note_outside_file, open_gzip, require_regular_file)


def _why(exc: Exception, path: Path) -> str:
    """The library's reason without the path it repeats (the message already starts with it)."""
    text = str(exc).replace(str(path), "").replace("File  ", "File ").strip(" :")
    return text or type(exc).__name__

__all__ = ["load_nifti", "save_nifti"]


_CHUNK = 4 << 20  # bytes per read (the standard library's gzip makes a temporary copy of each)
_SCALE_ITEMS = 1 << 20  # voxels scaled at a time: an 8 MiB float64 temporary
_TAIL = 1 << 20  # read past the data to a gzip stream's end (its CRC) when at most this is left
_NIB_ERRORS = (nib.filebasedimages.ImageFileError, nib.spatialimages.HeaderDataError,
               nib.spatialimages.ImageDataError, EOFError, OSError, zlib.error, ValueError)


def load_nifti(path: Path) -> Volume:
    """Read a NIfTI file into a ``Volume``; 4D files give their first frame (``meta['frames']``).

    Unscaled uncompressed files keep nibabel's memory-mapped array, so the first slice is
    drawn before the whole file is read. Unscaled compressed files are decompressed (python-isal's
    igzip when installed, else zlib) straight into the final Fortran-ordered array, a few MiB
    per ``readinto``: no second copy, the peak is the array itself. Files with ``scl_slope``/``scl_inter`` give float32
    true values (raw * slope + inter, computed in float64 and rounded once), read a few MiB at
    a time into the result: the peak is the float32 array plus one chunk. Compressed data is
    read to its end where possible, so a corrupt gzip stream (CRC) is an error, not voxels.
    Before anything is allocated, the header's size is checked against the file.
    """
    path = Path(path)
    _check_pair(path)
    with warnings.catch_warnings(record=True) as caught, _nibabel_log() as logged:
        warnings.simplefilter("always")
        vol = _load(path)
    said = [f"{'nibabel' if 'nibabel' in w.filename else 'numpy'}: {w.message}" for w in caught]
    said += [f"nibabel: {m}" for m in logged]
    if said:  # header oddities nibabel tolerates (extensions, offsets...): worth a line in the info
        said_once = "; ".join(dict.fromkeys(said))
        vol.meta["note"] = "; ".join(filter(None, [vol.meta.get("note"), said_once]))
    return vol


@contextlib.contextmanager
def _nibabel_log() -> Iterator[list[str]]:
    """nibabel reports header checks through its own logger, which prints on stderr: keep
    those messages for the note instead, for the duration of one load."""
    logger = nib.imageglobals.logger
    said: list[str] = []

    class _Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            said.append(record.getMessage())

    handlers, propagate = list(logger.handlers), logger.propagate
    keep = _Keep(logging.WARNING)
    for handler in handlers:
        logger.removeHandler(handler)
    logger.addHandler(keep)
    logger.propagate = False
    try:
        yield said
    finally:
        logger.removeHandler(keep)
        for handler in handlers:
            logger.addHandler(handler)
        logger.propagate = propagate


def _check_pair(path: Path) -> None:
    """An Analyze-style .hdr/.img pair (or .hdr.gz/.img.gz): the other half must be a regular
    file too."""
    gz = path.suffix.lower() == ".gz"
    base = path.with_suffix("") if gz else path
    if base.suffix.lower() not in (".hdr", ".img"):
        return
    for suffix, what in ((".hdr", "header"), (".img", "image file"), (".HDR", "header"),
                         (".IMG", "image file")):
        other = base.with_suffix(suffix + path.suffix if gz else suffix)
        if other != path and os.path.lexists(other):
            require_regular_file(other, owner=path, what=what)


def _compression(image_file: Path) -> str | None:
    name = image_file.name.lower()
    return "gzip" if name.endswith(".gz") else "bzip2" if name.endswith(".bz2") else None


def _open_data(image_file: Path, compression: str | None) -> BinaryIO:
    if compression == "gzip":
        return open_gzip(image_file)
    if compression == "bzip2":
        return bz2.open(image_file, "rb")
    return open(image_file, "rb")


def _load(path: Path) -> Volume:
    try:
        img = nib.load(str(path))
        proxy = img.dataobj
    except _NIB_ERRORS as exc:
        raise LoadError(path, f"not a readable NIfTI file ({_why(exc, path)})") from None
    if not isinstance(proxy, ArrayProxy):
        raise LoadError(path, f"not a NIfTI/Analyze image ({type(img).__name__})")
    full = tuple(int(s) for s in img.shape)
    shape = (full + (1, 1, 1))[:3] if len(full) < 3 else full[:3]
    dtype = np.dtype(proxy.dtype)
    if dtype.kind not in "biuf":
        raise LoadError(path, f"unsupported voxel type {dtype}")
    frames = int(np.prod(full[3:], dtype=object)) if len(full) > 3 else 1
    slope, inter = float(proxy.slope), float(proxy.inter)
    scaled = (slope, inter) != (1.0, 0.0)
    # the file first: a 400-byte file that claims terabytes is "truncated or corrupt", which
    # says more than "more than the memory available"
    image_file, compression, offset = _check_data_file(path, img, full, dtype)
    check_fits_in_memory(path, shape, np.float32 if scaled else dtype)
    try:
        if scaled or compression is not None:
            data = _read_stream(path, image_file, compression, offset, dtype, shape,
                                (slope, inter) if scaled else None, whole=frames == 1)
        elif frames > 1:
            data = np.asanyarray(proxy[(..., *([0] * (len(full) - 3)))]).reshape(shape, order="F")
        else:  # nibabel's memory map: nothing is read until a slice is drawn
            data = np.asanyarray(proxy).reshape(shape, order="F")
    except gzip_errors() as exc:  # zlib's errors, ISA-L's own, EOFError, BadGzipFile (CRC)
        raise LoadError(path, f"the file is truncated or corrupt ({_why(exc, path)})") from None
    if data.dtype.kind == "b":
        data = data.astype(np.uint8)
    affine = img.affine
    if affine is None or not np.all(np.isfinite(affine)) or abs(np.linalg.det(affine[:3, :3])) < 1e-12:
        zooms = img.header.get_zooms()[:3]
        affine = np.diag([*(z if z > 0 else 1.0 for z in zooms), 1.0])
    meta: dict[str, Any] = {"format": "NIfTI", "header": img.header}
    if scaled:
        meta["scaling"] = {"slope": slope, "inter": inter, "stored": dtype.name}
    if frames > 1:
        meta["frames"] = frames
        meta["note"] = f"4D file with {frames} frames: showing the first"
        meta["read_frame"] = _frame_reader(path, proxy, full, image_file, compression, offset, dtype,
                                           (slope, inter) if scaled else None)
    if image_file != path:
        note_outside_file(meta, path, image_file)
    name = path.name
    for suffix in (".nii.gz", ".hdr.gz", ".img.gz", ".nii", ".hdr", ".img"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    modality = "CT" if _looks_like_ct(img, data) else ""
    try:
        return Volume(data, affine, modality=modality, name=name, source=str(path), meta=meta)
    except ValueError as exc:
        raise LoadError(path, str(exc)) from None


def _frame_reader(path: Path, proxy: ArrayProxy, full: tuple[int, ...], image_file: Path, compression: str | None,
                  offset: int, dtype: np.dtype, scaling: tuple[float, float] | None):
    """A function giving the voxels of time frame k (frames beyond the 4th axis counted in the
    file's order, the first extra axis fastest), the same type and layout as the first frame's.
    Uncompressed unscaled files are memory-mapped; others are streamed from the frame's offset."""
    shape = full[:3]
    frames = int(np.prod(full[3:], dtype=object))
    frame_bytes = int(np.prod(shape, dtype=object)) * dtype.itemsize

    def read(k: int) -> np.ndarray:
        if not 0 <= k < frames:
            raise IndexError(f"frame {k} of {frames}")
        try:
            if scaling is None and compression is None:
                idx = np.unravel_index(k, full[3:], order="F")
                data = np.asanyarray(proxy[(..., *map(int, idx))]).reshape(shape, order="F")
            else:
                data = _read_stream(path, image_file, compression, offset + k * frame_bytes, dtype, shape,
                                    scaling, whole=False)
        except gzip_errors() as exc:
            raise LoadError(path, f"the file is truncated or corrupt ({_why(exc, path)})") from None
        return data.astype(np.uint8) if data.dtype.kind == "b" else data

    return read


def _check_data_file(path: Path, img, full: tuple[int, ...], dtype: np.dtype) -> tuple[Path, str | None, int]:
    """(file holding the voxels, its compression, data offset), after checking that the file
    can hold every voxel the header claims: byte for byte when uncompressed, within the
    deflate bound when compressed. Nothing has been allocated yet."""
    image_file = Path(img.file_map["image"].filename)
    size = require_regular_file(image_file, owner=path, what="image file")
    compression = _compression(image_file)
    offset = int(img.dataobj.offset)
    need = int(np.prod(full, dtype=object)) * dtype.itemsize
    if compression is None:
        check_data_fits_file(path, need, size - offset)
    else:
        check_data_fits_file(path, offset + need, size, compression=compression)
    return image_file, compression, offset


def _read_stream(path: Path, image_file: Path, compression: str | None, offset: int, dtype: np.dtype,
                 shape: tuple[int, int, int], scaling: tuple[float, float] | None, whole: bool) -> np.ndarray:
    """The first 3D frame, read in chunks: raw into one buffer, or scaled into float32.

    Parameters
    ----------
    scaling : (slope, inter), or None to keep the stored type.
    whole : also read on to the end of a compressed stream (when little is left), so its
        checksum is checked.

    Returns
    -------
    (I, J, K) Fortran-ordered array: the file's dtype, or float32 when scaled.
    """
    n = int(np.prod(shape))
    if scaling is None:
        # bytes first, viewed as the voxels: a 'B' memoryview whatever the byte order (memoryview
        # cannot cast a big-endian or Fortran-ordered array), and np.empty leaves the pages
        # untouched until the decompressor writes them (a bytearray would zero them first)
        raw = np.empty(n * dtype.itemsize, np.uint8)
        out = raw.view(dtype).reshape(shape, order="F")
    else:
        out = np.empty(shape, np.float32, order="F")
        flat = out.reshape(-1, order="F")  # a view: out is Fortran-contiguous
        chunk = bytearray(_SCALE_ITEMS * dtype.itemsize)
    with _open_data(image_file, compression) as fh:
        fh.seek(offset)
        if scaling is None:
            _fill(path, fh, memoryview(raw))
        else:
            slope, inter = scaling
            step = len(chunk) // dtype.itemsize
            for start in range(0, n, step):
                count = min(step, n - start)
                view = memoryview(chunk)[: count * dtype.itemsize]
                _fill(path, fh, view)
                # float64 arithmetic, one rounding to float32: raw * slope + inter exactly
                value = np.frombuffer(view, dtype).astype(np.float64)
                value *= slope
                value += inter
                flat[start:start + count] = value
        if whole and compression is not None:
            fh.read(_TAIL)  # reaching the end checks the CRC (or raises)
    return out


def _fill(path: Path, fh: BinaryIO, view: memoryview) -> None:
    """Fill ``view`` from ``fh`` a chunk at a time (a single huge read doubles the peak)."""
    done = 0
    while done < len(view):
        got = fh.readinto(view[done:done + _CHUNK])
        if not got:
            raise LoadError(path, f"the file is truncated: {done} of {len(view)} bytes of voxel data")
        done += got


def _looks_like_ct(img, data: np.ndarray) -> bool:
    """NIfTI carries no modality; a header description or HU-like range gives CT away."""
    # the field is NUL-padded: a description of exactly "CT" is b"CT\x00\x00..." in the file
    descrip = bytes(img.header.get("descrip", b"")).replace(b"\x00", b" ").lower() if "descrip" in img.header else b""
    if b"ct" in descrip.split() or b"hounsfield" in descrip:
        return True
    if data.dtype.kind not in "iuf" or data.size == 0:
        return False
    corner = np.asarray(data[: max(1, data.shape[0] // 8), : max(1, data.shape[1] // 8), :: max(1, data.shape[2] // 4)])
    return data.dtype.kind in "if" and corner.size > 0 and np.nanmin(corner) <= -900 and np.nanmin(corner) >= -3100


def save_nifti(data: Volume | LabelMap, path: str | Path, protect=()) -> Path:
    """Write a volume or label map as NIfTI with its RAS affine, atomically.

    Labels are stored as the smallest unsigned integer type that holds them; images keep their
    dtype. When the data came from a NIfTI file its header (units, descrip, intent) is reused.
    ``.nii.gz`` is compressed with python-isal when installed (else by nibabel, with zlib).
    """
    path = Path(path)
    arr = np.asarray(data.array)
    if isinstance(data, LabelMap):
        top = int(arr.max()) if arr.size else 0
        lo = int(arr.min()) if arr.size else 0
        dt = np.uint8 if lo >= 0 and top < 256 else np.uint16 if lo >= 0 and top < 65536 else np.int32
        arr = arr.astype(dt, copy=False)
    header = data.meta.get("header") if isinstance(data.meta.get("header"), nib.Nifti1Header) else None
    img = nib.Nifti1Image(arr, data.affine, header=header.copy() if header is not None else None)
    img.set_qform(data.affine, code=1)
    img.set_sform(data.affine, code=1)
    img.header.set_data_dtype(arr.dtype)
    if header is not None:
        img.header["scl_slope"], img.header["scl_inter"] = 1.0, 0.0
    with atomic_path(path, protect=protect) as tmp:
        if tmp.name.lower().endswith(".nii.gz") and gzip_backend() == "isal":
            _save_gz_isal(img, tmp)
        else:
            nib.save(img, str(tmp))
    return path


def _save_gz_isal(img: nib.Nifti1Image, target: Path) -> None:
    """nibabel's own writer into an ISA-L gzip stream: level 1 compresses ~3.5x faster than
    zlib's level 1 (nibabel's default) to about the same size. mtime 0, as nibabel writes it, and
    no file name in the gzip header (it would be the temporary one): the same volume gives the
    same bytes."""
    from isal import igzip

    with open(target, "wb") as raw, igzip.IGzipFile(filename="", fileobj=raw, mode="wb", compresslevel=1,
                                                     mtime=0) as gz:
        img.to_file_map({"image": nib.FileHolder(filename=str(target), fileobj=gz)})
