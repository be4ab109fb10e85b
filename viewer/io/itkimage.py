"""MetaImage (.mha, and .mhd with its detached raw file) through SimpleITK.

ITK images live in the LPS patient frame: the world point of voxel index ``(i, j, k)`` is
``origin + direction @ diag(spacing) @ (i, j, k)``, with ``direction``'s columns the unit
axis vectors. The RAS affine is that matrix with its x and y rows negated.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from ..model.errors import LoadError
from ..model.volume import Volume
from .common import (check_data_fits_file, check_fits_in_memory, inflate_exactly, native_stderr_captured,
                     note_outside_file, require_regular_file)

__all__ = ["load_itk"]

# ITK's warnings go to stderr through its own channel; the CLI prints one line per failure
sitk.ProcessObject_SetGlobalWarningDisplay(False)

_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
_MODALITIES = {"MET_MOD_CT": "CT", "MET_MOD_MR": "MR", "MET_MOD_NM": "NM", "MET_MOD_US": "US"}


def _component_dtype(pixel_id: int) -> np.dtype | None:
    """numpy dtype of one pixel component, None for complex or label pixels."""
    table = {
        sitk.sitkUInt8: np.uint8, sitk.sitkInt8: np.int8, sitk.sitkUInt16: np.uint16,
        sitk.sitkInt16: np.int16, sitk.sitkUInt32: np.uint32, sitk.sitkInt32: np.int32,
        sitk.sitkUInt64: np.uint64, sitk.sitkInt64: np.int64, sitk.sitkFloat32: np.float32,
        sitk.sitkFloat64: np.float64,
        sitk.sitkVectorUInt8: np.uint8, sitk.sitkVectorInt8: np.int8,
        sitk.sitkVectorUInt16: np.uint16, sitk.sitkVectorInt16: np.int16,
        sitk.sitkVectorUInt32: np.uint32, sitk.sitkVectorInt32: np.int32,
        sitk.sitkVectorUInt64: np.uint64, sitk.sitkVectorInt64: np.int64,
        sitk.sitkVectorFloat32: np.float32, sitk.sitkVectorFloat64: np.float64,
    }
    dt = table.get(pixel_id)
    return None if dt is None else np.dtype(dt)


def _itk_reason(exc: Exception) -> str:
    """The useful tail of an ITK exception (they start with source file names and lines)."""
    text = str(exc)
    for marker in ("ERROR:", "Description:"):
        if marker in text:
            text = text.rsplit(marker, 1)[1]
    text = " ".join(re.sub(r"\(0x[0-9a-f]+\)", "", text).split())  # no object addresses
    text = text.split(" Reason:")[0]  # a stale errno ("No such file") even when the file exists
    return text[:300] or type(exc).__name__


_HEADER_LIMIT = 1 << 20  # a MetaImage header (with a LIST of slice files) is text, well under this
_MAX_DATA_FILES = 100_000


@dataclass
class _Layout:
    """Where a MetaImage's voxel bytes are: the files, where they start, how they are stored."""

    files: list[Path]
    offset: int  # first data byte in files[0] (attached data: just after the header)
    compressed: bool
    binary: bool
    header_size: int  # HeaderSize: bytes to skip in a detached file (-1: data at its end)


def _header_fields(path: Path) -> tuple[dict[str, str], int, list[str]]:
    """(fields by lower-case key, offset just after ElementDataFile's line, lines after it).

    MetaIO headers are ``Key = Value`` lines ending with ``ElementDataFile``; a LIST of data
    files follows that line. Only the first MiB is read (a header is never that long).
    """
    with open(path, "rb") as fh:
        head = fh.read(_HEADER_LIMIT)
    fields: dict[str, str] = {}
    pos = 0
    while pos < len(head):
        end = head.find(b"\n", pos)
        end = len(head) if end < 0 else end + 1
        line = head[pos:end].decode("latin-1").strip()
        pos = end
        key, sep, value = line.partition("=")
        if not sep:
            continue
        key = key.strip().lower()
        fields[key] = value.strip()
        if key == "elementdatafile":
            rest = head[pos:].decode("latin-1").splitlines()
            return fields, pos, [r.strip() for r in rest if r.strip()]
    return fields, -1, []


def _int_field(path: Path, fields: dict[str, str], key: str, default: int) -> int:
    try:
        return int(fields.get(key.lower(), default))
    except ValueError:
        raise LoadError(path, f"{key} = {fields[key.lower()]!r} is not a whole number") from None


