"""Image grids in VTK files as volumes: legacy ``.vtk`` with ``DATASET STRUCTURED_POINTS`` and
XML ``.vti`` (``<VTKFile type="ImageData">``).

World frame
-----------
VTK image data put voxel ``(i, j, k)`` at ``origin + direction @ (spacing * (i, j, k))`` in
VTK's world x, y, z; the direction matrix exists only in XML files (VTK >= 9 writes it), legacy
files have none (identity). VTK carries no anatomical frame, and Lucid3D takes **VTK's world
x, y, z as RAS** (x to the right, y anterior, z superior), as VTK's and pyvista's own data do
(pyvista's ``frog_tissues.vti``): the affine is ``[direction @ diag(spacing) | origin]``
unchanged. Image data written from ITK or 3D Slicer in their LPS world therefore show mirrored
left-right and front-back; the file cannot say which it is, so no LPS guess is made.

Voxel values
------------
The active point scalars, else the first numeric point-data array, else cell data (one voxel
per cell, at the cell centres: the grid shrinks by one along each axis and moves by half a
spacing). A multi-component array gives its first component (``meta['note']`` says so).
The array is VTK's own, viewed as (I, J, K) with i fastest, i.e. Fortran-ordered as NIfTI
arrays are: no copy.

Before VTK's reader allocates anything, every count the header declares is checked against
the file (binary data byte for byte, ASCII at two bytes a number, compressed data within
deflate's bound), and the grid itself must fit: each voxel needs at least one value.
"""

from __future__ import annotations

import mmap
import os
import re
import stat
from pathlib import Path
from typing import Any

import numpy as np

from ..model.errors import LoadError
from ..model.volume import Volume
from .common import check_claim_fits_file, check_fits_in_memory, require_regular_file

__all__ = ["is_vtk_image", "load_vtk_image"]

_LEGACY_HEAD = re.compile(rb"# vtk DataFile Version (\d+)\.\d+\s*\n[^\n]*\n\s*(ASCII|BINARY)\s", re.I)
_DATASET = re.compile(rb"DATASET\s+(\w+)", re.I)
_ATTRIBUTES = re.compile(rb"\b(POINT_DATA|CELL_DATA)\b", re.I)  # where the geometry part ends
_HEAD_BYTES = 4096  # the legacy header (version, title <= 256 bytes, geometry) lies within this
_XML_TAG = re.compile(rb"<(/?)(VTKFile|ImageData|Piece|PointData|CellData|FieldData|DataArray|AppendedData)\b"
                      rb"([^>]*)>")
_XML_ATTR = re.compile(rb"(\w+)\s*=\s*[\"']([^\"']*)[\"']")
_XML_SIZES = {b"Int8": 1, b"UInt8": 1, b"Int16": 2, b"UInt16": 2, b"Int32": 4, b"UInt32": 4, b"Int64": 8,
              b"UInt64": 8, b"Float32": 4, b"Float64": 8, b"Bit": 1, b"Char": 1, b"String": 1}


def is_vtk_image(path: str | os.PathLike) -> bool:
    """True for a ``.vti`` file, or a legacy ``.vtk`` whose DATASET is STRUCTURED_POINTS.

    Reads at most the first 4 KiB, and only from a regular file (a FIFO would block); anything
    unreadable is "not an image" here and is reported by the reader that gets it.
    """
    path = Path(path)
    if path.suffix.lower() == ".vti":
        return True
    try:
        if not stat.S_ISREG(path.stat().st_mode):
            return False
        with open(path, "rb") as fh:
            head = fh.read(_HEAD_BYTES)
    except OSError:
        return False
    m = _LEGACY_HEAD.match(head)
    kind = _DATASET.search(head, m.end()) if m else None
    return bool(kind) and kind.group(1).upper() == b"STRUCTURED_POINTS"


