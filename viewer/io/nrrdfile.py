"""NRRD (.nrrd, and .nhdr with detached data) through pynrrd.

The NRRD spec (teem.sourceforge.net/nrrd/format.html) stores, per axis, a ``space directions``
vector: the world step between successive samples along that axis, in the frame named by
``space``. The world position of sample ``(i, j, k)`` is
``space origin + i*d0 + j*d1 + k*d2``, so the directions are the affine's columns directly.
"""

from __future__ import annotations

import gzip
import os
import warnings
import zlib
from pathlib import Path
from typing import Any

import nrrd
import numpy as np

from ..model.errors import LoadError
from ..model.volume import Volume
from .common import (check_data_fits_file, check_fits_in_memory, inflate_exactly, note_outside_file,
                     require_regular_file, skip_lines)

__all__ = ["load_nrrd"]

# sign flips taking each anatomical space to RAS (x, y, z; a 4th time axis is ignored).
# "scanner-xyz" and "3D-right-handed" name no anatomy; ITK (and so Slicer and SimpleITK) reads
# them as LPS, the DICOM patient frame scanners write, and so do we.
_TO_RAS = {
    "right-anterior-superior": (1, 1, 1), "ras": (1, 1, 1),
    "left-anterior-superior": (-1, 1, 1), "las": (-1, 1, 1),
    "left-posterior-superior": (-1, -1, 1), "lps": (-1, -1, 1),
    "right-anterior-superior-time": (1, 1, 1), "rast": (1, 1, 1),
    "left-anterior-superior-time": (-1, 1, 1), "last": (-1, 1, 1),
    "left-posterior-superior-time": (-1, -1, 1), "lpst": (-1, -1, 1),
    "scanner-xyz": (-1, -1, 1), "scanner-xyz-time": (-1, -1, 1),
    "3d-right-handed": (-1, -1, 1), "3d-right-handed-time": (-1, -1, 1),
}
_SPATIAL_KINDS = {"domain", "space", "time"}  # "time" only counts when it has a direction
_READ_ERRORS = (nrrd.NRRDError, ValueError, OSError, EOFError, zlib.error, gzip.BadGzipFile,
                KeyError, IndexError, TypeError, UnicodeDecodeError)


def _name(path: Path) -> str:
    return path.name[: -len(path.suffix)] if path.suffix else path.name


def _dtype_of(nrrd_type: str) -> np.dtype:
    """numpy dtype of a NRRD ``type`` field (all the spellings the spec allows), for size checks."""
    t = " ".join(nrrd_type.lower().split())
    if t in ("float", "double"):
        return np.dtype(np.float32 if t == "float" else np.float64)
    bits = (8 if "char" in t or "int8" in t else 16 if "short" in t or "16" in t
            else 64 if "long" in t or "64" in t else 32 if "int" in t else 0)
    if not bits:
        raise ValueError(f"unsupported NRRD type '{nrrd_type}'")
    return np.dtype(f"{'u' if t.startswith('u') else 'i'}{bits // 8}")


def _spatial_axes(header: dict[str, Any], ndim: int) -> tuple[list[int], np.ndarray | None]:
    """Indices of the axes that step through space, and their (n, space_dim) directions.

    An axis is non-spatial when its direction is "none" (NaN row in pynrrd) or its kind
    says so (list, vector, RGB-color, complex, ...).
    """
    kinds = [str(k).lower() for k in header.get("kinds", [])] or ["domain"] * ndim
    dirs = header.get("space directions")
    if dirs is not None:
        dirs = np.asarray(dirs, dtype=float).reshape(ndim, -1)
        axes = [a for a in range(ndim) if np.all(np.isfinite(dirs[a]))]
    else:
        axes = [a for a in range(ndim) if kinds[a] in _SPATIAL_KINDS or kinds[a] == "none"]
    if len(axes) > 3:  # a time axis counted as spatial: keep three, time ones last
        axes = sorted(sorted(axes, key=lambda a: kinds[a] == "time" if a < len(kinds) else False)[:3])
    return axes, dirs