def _data_files(path: Path, value: str, rest: list[str], n_slices: int, meta: dict[str, Any]) -> list[Path]:
    """The regular files ElementDataFile names (one, a LIST, or a printf pattern), checked."""
    words = value.split()
    if words[0].upper() == "LIST":
        names = rest
    elif "%" in words[0] and len(words) >= 4:
        try:
            lo, hi, step = int(words[1]), int(words[2]), int(words[3])
        except ValueError:
            raise LoadError(path, f"ElementDataFile pattern {value!r} has no valid range") from None
        count = (hi - lo) // step + 1 if step > 0 and hi >= lo else 0
        if not 0 < count <= min(n_slices, _MAX_DATA_FILES):
            raise LoadError(path, f"ElementDataFile pattern {value!r} names {count} files for "
                                  f"{n_slices} slices")
        try:
            names = [words[0] % i for i in range(lo, hi + 1, step)]
        except (TypeError, ValueError):
            raise LoadError(path, f"ElementDataFile pattern {value!r} is not a valid file-name pattern") from None
    else:
        names = [value]
    if not names or len(names) > min(max(n_slices, 1), _MAX_DATA_FILES):
        raise LoadError(path, f"ElementDataFile lists {len(names)} files for {n_slices} slices")
    files = []
    for name in names:
        f = Path(name) if Path(name).is_absolute() else path.parent / name
        if not os.path.lexists(f):
            raise LoadError(path, f"the data file it refers to is missing ({name})")
        require_regular_file(f, owner=path, what="data file")
        note_outside_file(meta, path, f)
        files.append(f)
    return files


def _layout(path: Path, size: tuple[int, ...], meta: dict[str, Any]) -> _Layout:
    """Read the header's data fields and check every file they name (no data is read)."""
    fields, start, rest = _header_fields(path)
    value = fields.get("elementdatafile", "")
    if start < 0 or not value:
        raise LoadError(path, "the header has no ElementDataFile")
    compressed = fields.get("compresseddata", "false").lower() == "true"
    binary = fields.get("binarydata", "true").lower() != "false"
    header_size = _int_field(path, fields, "HeaderSize", 0)
    if value.upper() == "LOCAL":
        return _Layout([path], start, compressed, binary, 0)
    files = _data_files(path, value, rest, size[-1] if size else 1, meta)
    if compressed and len(files) > 1:
        raise LoadError(path, "compressed data split over several files is not supported")
    return _Layout(files, 0, compressed, binary, header_size)


def _check_data(path: Path, layout: _Layout, need: int, n_values: int) -> None:
    """Refuse data files too small for the header's claim and corrupt compressed streams.

    Compressed data is inflated once here, in 1 MiB pieces with nothing kept, and must give
    exactly ``need`` bytes with a good checksum: ITK's own reader only prints "Uncompress
    failed" on stderr and hands back garbage voxels.
    """
    sizes = [f.stat().st_size for f in layout.files]
    held = sum(sizes) - layout.offset - max(layout.header_size, 0) * len(sizes)
    if not layout.binary:  # ASCII voxels: at least one character each
        check_data_fits_file(path, n_values, held)
        return
    if not layout.compressed:
        check_data_fits_file(path, need, held)
        return
    check_data_fits_file(path, need, held, compression="gzip")
    with open(layout.files[0], "rb") as fh:
        fh.seek(layout.offset + max(layout.header_size, 0))
        inflate_exactly(fh, need, "gzip", path, keep=False)


def _quiet(path: Path, action: str, call):
    """Run an ITK call with its stderr chatter captured; a failure names what it printed."""
    with native_stderr_captured() as said:
        try:
            out = call()
            error = None
        except RuntimeError as exc:
            out, error = None, exc
    if error is not None or said:
        reason = "; ".join(said[:3]) if said else _itk_reason(error)
        raise LoadError(path, f"{action} ({reason[:300]})")
    return out


def _voxels(path: Path, reader, ncomp: int):
    """(the ITK image, its voxels as a 3D (z, y, x) array) of what ``reader`` is set to read: the
    first component of a vector image, a 2D image as one slice, booleans as uint8."""
    def run():
        image = reader.Execute()
        if ncomp > 1:
            image = sitk.VectorIndexSelectionCast(image, 0)
        return image, sitk.GetArrayFromImage(image)

    img, zyx = _quiet(path, "the file is truncated or corrupt", run)
    if zyx.ndim == 2:  # a 2D image: one slice
        zyx = zyx[None]
    return img, (zyx.astype(np.uint8) if zyx.dtype.kind == "b" else zyx)