def load_vtk_image(path: str | os.PathLike) -> Volume:
    """Read a legacy ``.vtk`` image grid (STRUCTURED_POINTS) or a ``.vti`` file as a Volume.

    Returns
    -------
    Volume : (I, J, K) voxel values in the file's type, VTK's x fastest; the affine maps them
        to VTK's world x, y, z taken as RAS mm (see the module's docstring).

    Raises
    ------
    LoadError : not an image grid, counts that the file cannot hold, or data VTK cannot read,
        as one line.
    """
    path = Path(path)
    size = require_regular_file(path)
    if path.suffix.lower() == ".vti":
        need = _check_vti(path, size)
        reader_name, fmt = "vtkXMLImageDataReader", "VTK XML ImageData"
    else:
        need = _check_legacy(path, size)
        reader_name, fmt = "vtkStructuredPointsReader", "VTK legacy STRUCTURED_POINTS"
    check_fits_in_memory(path, (max(need, 1),), np.uint8)
    image = _read(path, reader_name)
    array, affine, meta = _voxels(path, image)
    meta["format"] = fmt
    name = path.name[: -len(path.suffix)] if path.suffix else path.name
    try:
        return Volume(array, affine, name=name, source=str(path), meta=meta)
    except ValueError as exc:  # a zero spacing: no voxel-to-world map
        raise LoadError(path, str(exc)) from None


# --- checks before VTK sees the file ------------------------------------------------------------
def _dims_text(dims) -> str:
    return "×".join(str(int(d)) for d in dims)


def _grid_counts(dims) -> tuple[int, int]:
    """(points, cells) of a grid of ``dims`` points (a flat axis has one cell layer)."""
    points = int(np.prod([int(d) for d in dims], dtype=object))
    cells = int(np.prod([max(int(d) - 1, 1) for d in dims], dtype=object))
    return points, cells


def _check_legacy(path: Path, size: int) -> int:
    """Check a legacy STRUCTURED_POINTS file; return the bytes VTK's reader will allocate."""
    from .mesh_checks import _vtk_claims  # the legacy keyword scan the mesh check uses

    with open(path, "rb") as fh:
        head = fh.read(_HEAD_BYTES)
    m = _LEGACY_HEAD.match(head)
    if not m:
        raise LoadError(path, "not a legacy VTK file (bad '# vtk DataFile Version' header)")
    kind = _DATASET.search(head, m.end())
    if not kind or kind.group(1).upper() != b"STRUCTURED_POINTS":
        found = kind.group(1).decode("latin-1") if kind else "none"
        raise LoadError(path, f"not a VTK image grid (DATASET {found}, not STRUCTURED_POINTS)")
    end = _ATTRIBUTES.search(head, kind.end())
    dims = _legacy_numbers(path, head[kind.end(): end.start() if end else len(head)], b"DIMENSIONS", int)
    if dims is None:
        raise LoadError(path, "the image grid has no DIMENSIONS line")
    if any(d < 1 for d in dims):
        raise LoadError(path, f"the image grid has DIMENSIONS {_dims_text(dims)}: each must be at least 1")
    binary = m.group(2).upper() == b"BINARY"
    with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
        values, nbytes, _grid, _points = _vtk_claims(buf, binary, int(m.group(1)) >= 5)
    # binary data is there byte for byte; an ASCII number takes at least a digit and a space
    check_claim_fits_file(path, nbytes if binary else 2 * values, size,
                          what=f"the image grid header ({values:,} numbers)")
    _check_grid_fits(path, dims, size, None if binary else "ascii")
    return nbytes


def _legacy_numbers(path: Path, text: bytes, key: bytes, kind: type) -> list | None:
    m = re.search(rb"\b" + key + rb"\s+(\S+)\s+(\S+)\s+(\S+)", text, re.I)
    if not m:
        return None
    try:
        return [kind(v) for v in m.groups()]
    except ValueError:
        raise LoadError(path, f"bad {key.decode()} in the image grid header "
                              f"({b' '.join(m.groups()).decode('latin-1')[:60]})") from None


def _check_grid_fits(path: Path, dims, size: int, encoding: str | None) -> None:
    """Every voxel needs a value: at least one byte each (two in ASCII: a digit and a space),
    counting cells (fewer than points) since the data may be cell data; ``encoding`` "gzip" or
    "bzip2" allows the compression's bound."""
    _, cells = _grid_counts(dims)
    need = 2 * cells if encoding == "ascii" else cells
    check_claim_fits_file(path, need, size, compression=encoding if encoding != "ascii" else None,
                          what=f"the image grid header ({_dims_text(dims)} points)")