def load_nrrd(path: Path) -> Volume:
    """Read a NRRD file into a ``Volume`` with its RAS affine.

    Parameters
    ----------
    path : ``.nrrd`` (attached data, raw/gzip/bzip2/ascii encodings) or ``.nhdr`` (the data
        file it names is read from beside it).

    Returns
    -------
    Volume with ``array[i, j, k]`` in the file's axis order (axis 0 fastest, as stored) and
    an affine from ``space directions`` / ``space origin`` converted to RAS; a file with only
    ``spacings`` gets a diagonal affine. 4D files (a list/vector axis, or a 4th axis with no
    direction) give their first frame, with ``meta['frames']``.

    Only pynrrd's header parser is used; the data is read here (see :func:`_read`): a
    detached ``data file`` must be a regular file and is listed in ``meta['outside_files']``
    when outside the header's folder, ``line skip``/``byte skip`` and the declared size are
    checked against the file, and decompression stops at the declared size.
    """
    path = Path(path)
    meta: dict[str, Any] = {"format": "NRRD"}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        vol = _volume(path, meta)
    if caught:  # pynrrd warns about duplicate fields and the like: worth a line in the info
        said = "; ".join(dict.fromkeys(str(w.message) for w in caught))
        vol.meta["note"] = "; ".join(filter(None, [vol.meta.get("note"), said]))
    return vol


def _volume(path: Path, meta: dict[str, Any]) -> Volume:
    header, data = _read(path, meta)
    for key in ("kinds", "space directions"):
        if key in header and len(header[key]) != data.ndim:
            raise LoadError(path, f"'{key}' has {len(header[key])} entries for {data.ndim} axes")
    if data.dtype.kind not in "biuf":
        raise LoadError(path, f"unsupported voxel type {data.dtype}")

    axes, dirs = _spatial_axes(header, data.ndim)
    others = [a for a in range(data.ndim) if a not in axes]
    if others:
        frames = int(np.prod([data.shape[a] for a in others]))
        if frames > 1:
            meta["frames"] = frames
            meta["note"] = f"{frames} frames (non-spatial axis): showing the first"
            meta["read_frame"] = _frame_reader(path, data, axes, others)
        data = _frame(data, axes, others, 0)
    if data.ndim == 2:  # one slice: a third axis of length 1
        data = data[:, :, None]
        axes = axes + [None]  # type: ignore[list-item]
    if data.ndim != 3:
        raise LoadError(path, f"no 3 spatial axes in this NRRD file (sizes {list(header['sizes'])})")
    if data.dtype.byteorder not in "=|":
        data = data.astype(data.dtype.newbyteorder("="))  # VTK wants native byte order
    if data.dtype.kind == "b":
        data = data.astype(np.uint8)

    affine = _affine(path, header, axes, dirs, meta)
    modality = str(header.get("modality", "")).upper() if "modality" in header else ""
    try:
        return Volume(data, affine, modality=modality, name=_name(path), source=str(path), meta=meta)
    except ValueError as exc:
        raise LoadError(path, str(exc)) from None


def _frame(data: np.ndarray, axes: list[int], others: list[int], k: int) -> np.ndarray:
    """Frame ``k`` of the non-spatial axes (the first of them fastest, as NRRD stores them):
    a Fortran-ordered copy, so the other frames are not kept alive behind a view."""
    idx = np.unravel_index(k, [data.shape[a] for a in others], order="F")
    where = dict(zip(others, map(int, idx)))
    index = tuple(slice(None) if a in axes else where[a] for a in range(data.ndim))
    return np.array(data[index], order="F")  # _read already gives native byte order


# Frames of a file up to this size stay in memory after the load (it read them all anyway), so
# stepping through them is instant; a bigger file is read again for each frame asked for.
KEEP_FRAMES_BYTES = 1 << 30