def _frame_reader(path: Path, size: tuple[int, ...], ncomp: int):
    """A function giving time frame k's voxels, the same type and layout as the first frame's:
    ITK streams just that frame's region (a reader of its own per call, so a worker thread
    never shares one with another)."""
    frames = size[3]

    def read(k: int) -> np.ndarray:
        if not 0 <= k < frames:
            raise IndexError(f"frame {k} of {frames}")
        reader = sitk.ImageFileReader()
        reader.SetFileName(str(path))
        reader.SetExtractIndex([0, 0, 0, int(k)])
        reader.SetExtractSize([*size[:3], 0])
        return _voxels(path, reader, ncomp)[1].transpose(2, 1, 0)

    return read


def load_itk(path: Path) -> Volume:
    """Read a MetaImage file into a ``Volume`` with its RAS affine.

    Parameters
    ----------
    path : ``.mha`` or ``.mhd`` (whose ``ElementDataFile`` is read from beside it).

    Returns
    -------
    Volume whose array is ``(x, y, z)`` = ITK's index order: a transposed (Fortran-ordered)
    view of the ``(z, y, x)`` array SimpleITK hands out, not a second copy. 4D images give
    their first frame (only that frame is read) and
    vector images their first component (``meta['frames']`` / ``meta['components']``).

    Before ITK reads a voxel: every data file the header names (one, a LIST, a pattern) must
    be a regular file (no FIFO, no /dev/zero) and is listed in ``meta['outside_files']`` when
    it lies outside the header's folder; the files must be able to hold the declared size;
    compressed data is inflated once to check its stream and checksum. ITK's own stderr
    messages are captured and become the error's reason.
    """
    path = Path(path)
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    _quiet(path, "not a readable MetaImage file", reader.ReadImageInformation)
    size = tuple(int(s) for s in reader.GetSize())
    ncomp = int(reader.GetNumberOfComponents())
    dtype = _component_dtype(reader.GetPixelID())
    if dtype is None:
        kind = sitk.GetPixelIDValueAsString(reader.GetPixelID())
        raise LoadError(path, f"unsupported voxel type ({kind})")
    if not 2 <= len(size) <= 4:
        raise LoadError(path, f"cannot show a {len(size)}D image as a volume")
    # ITK's buffer and the numpy copy coexist for a moment
    meta: dict[str, Any] = {"format": "MetaImage"}
    layout = _layout(path, size, meta)
    n_values = int(np.prod(size, dtype=object)) * ncomp
    # the file must hold every frame, even when only the first is read (checked before memory:
    # a tiny file claiming terabytes is truncated or corrupt, whatever the machine has)
    _check_data(path, layout, n_values * dtype.itemsize, n_values)
    check_fits_in_memory(path, (*size[:3], ncomp), dtype, factor=2.0)
    notes = []
    if len(size) == 4:
        # read only the first frame (ITK streams the region; size 0 drops the 4th axis)
        reader.SetExtractIndex([0, 0, 0, 0])
        reader.SetExtractSize([*size[:3], 0])
        if size[3] > 1:
            meta["frames"] = size[3]
            notes.append(f"4D image with {size[3]} frames: showing the first")
            meta["read_frame"] = _frame_reader(path, size, ncomp)

    img, zyx = _voxels(path, reader, ncomp)  # a 2D image: one slice, 1 mm thick along the plane normal
    if ncomp > 1:
        meta["components"] = ncomp
        notes.append(f"{ncomp} components per voxel: showing the first")
    d = img.GetDimension()
    direction = np.array(img.GetDirection(), dtype=float).reshape(d, d)
    spacing = np.array(img.GetSpacing(), dtype=float)
    origin = np.array(img.GetOrigin(), dtype=float)
    del img  # the array is a copy: free ITK's buffer now
    lps = np.eye(4)
    lps[:d, :d] = direction * spacing  # scales column c (axis c) by spacing[c]
    lps[:d, 3] = origin
    if notes:
        meta["note"] = "; ".join(notes)
    modality = ""
    if reader.HasMetaDataKey("Modality"):
        modality = _MODALITIES.get(reader.GetMetaData("Modality").strip(), "")
    try:
        return Volume(zyx.transpose(2, 1, 0), _LPS_TO_RAS @ lps, modality=modality,
                      name=path.stem, source=str(path), meta=meta)
    except ValueError as exc:
        raise LoadError(path, str(exc)) from None
