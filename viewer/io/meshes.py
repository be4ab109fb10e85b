"""Meshes and point sets from .ply .obj .stl .vtk .vtp through VTK's readers, in the file's own
units and frame (mesh formats carry no anatomical frame: no RAS/LPS conversion). Polygons are
triangulated; an OBJ's ``map_Kd`` texture is read with PIL (row 0 at the top; uv bottom-left).
"""

from __future__ import annotations

import contextlib
import mmap
import os
import re
import struct
import threading
from pathlib import Path
from typing import Iterator

import numpy as np
import pyvista as pv
import vtk
from PIL import Image
from vtk.util.numpy_support import vtk_to_numpy

from ..model.errors import LoadError
from ..model.geometry import Mesh, PointCloud
from .common import (atomic_path, check_claim_fits_file, check_fits_in_memory, note_outside_file,
                     open_image_header, require_file, require_regular_file)

__all__ = ["load_mesh_or_points", "save_mesh", "mesh_to_polydata", "polydata_to_mesh", "MESH_FORMATS"]

MESH_FORMATS = {".ply": "PLY", ".obj": "OBJ", ".stl": "STL", ".vtk": "VTK", ".vtp": "VTP"}
_READERS = {".ply": vtk.vtkPLYReader, ".obj": vtk.vtkOBJReader, ".stl": vtk.vtkSTLReader,
            ".vtk": vtk.vtkDataSetReader, ".vtp": vtk.vtkXMLPolyDataReader}
_COLOR_NAMES = ("RGB", "RGBA", "Colors", "colors", "Color", "color", "rgb", "rgba", "RGBColors")
_UV_NAMES = ("TCoords", "Texture Coordinates", "UV", "uv", "tcoords", "TextureCoordinates")
_VTK_PREFIX = re.compile(r"^Generic \w+: In \S+, line \d+\s*")  # "Generic Warning: In x.cxx, line 9"
# VTK's output window and logger are process-wide: one read at a time swaps them
_VTK_LOCK = threading.Lock()


@contextlib.contextmanager
def _quiet_vtk() -> Iterator[pv.VtkErrorCatcher]:
    """Collect VTK's messages instead of printing them: readers report bad files through the
    output window and ``vtkLogger``, then return empty data; callers make one LoadError line."""
    with _VTK_LOCK, pv.vtk_verbosity("off"), pv.VtkErrorCatcher(send_to_logging=False) as catcher:
        yield catcher


