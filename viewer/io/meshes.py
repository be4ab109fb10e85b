"""Meshes and point sets from .ply .obj .stl .vtk .vtp through VTK's readers, in the file's own
units and frame (mesh formats carry no anatomical frame: no RAS/LPS conversion). Polygons are
triangulated; an OBJ's ``map_Kd`` texture is read with PIL (row 0 at the top; uv bottom-left).

Before VTK sees a file, :mod:`.mesh_checks` compares its counts with its size (VTK allocates
what a header declares). An OBJ's material and texture files are read only when they are
regular files (else a note); those outside the OBJ's folder go to ``meta["outside_files"]``.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import re
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
from .common import (atomic_path, check_fits_in_memory, note_outside_file, open_image_header,
                     quiet_pillow, require_file, require_regular_file)
from .mesh_checks import CHECKS

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
    check = CHECKS.get(suffix)
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
    with _quiet_vtk():  # triangulating odd cells may warn: nothing but the one line on stderr
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
            # unstructured/structured grid -> its surface (the algorithm named: pyvista warns
            # on stderr otherwise)
            out = pv.wrap(out).extract_surface(algorithm="dataset_surface")
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
    for cells in (c for c in arrays if c is not None and c.GetNumberOfCells()):
        conn = vtk_to_numpy(cells.GetConnectivityArray())
        if conn.size and (conn.min() < 0 or conn.max() >= n):
            raise LoadError(path, f"a cell uses vertex {int(conn.max())} of only {n}: corrupt file")
        off = vtk_to_numpy(cells.GetOffsetsArray())  # corrupt sizes crash vtkTriangleFilter
        if off[0] != 0 or off[-1] != len(conn) or np.any(np.diff(off) < 0):
            raise LoadError(path, "corrupt cell sizes (negative or past the end of the cell list)")


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
        with quiet_pillow(), open_image_header(tex, what="texture") as im:
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
    except LoadError as exc:  # "not a regular file (a FIFO): ...", "permission denied"
        reason = exc.reason.replace(": refusing to read it", "")
        return f"is {reason}" if reason.startswith("not a regular") else f"cannot be read ({reason})"
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
