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
from .common import atomic_path, require_file

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
    check = {".ply": _check_ply, ".obj": _check_obj, ".vtk": _check_vtk_header}.get(suffix)
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
        texture, tex_file, tex_notes = _obj_texture(path)
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
    """A garbled version line makes vtkDataSetReader misparse the cell arrays (and crash)."""
    with open(path, "rb") as fh:
        if not re.match(rb"# vtk DataFile Version \d+\.\d+\s*\n[^\n]*\n\s*(ASCII|BINARY)\s",
                        fh.read(512), re.I):
            raise LoadError(path, "not a legacy VTK file (bad '# vtk DataFile Version' header)")


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


def _obj_texture(path: Path) -> tuple[np.ndarray | None, str | None, list[str]]:
    """(texture (H, W, 3|4) uint8 row 0 at top | None, its path | None, notes): the first
    ``map_Kd`` of the OBJ's MTL files. A missing MTL or image only adds a note."""
    with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
        libs = [m.group(1).decode("utf-8", "replace").strip()
                for m in re.finditer(rb"^[ \t]*mtllib[ \t]+([^\r\n]+)", buf, re.M)]
    images, notes = [], []
    for lib in dict.fromkeys(libs):
        mtl = _find_beside(path.parent, lib)
        if mtl is None:
            notes.append(f"material file {lib} not found: shown without texture")
            continue
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
    try:
        with Image.open(images[0]) as im:
            im = im.convert("RGBA" if "A" in im.getbands() or "transparency" in im.info else "RGB")
            texture = np.asarray(im, dtype=np.uint8).copy()  # PIL rows run top to bottom
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        why = "not found" if isinstance(exc, FileNotFoundError) else f"unreadable ({exc})"
        return None, str(images[0]), notes + [f"texture image {images[0].name} {why}: "
                                              "shown without texture"]
    return texture, str(images[0]), notes


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
    for cand in (folder / name, folder / name.replace("\\", "/").rsplit("/", 1)[-1]):
        if cand.is_file():
            return cand
    return None


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