def _frame_reader(path: Path, data: np.ndarray, axes: list[int], others: list[int]):
    """A function giving frame k's voxels, the same type and layout as the first frame's."""
    frames = int(np.prod([data.shape[a] for a in others]))
    kept = data if data.nbytes <= KEEP_FRAMES_BYTES else None

    def read(k: int) -> np.ndarray:
        if not 0 <= k < frames:
            raise IndexError(f"frame {k} of {frames}")
        whole = kept if kept is not None else _read(path, {})[1]
        frame = _frame(whole, axes, others, k)
        return frame[:, :, None] if frame.ndim == 2 else frame  # one slice, as the first frame

    return read


def _affine(path: Path, header: dict[str, Any], axes: list[int | None], dirs: np.ndarray | None,
            meta: dict[str, Any]) -> np.ndarray:
    """(4, 4) voxel -> RAS mm from the header; diagonal from ``spacings`` when no directions."""
    affine = np.eye(4)
    space = str(header.get("space", "")).lower()
    if dirs is not None:
        sd = min(dirs.shape[1], 3)  # a 4th (time) space component has no place in the affine
        for col, a in enumerate(axes):
            if a is not None:
                affine[:sd, col] = dirs[a][:sd]
        origin = np.asarray(header.get("space origin", np.zeros(dirs.shape[1])), dtype=float).ravel()
        if origin.size == dirs.shape[1] and np.all(np.isfinite(origin)):
            affine[:sd, 3] = origin[:sd]
        if axes[-1] is None or sd == 2:
            # a single slice (or a 2D space): the missing axis is 1 mm along the plane normal
            n = np.cross(affine[:3, 0], affine[:3, 1])
            affine[:3, 2] = n / (np.linalg.norm(n) or 1.0)
        if space in _TO_RAS:
            affine = np.diag([*_TO_RAS[space], 1.0]) @ affine
        elif space:
            note = f"unknown space '{space}': read as RAS"
            meta["note"] = "; ".join(filter(None, [meta.get("note"), note]))
    else:
        spacings = np.asarray(header.get("spacings", [1.0] * len(header["sizes"])), dtype=float)
        for col, a in enumerate(axes):
            s = spacings[a] if a is not None and a < spacings.size else 1.0
            affine[col, col] = s if np.isfinite(s) and s > 0 else 1.0
    return affine


# --- reading: pynrrd parses the header; the data is read here, with every size bounded -------
_ENCODINGS = {"raw": None, "gzip": "gzip", "gz": "gzip", "bzip2": "bzip2", "bz2": "bzip2",
              "ascii": "ascii", "text": "ascii", "txt": "ascii"}