def _check_vti(path: Path, size: int) -> int:
    """Check a ``.vti`` file's extents and arrays against its size; return the bytes VTK's
    reader will allocate (every array over the whole extent)."""
    from .mesh_checks import _check_vtp_blocks  # compressed block headers, as for .vtp

    with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
        stop = buf.find(b"<AppendedData")  # raw appended bytes may hold anything
        head_end = stop if stop >= 0 else len(buf)
        tags = [(t.group(1), t.group(2), dict(_XML_ATTR.findall(t.group(3))), t.end())
                for t in _XML_TAG.finditer(buf, 0, head_end)]
        top = next((a for c, t, a, _ in tags if t == b"VTKFile" and not c), None)
        if top is None:
            raise LoadError(path, "not a VTK XML file (no <VTKFile> element)")
        if top.get(b"type") != b"ImageData":
            found = top.get(b"type", b"none").decode("latin-1")[:40]
            raise LoadError(path, f"not VTK image data (VTKFile type {found}, not ImageData)")
        compressor = top.get(b"compressor", b"").upper()
        kind = None if not compressor else "bzip2" if b"LZMA" in compressor else "gzip"
        hsize = 8 if top.get(b"header_type", b"").upper() == b"UINT64" else 4
        appended = buf.find(b"_", stop) + 1 if stop >= 0 else -1
        raw = stop >= 0 and b'encoding="raw"' in bytes(buf[stop:stop + 200])
        dims = _vti_dims(path, tags)
        whole = _grid_counts(dims)
        plain = packed = 0  # bytes the arrays take in the file: uncompressed, compressed
        allocated = {}  # (section, name) -> bytes VTK allocates for it over the whole extent
        section, piece = b"", whole
        for closing, tag, attrs, end in tags:
            if tag == b"Piece" and not closing:  # each piece holds its own extent's values
                piece = _grid_counts(_extent_dims(path, attrs.get(b"Extent", b""), "Piece Extent"))
            if tag in (b"PointData", b"CellData", b"FieldData"):
                section = b"" if closing else tag
            if tag != b"DataArray" or closing:
                continue
            try:
                comps = int(attrs.get(b"NumberOfComponents", 1))
                tuples = int(attrs.get(b"NumberOfTuples", 0)) if section == b"FieldData" \
                    else piece[0] if section == b"PointData" else piece[1]
            except ValueError as exc:
                raise LoadError(path, f"bad count in the image data header ({exc})") from None
            if comps < 1 or tuples < 0:
                raise LoadError(path, f"bad count in the image data header ({comps} components, {tuples} tuples)")
            size_of = _XML_SIZES.get(attrs.get(b"type", b""), 1)
            nbytes = comps * tuples * size_of
            full = nbytes if section == b"FieldData" else comps * size_of * whole[section != b"PointData"]
            key = (section, attrs.get(b"Name", b""))
            allocated[key] = max(allocated.get(key, 0), full)
            if attrs.get(b"format") == b"ascii":
                plain += 2 * comps * tuples  # a digit and a space a number
            elif kind:
                packed += nbytes
                _check_vtp_blocks(path, buf, end, attrs, appended, raw, hsize, size, kind)
            else:
                plain += nbytes
    check_claim_fits_file(path, plain, size, what="the image data header")
    check_claim_fits_file(path, packed, size, compression=kind, what="the image data header")
    _check_grid_fits(path, dims, size, kind)
    return sum(allocated.values())


def _vti_dims(path: Path, tags: list) -> list[int]:
    image = next((a for c, t, a, _ in tags if t == b"ImageData" and not c), None)
    return _extent_dims(path, (image or {}).get(b"WholeExtent", b""), "WholeExtent")