# --- reading -------------------------------------------------------------------------------
def load_mesh_or_points(path: Path) -> Mesh | PointCloud:
    """Read a .ply/.obj/.stl/.vtk/.vtp file.

    Returns
    -------
    Mesh : when the file has polygons or strips (triangulated; (N, 3) points in file units).
    PointCloud : when it has only points, vertices or lines (lines are dropped with a note).

    Raises
    ------
    LoadError : unreadable, truncated or empty files, as ``"PATH: reason"`` on one line.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in _READERS:
        raise LoadError(path, f"not a mesh format ({suffix or 'no extension'})")
    require_file(path)
    # VTK's readers trust their input: some damaged files crash the process, so check first
    check = {".ply": _check_ply, ".obj": _check_obj, ".vtk": _check_vtk_header, ".stl": _check_stl,
             ".vtp": _check_vtp}.get(suffix)
    if check is not None:
        check(path)
    pd, notes = _read_polydata(path, suffix)
    meta: dict = {"format": MESH_FORMATS[suffix]}
    if pd.GetNumberOfPolys() + pd.GetNumberOfStrips() == 0:
        if pd.GetNumberOfLines():
            notes.append(f"{pd.GetNumberOfLines()} line cells were dropped (points only)")
        if notes:
            meta["note"] = "; ".join(notes)
        pdata = pd.GetPointData()
        normals = _point_array(pdata, pdata.GetNormals(), ("Normals",), 3)
        return PointCloud(np.asarray(pd.points, float), colors=_point_colors(pdata), normals=normals,
                          name=path.name, source=str(path), meta=meta)
    texture = None
    if suffix == ".obj":
        _merge_material_uvs(pd)
        texture, tex_file, tex_notes = _obj_texture(path, meta)
        notes += tex_notes
        if tex_file is not None:
            meta["texture_file"] = tex_file
    if pd.GetNumberOfLines() or pd.GetNumberOfVerts():
        notes.append("line and vertex cells were dropped (surface only)")
    mesh = polydata_to_mesh(pd, texture=texture, name=path.name, source=str(path), meta=meta)
    if texture is not None and mesh.uv is None:
        mesh.texture = None
        notes.append("the texture was ignored: the mesh has no texture coordinates")
    if notes:
        mesh.meta["note"] = "; ".join(notes)
    return mesh


def _read_polydata(path: Path, suffix: str) -> tuple[pv.PolyData, list[str]]:
    """Run the VTK reader for ``suffix``; any VTK error or an empty result is a LoadError.
    Returns the data and notes on what was dropped."""
    with _quiet_vtk() as catcher:
        reader = _READERS[suffix]()
        if suffix == ".vtk":
            for flag in ("Scalars", "Vectors", "Normals", "TCoords", "ColorScalars", "Fields"):
                getattr(reader, f"ReadAll{flag}On")()
        reader.SetFileName(str(path))
        reader.Update()
        out = reader.GetOutputDataObject(0)
        if isinstance(out, (vtk.vtkImageData, vtk.vtkRectilinearGrid)):
            raise LoadError(path, "it holds an image grid, not a mesh or point set")
        if out is not None and not isinstance(out, vtk.vtkPolyData) and out.GetNumberOfPoints():
            _check_cells(path, out)
            out = pv.wrap(out).extract_surface()  # unstructured/structured grid -> its surface
    # legacy .vtk reports short binary data as a warning, "Error reading binary data!"
    events = catcher.error_events + [w for w in catcher.warning_events if "error" in w.alert.lower()]
    errors = [_VTK_PREFIX.sub("", " ".join(e.alert.split())) for e in events if e.alert]
    fmt = MESH_FORMATS[suffix]
    if errors:
        raise LoadError(path, f"not a readable {fmt} file ({errors[0][:200]})")
    if out is None or not isinstance(out, vtk.vtkPolyData) or out.GetNumberOfPoints() == 0:
        raise LoadError(path, f"no points found: the file is empty or not a valid {fmt} file")
    _check_cells(path, out)
    notes = []
    for attrs, n in ((out.GetPointData(), out.GetNumberOfPoints()),
                     (out.GetCellData(), out.GetNumberOfCells())):
        for i in reversed(range(attrs.GetNumberOfArrays())):
            arr = attrs.GetAbstractArray(i)
            if arr.GetNumberOfTuples() != n:  # e.g. fewer normals than vertices: drop them
                notes.append(f"ignored {arr.GetName() or 'an array'}: {arr.GetNumberOfTuples()} "
                             f"values for {n} items")
                attrs.RemoveArray(i)
    return pv.wrap(out), notes


def _check_cells(path: Path, data: vtk.vtkDataSet) -> None:
    """Refuse cells that name missing points before any VTK filter dereferences them."""
    n = data.GetNumberOfPoints()
    if isinstance(data, vtk.vtkPolyData):
        arrays = [data.GetVerts(), data.GetLines(), data.GetPolys(), data.GetStrips()]
    else:
        arrays = [data.GetCells()] if isinstance(data, vtk.vtkUnstructuredGrid) else []
    for cells in (c for c in arrays if c.GetNumberOfCells()):
        conn = vtk_to_numpy(cells.GetConnectivityArray())
        if conn.size and (conn.min() < 0 or conn.max() >= n):
            raise LoadError(path, f"a cell uses vertex {int(conn.max())} of only {n}: corrupt file")
        off = vtk_to_numpy(cells.GetOffsetsArray())  # corrupt sizes crash vtkTriangleFilter
        if off[0] != 0 or off[-1] != len(conn) or np.any(np.diff(off) < 0):
            raise LoadError(path, "corrupt cell sizes (negative or past the end of the cell list)")


def _check_vtk_header(path: Path) -> None:
    """A garbled version line makes vtkDataSetReader misparse the cell arrays (and crash);
    then every count in the file must fit the file (see :func:`_vtk_claims`)."""
    with open(path, "rb") as fh:
        head = fh.read(512)
    m = re.match(rb"# vtk DataFile Version (\d+)\.\d+\s*\n[^\n]*\n\s*(ASCII|BINARY)\s", head, re.I)
    if not m:
        raise LoadError(path, "not a legacy VTK file (bad '# vtk DataFile Version' header)")
    kind = re.search(rb"DATASET\s+(\w+)", head[m.end():], re.I)
    if kind and kind.group(1).upper() in (b"STRUCTURED_POINTS", b"RECTILINEAR_GRID"):
        raise LoadError(path, "it holds an image grid, not a mesh or point set")
    binary = m.group(2).upper() == b"BINARY"
    with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
        values, nbytes, grid, n_points = _vtk_claims(buf, binary, int(m.group(1)) >= 5)
    size = path.stat().st_size
    # binary data is there byte for byte; an ASCII number takes at least a digit and a space
    check_claim_fits_file(path, nbytes if binary else 2 * values, size,
                          what=f"the header ({values:,} numbers)")
    if grid > max(n_points, 1):
        raise LoadError(path, f"header claims a grid of {grid} points but only {n_points} points")


# binary item sizes of the legacy format's type names (bit: 1/8); unknown names count 1 byte
_VTK_SIZES = {"bit": 0.125, "char": 1, "signed_char": 1, "unsigned_char": 1, "short": 2,
              "unsigned_short": 2, "int": 4, "unsigned_int": 4, "long": 8, "unsigned_long": 8,
              "vtkidtype": 4, "float": 4, "double": 8, "vtktypeint32": 4, "vtktypeuint32": 4,
              "vtktypeint64": 8, "vtktypeuint64": 8}
_VTK_WORD = re.compile(rb"[A-Za-z_][A-Za-z_0-9]{2,}")  # numbers never match: ASCII data is skipped fast
_VTK_KEYS = ("points", "vertices", "lines", "polygons", "triangle_strips", "cells", "cell_types",
             "point_data", "cell_data", "scalars", "color_scalars", "vectors", "normals", "tensors",
             "tensors6", "texture_coordinates", "lookup_table", "dimensions")
_VTK_TYPES = frozenset(_VTK_SIZES) | {"string", "utf8_string", "variant"}


def _vtk_claims(buf, binary: bool, v5: bool) -> tuple[int, int, int, int]:
    """(numbers, bytes in binary, grid points, points) that a legacy VTK file's keywords claim.

    Keywords are found anywhere, in any case, even glued to the bytes before them (VTK reads
    words, not lines), and each one's counts read from the words after it as vtkDataReader
    does; field arrays are ``name components tuples type``. A chance match inside binary data
    can only add a claim, so whatever VTK will allocate is counted.
    """
    values = nbytes = n_points = grid = n_attr = 0
    scalars_table = False  # a SCALARS header's own LOOKUP_TABLE line is still to come
    for m in _VTK_WORD.finditer(buf):
        word = m.group().lower().decode()
        if word not in _VTK_TYPES and not word.endswith(_VTK_KEYS):
            continue  # most words in binary data: decided without slicing the buffer
        words = bytes(buf[m.end():m.end() + 400]).split(None, 5)[:5]
        ints = [int(w) if w.isdigit() and len(w) < 20 else None for w in words]
        types = [w.decode("latin-1").lower() for w in words]
        if word in _VTK_TYPES:  # a field array's header: the two counts stand before the type
            before = bytes(buf[max(0, m.start() - 60):m.start()]).split()[-2:]
            if len(before) == 2 and all(b.isdigit() and len(b) < 20 for b in before):
                n = int(before[0]) * int(before[1])
                values, nbytes = values + n, nbytes + int(n * _VTK_SIZES.get(word, 1) + 0.875)
            continue
        key = word if word in _VTK_KEYS else next((k for k in _VTK_KEYS if word.endswith(k)), None)
        if key is None or (len(types) > 2 and None not in ints[:2] and types[2] in _VTK_TYPES):
            continue  # not a keyword, or a field array named like one
        if key == "lookup_table" and scalars_table:
            scalars_table = False  # SCALARS' own "LOOKUP_TABLE name", followed by its data
            continue
        n = size = 0
        if key in ("point_data", "cell_data") and ints and ints[0] is not None:
            n_attr = ints[0]
        elif key == "points" and len(ints) > 1 and ints[0] is not None:
            n, size, n_points = 3 * ints[0], _VTK_SIZES.get(types[1], 1), n_points + ints[0]
        elif key in _VTK_KEYS[1:6] and len(ints) > 1 and None not in ints[:2]:
            n, size = (ints[0] + ints[1] if v5 else ints[1]), 4
        elif key == "cell_types" and ints and ints[0] is not None:
            n, size = ints[0], 4
        elif key == "dimensions" and len(ints) > 2 and None not in ints[:3]:
            grid = max(grid, ints[0] * ints[1] * ints[2])
        elif key == "scalars" and len(types) > 1:
            scalars_table = True
            comps = ints[2] if len(ints) > 2 and ints[2] is not None else 1
            n, size = n_attr * comps, _VTK_SIZES.get(types[1], 1)
        elif key == "color_scalars" and len(ints) > 1 and ints[1] is not None:
            n, size = n_attr * ints[1], 1
        elif key in ("vectors", "normals", "tensors", "tensors6") and len(types) > 1:
            n = n_attr * {"tensors": 9, "tensors6": 6}.get(key, 3)
            size = _VTK_SIZES.get(types[1], 1)
        elif key == "texture_coordinates" and len(ints) > 2 and ints[1] is not None:
            n, size = n_attr * ints[1], _VTK_SIZES.get(types[2], 1)
        elif key == "lookup_table" and len(ints) > 1 and ints[1] is not None:
            n, size = 4 * ints[1], 1
        values, nbytes = values + n, nbytes + int(n * size + 0.875)
    return values, nbytes, grid, n_points


def _check_stl(path: Path) -> None:
    """A binary STL holds its triangle count after an 80-byte header, then 50 bytes a
    triangle: a count the file cannot hold is refused. (VTK reads to the end of the file, so
    the count only has to be possible; some writers leave it 0.) ASCII STL has no counts."""
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(512)
    looks_ascii = head.lstrip().lower().startswith(b"solid") and all(b < 128 for b in head[84:])
    if size < 84 or (looks_ascii and size != 84 + 50 * struct.unpack_from("<I", head, 80)[0]):
        return
    n = struct.unpack_from("<I", head, 80)[0]
    check_claim_fits_file(path, 84 + 50 * n, size, what=f"the STL header ({n} triangles)")


_XML_PIECE = re.compile(rb"<Piece\b([^>]*)>")
_XML_COUNT = re.compile(rb"NumberOf(Points|Verts|Lines|Strips|Polys|Cells)\s*=\s*[\"']\s*(\d{1,20})")


def _check_vtp(path: Path) -> None:
    """The Pieces' NumberOfPoints and cell counts must fit the file: every point is three
    numbers of at least one byte each (ASCII: two), every cell at least one offset; compressed
    data (``compressor=``) can expand only so far. vtkXMLPolyDataReader allocates from these
    counts before reading the data, and aborts the process when that allocation fails."""
    with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
        stop = buf.find(b"<AppendedData")  # raw appended bytes may hold anything
        head = bytes(buf[:stop if stop >= 0 else len(buf)])
    need = 0
    for piece in _XML_PIECE.finditer(head):
        for key, n in _XML_COUNT.findall(piece.group(1)):
            need += 3 * int(n) if key == b"Points" else int(n)
    compressor = re.search(rb"compressor\s*=\s*[\"'](\w+)", head[:4096])
    kind = None
    if compressor:
        kind = "bzip2" if b"LZMA" in compressor.group(1).upper() else "gzip"  # LZMA: the loose bound
    check_claim_fits_file(path, need, path.stat().st_size, compression=kind, what="the VTP header")


def _check_obj(path: Path) -> None:
    """Every face/line/point corner ``v[/vt][/vn]`` must name an existing v, vt and vn: VTK does
    not check, and crashes. Vectorised over the whole file (about 0.1 s per 10 MB)."""
    data = np.fromfile(path, np.uint8)
    starts = np.r_[0, np.flatnonzero(data[:-2] == 10) + 1]  # lines with at least 2 more bytes
    ends = np.r_[starts[1:] - 1, len(data)]
    c0, c1, c2 = (data[np.minimum(starts + i, len(data) - 1)] for i in range(3))
    ws1, ws2 = (c1 == 32) | (c1 == 9), (c2 == 32) | (c2 == 9)
    v = c0 == ord("v")
    counts = np.array([np.sum(v & ws1), np.sum(v & (c1 == ord("t")) & ws2),
                       np.sum(v & (c1 == ord("n")) & ws2)])
    is_f = ((c0 == ord("f")) | (c0 == ord("l")) | (c0 == ord("p"))) & ws1
    data[starts[is_f]] = 32  # drop the keyword: only corners and newlines are left in the runs
    first_f = is_f & ~np.r_[False, is_f[:-1]]
    last_f = is_f & ~np.r_[is_f[1:], False]  # runs of consecutive face lines, copied at once
    runs = [data[i:j] for i, j in zip(starts[first_f], ends[last_f] + 1)]
    corners = np.concatenate(runs) if runs else np.empty(0, np.uint8)
    hashes, lf = np.flatnonzero(corners == ord("#")), np.r_[np.flatnonzero(corners == 10), len(corners)]
    for h, e in zip(hashes, lf[np.searchsorted(lf, hashes)]):  # trailing comments (rare)
        corners[h:e] = 32
    text = corners.tobytes().replace(b"//", b"/0/")  # "v//vn": vt 0 stands for "none"
    chars = np.frombuffer(text, np.uint8)
    space = chars <= 32
    first = np.flatnonzero(~space & np.r_[True, space[:-1]])  # where each corner starts
    slashes = np.flatnonzero(chars == ord("/"))
    per = 1 + np.bincount(np.searchsorted(first, slashes, side="right") - 1, minlength=len(first))
    try:
        numbers = np.fromstring(text.replace(b"/", b" "), dtype=np.int64, sep=" ")
    except ValueError:
        numbers = np.empty(0, np.int64)
    if len(numbers) != per.sum() or per.max(initial=1) > 3:
        raise LoadError(path, "a face corner is not of the form v, v/vt, v//vn or v/vt/vn")
    slot = np.arange(len(numbers)) - np.repeat(np.cumsum(per) - per, per)  # 0 v, 1 vt, 2 vn
    limit = counts[slot]
    ok = ((numbers >= -limit) & (numbers != 0) & (numbers <= limit)) | ((numbers == 0) & (slot == 1))
    if not ok.all():
        bad = int(np.argmin(ok))
        raise LoadError(path, f"a face uses {('v', 'vt', 'vn')[slot[bad]]} {numbers[bad]} but the "
                              f"file has {limit[bad]}: corrupt file")


_PLY_TYPES = {"char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1", "short": "i2", "int16": "i2",
              "ushort": "u2", "uint16": "u2", "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
              "float": "f4", "float32": "f4", "double": "f8", "float64": "f8"}
_PLY_INDEX = ("vertex_indices", "vertex_index")


def _check_ply(path: Path) -> None:
    """Check a PLY's header, length and face indices before VTK sees it: vtkPLYReader (VTK 9)
    segfaults on truncated binary data and on out-of-range face indices."""
    with open(path, "rb") as fh:
        head = fh.read(1 << 16)
    end = head.find(b"end_header")
    if not head.startswith(b"ply") or end < 0:
        raise LoadError(path, "not a PLY file (no 'ply ... end_header' header)")
    start = head.find(b"\n", end) + 1 or len(head)
    fmt, elements = "", []  # (name, count, [(property, list count dtype | None, item dtype)])
    try:
        for line in head[:end].decode("ascii", "replace").splitlines():
            tok = line.split()
            if tok and tok[0] == "format":
                fmt = tok[1]
            elif tok and tok[0] == "element":
                elements.append((tok[1], int(tok[2]), []))
            elif tok and tok[0] == "property" and elements:
                is_list = tok[1] == "list"
                elements[-1][2].append((tok[-1], _PLY_TYPES[tok[2]] if is_list else None,
                                        _PLY_TYPES[tok[3] if is_list else tok[1]]))
            elif tok and tok[0] not in ("ply", "comment", "obj_info"):
                raise ValueError(line[:40])
    except (IndexError, KeyError, ValueError) as exc:
        raise LoadError(path, f"bad PLY header line ({type(exc).__name__}: {exc})") from None
    if fmt not in ("ascii", "binary_little_endian", "binary_big_endian"):
        raise LoadError(path, f"unknown PLY format {fmt!r}")
    names = {name: {p for p, _, _ in props} for name, _, props in elements}
    counts = {name: count for name, count, _ in elements}
    if any(c < 0 for c in counts.values()):
        raise LoadError(path, "negative element count in the PLY header")
    if not {"x", "y", "z"} <= names.get("vertex", set()):
        raise LoadError(path, "the PLY header has no vertex x, y, z properties")
    if "face" in counts and not names["face"] & set(_PLY_INDEX):  # VTK would crash on it
        raise LoadError(path, "the PLY faces have no vertex_indices property")
    n_vert = counts["vertex"]
    # the least each element's records can take (lists empty; ASCII: a digit and a space per
    # value), checked before any walk or allocation: the counts are the file's own claims
    each = [sum(np.dtype(c if c is not None else t).itemsize for _, c, t in props)
            if fmt != "ascii" else 2 * len(props) for _, _, props in elements]
    need = sum(count * b for (_, count, _), b in zip(elements, each)) - (fmt == "ascii")
    check_claim_fits_file(path, need, path.stat().st_size - start,
                          what=f"the PLY header ({', '.join(f'{c:,} {n}' for n, c, _ in elements)})")
    try:
        if fmt == "ascii":
            _walk_ascii_ply(path, start, elements, n_vert)
            return
        order = "<" if fmt == "binary_little_endian" else ">"
        with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            pos = start
            for name, count, props in elements:
                pos = _ply_element_end(buf, pos, count, props, order,
                                       n_vert if name == "face" else None)
                if pos > len(buf):
                    raise ValueError(f"the file is truncated (its {name} data is incomplete)")
    except ValueError as exc:
        raise LoadError(path, str(exc)) from None
    except IndexError:
        raise LoadError(path, "a face line has fewer values than the header says") from None


def _check_indices(ids, n_vert: int) -> None:
    if len(ids) and (min(ids) < 0 or max(ids) >= n_vert):
        bad = min(ids) if min(ids) < 0 else max(ids)
        raise ValueError(f"a face uses vertex {bad} but there are {n_vert} vertices: corrupt file")


def _walk_ascii_ply(path: Path, start: int, elements: list, n_vert: int) -> None:
    """One element a line (as VTK reads them); face lines parsed to check their indices."""
    with open(path, "rb") as fh:
        fh.seek(start)
        lines = (ln for ln in fh if ln.strip())
        for name, count, props in elements:
            check = name == "face" and any(p in _PLY_INDEX for p, _, _ in props)
            for _ in range(count):
                line = next(lines, None)
                if line is None:
                    raise ValueError(f"the file is truncated (its {name} data is incomplete)")
                tok, i = line.split() if check else (), 0
                for prop, c, _t in props if check else ():
                    n = int(tok[i]) if c is not None else 0  # ValueError for junk
                    if prop in _PLY_INDEX:
                        ids = [int(v) for v in tok[i + 1:i + 1 + n]]
                        if len(ids) < n:
                            raise ValueError("a face line is shorter than its vertex count")
                        _check_indices(ids, n_vert)
                    i += 1 + n if c is not None else 1


def _ply_element_end(buf, pos: int, count: int, props: list, order: str,
                     n_vert: int | None) -> int:
    """Byte offset after ``count`` binary records from ``pos`` (beyond ``len(buf)`` if cut
    short); face indices are checked against ``n_vert`` unless it is None."""
    size = lambda t: np.dtype(t).itemsize  # noqa: E731

    def record_end(off: int, lists: list | None = None) -> int:
        first = off
        for prop, c, t in props:
            if c is None:
                off += size(t)
                continue
            n = int(struct.unpack_from(order + np.dtype(c).char, buf, off)[0]) \
                if off + size(c) <= len(buf) else -1
            if n < 0 or off + size(c) + n * size(t) > len(buf):
                return len(buf) + 1
            if lists is not None:  # (offset in the record, property, count type, type, length)
                lists.append((off - first, prop, c, t, n))
            off += size(c)
            if n_vert is not None and prop in _PLY_INDEX and n:
                _check_indices(struct.unpack_from(f"{order}{n}{np.dtype(t).char}", buf, off), n_vert)
            off += n * size(t)
        return off

    lists: list = []
    stride = record_end(pos, lists) - pos  # of the first record
    if count == 0 or not lists:
        return pos + count * stride
    if pos + count * stride <= len(buf):
        # vectorised when every record has the first one's list lengths (triangle meshes)
        rec = np.frombuffer(buf, np.uint8, count * stride, pos).reshape(count, stride)
        same = all(np.all(rec[:, o:o + size(c)].copy().view(order + c) == n)
                   for o, _, c, _, n in lists)
        ranges = [(int(ids.min()), int(ids.max())) for ids in (
            rec[:, o + size(c):o + size(c) + n * size(t)].copy().view(order + t)
            for o, prop, c, t, n in lists if same and n_vert is not None and prop in _PLY_INDEX and n)]
        del rec  # release the view before the mmap is closed (or an error is raised)
        if same:
            for lo_hi in ranges:
                _check_indices(lo_hi, n_vert)
            return pos + count * stride
    off = pos  # mixed list lengths: walk record by record (slow; rare in binary files)
    for _ in range(count):
        off = record_end(off)
        if off > len(buf):
            break
    return off


def _point_colors(pdata: vtk.vtkPointData) -> np.ndarray | None:
    """(N, 3) uint8 from an RGB(A) point array: named colour arrays, else uint8 active scalars."""
    arrays = [pdata.GetArray(name) for name in _COLOR_NAMES if pdata.HasArray(name)]
    scalars = pdata.GetScalars()
    if scalars is not None and scalars.GetDataType() == vtk.VTK_UNSIGNED_CHAR:
        arrays.append(scalars)
    for arr in arrays:
        if arr is None or arr.GetNumberOfComponents() not in (3, 4):
            continue
        a = vtk_to_numpy(arr)[:, :3]
        if a.dtype != np.uint8:  # floats in 0..1 (VTK's convention), else 0..255
            if not np.all(np.isfinite(a)):
                continue
            a = np.clip(np.rint(a * 255.0 if a.max(initial=0) <= 1.0 else a), 0, 255)
        return a.astype(np.uint8)
    return None


def _point_array(pdata: vtk.vtkPointData, arr, names: tuple, width: int) -> np.ndarray | None:
    """(N, width) float of ``arr`` (an active attribute) or else the first array in ``names``."""
    if arr is None:
        arr = next((pdata.GetArray(n) for n in names if pdata.HasArray(n)), None)
    if arr is None or arr.GetNumberOfComponents() < width:
        return None
    a = vtk_to_numpy(arr)[:, :width].astype(float)
    return a if np.all(np.isfinite(a)) else None


def _merge_material_uvs(pd: pv.PolyData) -> None:
    """vtkOBJReader gives one (N, 2) tcoords array per material, (-1, -1) at the other points;
    merge them into one (points are duplicated where uvs differ: one uv per point at most)."""
    pdata = pd.GetPointData()
    if pd.GetCellData().GetArray("MaterialIds") is None or pdata.GetTCoords() is None:
        return
    arrays = [vtk_to_numpy(pdata.GetArray(i)) for i in range(pdata.GetNumberOfArrays())
              if pdata.GetArray(i).GetNumberOfComponents() == 2
              and pdata.GetArray(i).GetDataType() in (vtk.VTK_FLOAT, vtk.VTK_DOUBLE)]
    if len(arrays) < 2:
        return
    uv = np.zeros((pd.GetNumberOfPoints(), 2))
    for arr in reversed(arrays):  # the first material's uv wins where two are set
        have = np.any(arr != -1.0, axis=1)
        uv[have] = arr[have]
    pd.point_data.active_texture_coordinates = uv


MAX_MTL_BYTES = 64 << 20
"""Larger material files are not read (real ones are kilobytes; the limit stops a link to a
huge file from being read whole just to look for ``map_Kd``)."""


def _obj_texture(path: Path, meta: dict) -> tuple[np.ndarray | None, str | None, list[str]]:
    """(texture (H, W, 3|4) uint8 row 0 at top | None, its path | None, notes): the first
    ``map_Kd`` of the OBJ's MTL files. A missing, irregular (FIFO, device) or unreadable MTL
    or image only adds a note; only regular files are opened, and those outside the OBJ's
    folder are listed in ``meta["outside_files"]``."""
    with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
        libs = [m.group(1).decode("utf-8", "replace").strip()
                for m in re.finditer(rb"^[ \t]*mtllib[ \t]+([^\r\n]+)", buf, re.M)]
    images, notes = [], []
    for lib in dict.fromkeys(libs):
        mtl = _find_beside(path.parent, lib)
        why = _unusable(mtl, MAX_MTL_BYTES)
        if why:
            notes.append(f"material file {lib} {why}: shown without texture")
            continue
        note_outside_file(meta, path, mtl)
        for line in mtl.read_text("utf-8", "replace").splitlines():
            tok = line.split()
            if len(tok) >= 2 and tok[0].lower() == "map_kd":
                name = _strip_map_options(tok[1:])
                images.append(_find_beside(mtl.parent, name) or mtl.parent / name)
    images = list(dict.fromkeys(images))
    if not images:
        return None, None, notes
    if len(images) > 1:
        notes.append(f"{len(images)} textures named: only {images[0].name} is shown")
    tex = images[0]
    why = _unusable(tex)
    if why:
        return None, str(tex), notes + [f"texture image {tex.name} {why}: shown without texture"]
    note_outside_file(meta, path, tex)
    try:
        with open_image_header(tex, what="texture") as im:  # header only: size checked first
            check_fits_in_memory(path, (im.size[1], im.size[0], 4), np.uint8, factor=3.0)
            im = im.convert("RGBA" if "A" in im.getbands() or "transparency" in im.info else "RGB")
            texture = np.asarray(im, dtype=np.uint8).copy()  # PIL rows run top to bottom
    except (LoadError, OSError, ValueError, SyntaxError) as exc:
        why = exc.reason if isinstance(exc, LoadError) else f"unreadable ({exc})"
        return None, str(tex), notes + [f"texture image {tex.name}: {why}: shown without texture"]
    return texture, str(tex), notes


def _unusable(ref: Path | None, max_bytes: int | None = None) -> str | None:
    """Why a file an OBJ refers to cannot be read (missing, not a regular file, too large),
    or None when it can."""
    if ref is None or not (ref.exists() or ref.is_symlink()):
        return "not found"
    try:
        size = require_regular_file(ref)
    except LoadError as exc:
        return exc.reason
    if max_bytes is not None and size > max_bytes:
        return f"is too large ({size} bytes)"
    return None


def _strip_map_options(tokens: list[str]) -> str:
    """The file name of ``map_Kd [-option values...] name``: options and their values skipped."""
    i = 0
    while i < len(tokens) - 1 and tokens[i].startswith("-"):
        i += 1
        while i < len(tokens) - 1 and (tokens[i].lower() in ("on", "off") or re.fullmatch(
                r"[-+]?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?|[rgbmlz]", tokens[i], re.I)):
            i += 1
    return " ".join(tokens[i:])


def _find_beside(folder: Path, name: str) -> Path | None:
    """``name`` in ``folder``, else its bare name there (exporters write other machines' paths)."""
    name = name.strip().strip('"')
    cands = (folder / name, folder / name.replace("\\", "/").rsplit("/", 1)[-1])
    for cand in cands:
        if cand.is_file():
            return cand
    # a FIFO or a device is returned too, so that the caller says why it is not read
    return next((c for c in cands if c.exists() or c.is_symlink()), None)


# --- conversion ----------------------------------------------------------------------------
def polydata_to_mesh(pd: pv.PolyData, *, texture: np.ndarray | None = None, name: str = "",
                     source: str | None = None, meta: dict | None = None) -> Mesh:
    """A :class:`Mesh` from a PolyData: polygons and strips triangulated, points kept in order.

    Point data kept: texture coordinates (active TCoords) -> ``uv`` (N, 2), RGB(A) colours ->
    ``colors`` (N, 3) uint8, normals -> ``normals`` (N, 3). Lines and vertices are ignored.
    """
    polys = pd.GetPolys()
    sizes = np.diff(vtk_to_numpy(polys.GetOffsetsArray())) if polys.GetNumberOfCells() else []
    if pd.GetNumberOfStrips() or np.any(np.asarray(sizes) != 3):
        # vtkTriangleFilter keeps the points and their data in order; it only rewrites cells
        pd = pd.triangulate(pass_lines=False, pass_verts=False)
    polys = pd.GetPolys()
    conn = vtk_to_numpy(polys.GetConnectivityArray()) if polys.GetNumberOfCells() else np.empty(0)
    pdata = pd.GetPointData()
    return Mesh(np.asarray(pd.points, float), conn.astype(np.int64).reshape(-1, 3),
                uv=_point_array(pdata, pdata.GetTCoords(), _UV_NAMES, 2), texture=texture,
                colors=_point_colors(pdata),
                normals=_point_array(pdata, pdata.GetNormals(), ("Normals",), 3),
                name=name, source=source, meta=dict(meta or {}))


def mesh_to_polydata(mesh: Mesh) -> pv.PolyData:
    """A PolyData of the mesh: triangles, uv as active texture coordinates (float32), colours
    as ``"RGB"`` (uint8, active scalars), normals as active normals (float32). The texture
    image is not part of a PolyData: pass ``mesh.texture`` to the renderer separately."""
    faces = np.asarray(mesh.faces, np.int64)
    pd = pv.PolyData.from_regular_faces(np.asarray(mesh.points, float), faces) if len(faces) \
        else pv.PolyData(np.asarray(mesh.points, float))
    if mesh.uv is not None:
        # float32: vtkPLYWriter only writes float tcoords (and crashes on double ones)
        pd.active_texture_coordinates = np.asarray(mesh.uv, np.float32)
    if mesh.colors is not None:
        pd.point_data["RGB"] = np.asarray(mesh.colors, np.uint8)
        pd.point_data.active_scalars_name = "RGB"
    if mesh.normals is not None:
        pd.point_data["Normals"] = np.asarray(mesh.normals, np.float32)
        pd.point_data.active_normals_name = "Normals"
    return pd


def save_mesh(mesh: Mesh, path: str | os.PathLike, protect: tuple = ()) -> Path:
    """Write .ply (binary, colours, uv), .obj (+ .mtl, .png texture), .stl (binary, geometry
    only), .vtp or .vtk, each file atomically. Returns ``path``; LoadError for a bad suffix."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in MESH_FORMATS:
        raise LoadError(path, f"cannot save a mesh as {suffix or 'no extension'}")
    pd = mesh_to_polydata(mesh)
    with atomic_path(path, protect) as tmp, _quiet_vtk():
        if suffix == ".ply":
            pd.save(tmp, binary=True, texture="RGB" if mesh.colors is not None else None)
        elif suffix == ".stl":
            pd.save(tmp, binary=True)
        else:
            pd.save(tmp)
        if suffix == ".obj" and mesh.texture is not None:
            png, mtl = path.with_suffix(".png"), path.with_suffix(".mtl")
            with atomic_path(png, protect) as tmp_png:
                Image.fromarray(np.asarray(mesh.texture, np.uint8)).save(tmp_png, format="PNG")
            with atomic_path(mtl, protect) as tmp_mtl:
                tmp_mtl.write_text(f"newmtl textured\nKd 1 1 1\nmap_Kd {png.name}\n")
            body = tmp.read_bytes()
            tmp.write_bytes(f"mtllib {mtl.name}\nusemtl textured\n".encode() + body)
    return path