def _read(path: Path, meta: dict[str, Any]) -> tuple[dict[str, Any], np.ndarray]:
    """(header, data in the file's axis order, Fortran-ordered) for an attached or detached file.

    pynrrd's own ``read_data`` trusts the header: it decompresses without limit, loops
    ``line skip`` times even past the end of the file, and opens whatever ``data file``
    names (a FIFO blocks for ever). Here the data file must be a regular file, skips are
    bounded by the file, and no more than the header's claim is ever decompressed.
    """
    try:
        with open(path, "rb") as fh:
            header = nrrd.read_header(fh)
            offset = fh.tell()
    except _READ_ERRORS as exc:
        raise LoadError(path, f"not a readable NRRD file ({type(exc).__name__}: {exc})") from None
    try:
        sizes = [int(s) for s in header["sizes"]]
        dtype = _dtype_of(str(header["type"]))
    except _READ_ERRORS as exc:
        raise LoadError(path, f"NRRD header is incomplete ({type(exc).__name__}: {exc})") from None
    if not 2 <= len(sizes) <= 5:
        raise LoadError(path, f"cannot show a {len(sizes)}D NRRD file as a volume")
    if int(header.get("dimension", len(sizes))) != len(sizes):
        raise LoadError(path, f"dimension {header.get('dimension')} but {len(sizes)} sizes")
    encoding = str(header.get("encoding", "raw")).lower()
    if encoding not in _ENCODINGS:
        raise LoadError(path, f"unsupported NRRD encoding '{encoding}'")
    compression = _ENCODINGS[encoding]
    if dtype.itemsize > 1 and compression != "ascii":
        endian = str(header.get("endian", "")).lower()
        if endian not in ("little", "big"):
            raise LoadError(path, "NRRD header has no valid 'endian' field for multi-byte data")
        dtype = dtype.newbyteorder("<" if endian == "little" else ">")
    # all frames are read, then the first is copied out: the whole array is the peak
    check_fits_in_memory(path, sizes, dtype, factor=1.0)
    n = int(np.prod(sizes, dtype=object))
    need = n * dtype.itemsize
    data_file = _data_file(path, header, meta)
    source = data_file or path
    start = 0 if data_file else offset
    line_skip = _skip_field(path, header, ("line skip", "lineskip"), lowest=0)
    byte_skip = _skip_field(path, header, ("byte skip", "byteskip"), lowest=-1)
    if byte_skip == -1 and compression is not None:
        raise LoadError(path, f"'byte skip: -1' with {encoding} encoding is not supported")
    with open(source, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        fh.seek(start)
        if line_skip:
            skip_lines(fh, line_skip, path)
        held = size - fh.tell()
        _check_claim(path, n, dtype.itemsize, byte_skip, held, compression)
        if compression is None:
            if byte_skip == -1:
                byte_skip = held - need
            fh.seek(byte_skip, os.SEEK_CUR)
            flat = np.fromfile(fh, dtype, count=n)
        elif compression == "ascii":
            flat = _ascii_values(path, fh, dtype, n)
        else:
            buf = inflate_exactly(fh, need, compression, path, skip=byte_skip)
            flat = np.frombuffer(buf, dtype)
    if flat.size != n:
        raise LoadError(path, f"the file is truncated: {flat.size} of the {n} values the header claims")
    if not flat.dtype.isnative:  # VTK wants native byte order: swapped in place, no copy
        flat = flat.byteswap(inplace=True).view(flat.dtype.newbyteorder("="))
    return header, flat.reshape(sizes, order="F")


def _check_claim(path: Path, n: int, itemsize: int, byte_skip: int, held: int, compression: str | None) -> None:
    """The ``held`` bytes after the header (and its skips) must be able to hold ``n`` values."""
    if compression is None:
        check_data_fits_file(path, n * itemsize + max(byte_skip, 0), held)
    elif compression == "ascii":
        check_data_fits_file(path, n, held)  # text: at least one character per value
    else:
        check_data_fits_file(path, n * itemsize + byte_skip, held, compression=compression)


def _data_file(path: Path, header: dict[str, Any], meta: dict[str, Any]) -> Path | None:
    """The detached data file a header names (checked to be a regular file), else None."""
    name = header.get("data file", header.get("datafile"))
    if name is None:
        return None
    name = str(name).strip()
    words = name.split()
    if not words:
        raise LoadError(path, "the header's 'data file' field is empty")
    if words[0].upper() == "LIST" or (len(words) >= 4 and "%" in words[0]):
        # pynrrd reads neither form; they are rare outside teem's own tools
        raise LoadError(path, f"a list or pattern of data files ('data file: {name}') is not supported")
    f = Path(name) if os.path.isabs(name) else path.parent / name
    if not os.path.lexists(f):
        raise LoadError(path, f"the data file it refers to is missing ({name})")
    require_regular_file(f, owner=path, what="data file")
    note_outside_file(meta, path, f)
    return f


def _skip_field(path: Path, header: dict[str, Any], keys: tuple[str, str], lowest: int) -> int:
    value = header.get(keys[0], header.get(keys[1], 0))
    try:
        value = int(value)
    except (TypeError, ValueError):
        raise LoadError(path, f"'{keys[0]}: {value}' is not a whole number") from None
    if value < lowest:
        raise LoadError(path, f"'{keys[0]}: {value}' is not allowed (at least {lowest})")
    return value


def _ascii_values(path: Path, fh, dtype: np.dtype, n: int) -> np.ndarray:
    with warnings.catch_warnings():
        # numpy warns (DeprecationWarning) when text ends early; the count check reports it
        warnings.simplefilter("ignore")
        try:
            return np.fromfile(fh, dtype.newbyteorder("="), count=n, sep=" ")
        except ValueError as exc:
            raise LoadError(path, f"the text data is not numbers ({exc})") from None