def _extent_dims(path: Path, text: bytes, what: str) -> list[int]:
    """Points along each axis of an extent ``"x0 x1 y0 y1 z0 z1"``."""
    try:
        ext = [int(v) for v in text.split()]
    except ValueError:
        ext = []
    if len(ext) != 6:
        raise LoadError(path, f"the image data has no valid {what} ({text.decode('latin-1')[:60]!r})")
    dims = [ext[2 * a + 1] - ext[2 * a] + 1 for a in range(3)]
    if any(d < 1 for d in dims):
        raise LoadError(path, f"the image data has {what} {' '.join(map(str, ext))}: an empty grid")
    return dims


# --- reading and the voxel array ----------------------------------------------------------------
def _read(path: Path, reader_name: str):
    """Run VTK's reader; any error VTK reports (it reports short data and goes on) is a LoadError."""
    import vtk

    from .meshes import _VTK_PREFIX, _quiet_vtk  # one VTK read at a time, its messages kept

    with _quiet_vtk() as catcher:
        reader = getattr(vtk, reader_name)()
        if reader_name == "vtkStructuredPointsReader":
            reader.ReadAllScalarsOn()
        reader.SetFileName(str(path))
        reader.Update()
        image = reader.GetOutput()
    # legacy files report short binary data as a warning, "Error reading binary data!"
    events = catcher.error_events + [w for w in catcher.warning_events if "error" in w.alert.lower()]
    errors = [_VTK_PREFIX.sub("", " ".join(e.alert.split())) for e in events if e.alert]
    if errors:
        raise LoadError(path, f"not a readable VTK image file ({errors[0][:200]})")
    if image is None or not image.GetNumberOfPoints():
        raise LoadError(path, "no image grid found: the file is empty or not valid")
    return image


def _voxels(path: Path, image) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """(I, J, K) voxel array, voxel-to-world (VTK x, y, z = RAS) affine, and meta."""
    from vtk.util.numpy_support import vtk_to_numpy

    dims = [int(d) for d in image.GetDimensions()]
    spacing = np.array(image.GetSpacing(), float)
    origin = np.array(image.GetOrigin(), float)
    direction = np.array([[image.GetDirectionMatrix().GetElement(r, c) for c in range(3)] for r in range(3)])
    found = _pick_array(image)
    if found is None:
        raise LoadError(path, "the image grid has no numeric point or cell data to show")
    array, where = found
    shape = dims if where == "point" else [max(d - 1, 1) for d in dims]
    if where == "cell":  # voxels at the cell centres
        origin = origin + direction @ (spacing * [0.5 if d > 1 else 0.0 for d in dims])
    n = int(np.prod(shape))
    name = array.GetName() or "scalars"
    if array.GetNumberOfTuples() != n:
        raise LoadError(path, f"{name}: {array.GetNumberOfTuples()} values for a grid of "
                              f"{_dims_text(shape)} {'points' if where == 'point' else 'cells'}")
    values = vtk_to_numpy(array)  # VTK's own memory, kept alive by the numpy array
    meta: dict[str, Any] = {"array": name, "data": f"{where} data",
                            "world": "VTK x, y, z taken as RAS (no anatomical frame in the file)"}
    if values.ndim == 2:
        meta["note"] = f"{name} has {values.shape[1]} components: showing the first"
        values = np.ascontiguousarray(values[:, 0])
    # VTK stores x fastest: (K, J, I) in C order is (I, J, K) in Fortran order, a view
    voxels = values.reshape(shape[::-1]).transpose(2, 1, 0)
    affine = np.eye(4)
    affine[:3, :3] = direction @ np.diag(spacing)
    affine[:3, 3] = origin
    return voxels, affine, meta


def _pick_array(image):
    """(vtkDataArray, "point"|"cell"): active point scalars, else the first numeric point
    array, else the same among the cell data; None when there is none."""
    import vtk

    for attrs, where in ((image.GetPointData(), "point"), (image.GetCellData(), "cell")):
        scalars = attrs.GetScalars()
        candidates = [scalars] if scalars is not None else []
        candidates += [attrs.GetArray(i) for i in range(attrs.GetNumberOfArrays())]
        for arr in candidates:
            if isinstance(arr, vtk.vtkDataArray) and not isinstance(arr, vtk.vtkBitArray) \
                    and arr.GetNumberOfTuples():
                return arr, where
    return None

