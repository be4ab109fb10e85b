"""VTK image grids (legacy STRUCTURED_POINTS ``.vtk``, XML ``.vti``) open as volumes.

Files are written by VTK's own writers (through pyvista, or the writer classes with the data
mode, encoding and compressor set) and read back: the voxel values, their order and the
voxel-to-world affine are compared with what was written, and with pyvista's own idea of where
each point lies (``grid.points``: VTK's world x, y, z, taken as RAS). Lying headers are refused
with one line by ``main.py info`` under a memory cap and a timeout, before VTK allocates.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import pyvista as pv
import vtk

from viewer.io import kind_of, load
from viewer.model import LabelMap, LoadError, Volume

ROOT = Path(__file__).resolve().parents[2]
MEMORY_CAP = 1536 << 20  # bytes of address space for the CLI: VTK's imports fit, a blow-up does not
TIME_CAP = 30.0  # seconds for one `main.py info` (imports included) on a busy 2-core machine
DIRECTION = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, -1.0]])


def grid(dtype, dims=(7, 5, 4), spacing=(0.5, 0.75, 2.0), origin=(-10.0, 20.0, 3.5), direction=None,
         where="point", seed=0) -> tuple[pv.ImageData, np.ndarray]:
    """An ImageData with one array of ``dtype`` and the (I, J, K) values it should load as."""
    g = pv.ImageData(dimensions=dims, spacing=spacing, origin=origin)
    if direction is not None:
        g.direction_matrix = direction
    shape = dims if where == "point" else tuple(max(d - 1, 1) for d in dims)
    rng = np.random.default_rng(seed)
    dt = np.dtype(dtype)
    values = (rng.normal(0, 100, shape) if dt.kind == "f" else rng.integers(0, 120, shape)).astype(dt)
    data = g.point_data if where == "point" else g.cell_data
    data["values"] = values.ravel(order="F")  # VTK's order: x fastest
    return g, values


def with_pyvista(name: str, dtype, **kw) -> Callable[[Path], tuple[Path, pv.ImageData, np.ndarray]]:
    save = {k: kw.pop(k) for k in ("binary", "compression") if k in kw}

    def make(tmp: Path):
        g, values = grid(dtype, **kw)
        g.save(tmp / name, **save)
        return tmp / name, g, values
    return make


def with_xml_writer(name: str, dtype, mode: str, compressor: str = "None", raw: bool = False, pieces: int = 1,
                    **kw):
    """vtkXMLImageDataWriter with a data mode (Ascii, Binary, Appended), compressor and pieces."""
    def make(tmp: Path):
        g, values = grid(dtype, **kw)
        w = vtk.vtkXMLImageDataWriter()
        w.SetInputData(g)
        getattr(w, f"SetDataModeTo{mode}")()
        getattr(w, f"SetCompressorTypeTo{compressor}")()
        if raw:
            w.SetEncodeAppendedData(False)
        w.SetNumberOfPieces(pieces)
        w.SetFileName(str(tmp / name))
        assert w.Write() == 1
        return tmp / name, g, values
    return make


def with_legacy_writer(name: str, dtype, binary: bool, **kw):
    def make(tmp: Path):
        g, values = grid(dtype, **kw)
        w = vtk.vtkStructuredPointsWriter()
        w.SetInputData(g)
        w.SetFileTypeToBinary() if binary else w.SetFileTypeToASCII()
        w.SetFileName(str(tmp / name))
        assert w.Write() == 1
        return tmp / name, g, values
    return make


# id -> writer; each row one format variant, type, geometry or data location
WRITTEN = {
    "legacy-binary-int16": with_pyvista("a.vtk", np.int16, binary=True),
    "legacy-ascii-float32": with_pyvista("b.vtk", np.float32, binary=False),
    "legacy-binary-uint8-flat-axis": with_pyvista("c.vtk", np.uint8, binary=True, dims=(9, 6, 1)),
    "legacy-vtk-writer-ascii-int32": with_legacy_writer("d.vtk", np.int32, binary=False),
    "legacy-vtk-writer-binary-float64": with_legacy_writer("e.vtk", np.float64, binary=True,
                                                           spacing=(1.25, 1.25, 0.6)),
    "legacy-cell-data": with_pyvista("f.vtk", np.int16, binary=True, where="cell"),
    "vti-zlib-int16": with_pyvista("a.vti", np.int16),
    "vti-uncompressed-uint16": with_pyvista("b.vti", np.uint16, compression=None),
    "vti-direction-matrix": with_pyvista("c.vti", np.float32, direction=DIRECTION),
    "vti-ascii-int16": with_xml_writer("d.vti", np.int16, "Ascii"),
    "vti-inline-base64": with_xml_writer("e.vti", np.float64, "Binary"),
    "vti-appended-raw": with_xml_writer("f.vti", np.int32, "Appended", raw=True),
    "vti-appended-lzma": with_xml_writer("g.vti", np.uint8, "Appended", compressor="LZMA"),
    "vti-four-pieces": with_xml_writer("i.vti", np.int16, "Appended", raw=True, pieces=4),
    "vti-cell-data": with_pyvista("h.vti", np.float32, where="cell", direction=DIRECTION),
}


@pytest.mark.parametrize("case", list(WRITTEN))
def test_image_grid_round_trip(tmp_path: Path, case: str) -> None:
    path, g, values = WRITTEN[case](tmp_path)
    assert kind_of(path) == "volume"

    vol = load(path)

    assert isinstance(vol, Volume) and vol.array.dtype == values.dtype
    if "ascii-float" in case:  # VTK writes ASCII floats with 6 digits: what the file holds
        held = pv.read(path).point_data["values"].reshape(values.shape, order="F")
        np.testing.assert_array_equal(vol.array, held)
        np.testing.assert_allclose(vol.array, values, rtol=1e-5)
    else:
        np.testing.assert_array_equal(vol.array, values)
    assert vol.array.flags.f_contiguous  # VTK's memory viewed (I, J, K), x fastest
    spacing = np.array(g.spacing, float)
    direction = np.array(g.direction_matrix, float)
    origin = np.array(g.origin, float)
    if "cell" in case:  # voxels at the cell centres
        origin = origin + direction @ (spacing * [0.5 if d > 1 else 0 for d in g.dimensions])
    expected = np.eye(4)
    expected[:3, :3] = direction @ np.diag(spacing)
    expected[:3, 3] = origin
    np.testing.assert_allclose(vol.affine, expected, atol=1e-12)
    # VTK's world (pyvista's points and cell centres) is the volume's RAS, voxel for voxel
    centres = g.points if "cell" not in case else g.cell_centers().points
    shape = vol.shape
    for ijk in [(0, 0, 0), (shape[0] - 1, 0, 0), (1, shape[1] - 1, shape[2] - 1), tuple(np.array(shape) // 2)]:
        idx = ijk[0] + shape[0] * (ijk[1] + shape[1] * ijk[2])
        np.testing.assert_allclose(vol.index_to_world(ijk), centres[idx], atol=1e-5)
        written = (g.point_data if "cell" not in case else g.cell_data)["values"][idx]
        assert vol.array[ijk] == pytest.approx(written, rel=1e-5)
    assert vol.meta["format"].startswith("VTK") and vol.meta["array"] == "values"


def test_pyvista_frog_opens_as_a_volume_and_as_labels() -> None:
    frog = Path(importlib.util.find_spec("pyvista").origin).parent / "examples" / "frog_tissues.vti"
    g = pv.read(frog)
    vol = load(frog)
    assert vol.shape == tuple(g.dimensions) and vol.array.dtype == np.uint8
    np.testing.assert_allclose(vol.spacing, g.spacing)
    assert vol.axcodes == "RAS"  # VTK x, y, z taken as RAS
    tissue = np.asarray(g.point_data["MetaImage"])
    i, j, k = 250, 235, 68
    assert vol.array[i, j, k] == tissue[i + 500 * (j + 470 * k)]
    labels = load(frog, as_labels=True)
    assert isinstance(labels, LabelMap)
    assert set(np.unique(labels.array[::4, ::4, ::4])) <= set(range(30)) and labels.array.max() > 10


def test_meshes_in_vtk_files_are_still_meshes(tmp_path: Path) -> None:
    pv.Sphere().save(tmp_path / "s.vtk")
    assert kind_of(tmp_path / "s.vtk") == "mesh"
    assert load(tmp_path / "s.vtk").n_faces == pv.Sphere().n_cells


def test_fifo_named_vtk_is_never_opened_by_kind_of(tmp_path: Path) -> None:
    fifo = tmp_path / "f.vtk"
    os.mkfifo(fifo)
    start = time.perf_counter()
    assert kind_of(fifo) == "mesh"  # reading a FIFO's header would block for ever
    with pytest.raises(LoadError, match="FIFO"):
        load(fifo)
    assert time.perf_counter() - start < 5


def run_main(*args: str) -> subprocess.CompletedProcess:
    """``main.py ARGS`` under the memory cap and timeout."""
    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))

    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    return subprocess.run([sys.executable, str(ROOT / "main.py"), *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=TIME_CAP, preexec_fn=cap, env=env)


@pytest.mark.parametrize("case, labels", [("legacy-binary-int16", False), ("vti-zlib-int16", True)])
def test_main_info_prints_a_volume(tmp_path: Path, case: str, labels: bool) -> None:
    path, g, values = WRITTEN[case](tmp_path)
    result = run_main("info", str(path), *(["--labels"] if labels else []))
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["kind"] == "volume" and info["shape"] == list(values.shape)
    assert info["min"] == values.min() and info["max"] == values.max()
    np.testing.assert_allclose(info["spacing"], g.spacing)


# --- hostile headers: one line, before VTK allocates ------------------------------------------------
BIG = 1000  # a 1000³ grid: 1 G voxels, claimed by files of a few hundred bytes


def legacy(body: bytes, mode: str = "BINARY", version: str = "3.0") -> bytes:
    return f"# vtk DataFile Version {version}\nhostile\n{mode}\nDATASET STRUCTURED_POINTS\n".encode() + body


def write(name: str, data: bytes | Callable[[Path], bytes]) -> Callable[[Path], Path]:
    def make(tmp: Path) -> Path:
        (tmp / name).write_bytes(data(tmp) if callable(data) else data)
        return tmp / name
    return make


def edited(case: str, change: Callable[[bytes], bytes]) -> Callable[[Path], bytes]:
    """A file of WRITTEN, its bytes changed."""
    def data(tmp: Path) -> bytes:
        sub = tmp / "src"
        sub.mkdir(exist_ok=True)
        path, _, _ = WRITTEN[case](sub)
        return change(path.read_bytes())
    return data


def vti(extent: str, array: str, appended: bytes = b"", compressor: str = "") -> bytes:
    comp = f' compressor="{compressor}"' if compressor else ""
    text = (f'<?xml version="1.0"?>\n<VTKFile type="ImageData" version="0.1" byte_order="LittleEndian" '
            f'header_type="UInt32"{comp}>\n<ImageData WholeExtent="{extent}" Origin="0 0 0" Spacing="1 1 1">\n'
            f'<Piece Extent="{extent}">\n<PointData Scalars="v">\n{array}\n</PointData>\n</Piece>\n</ImageData>\n')
    tail = (b'<AppendedData encoding="raw">\n_' + appended + b"\n</AppendedData>\n") if appended else b""
    return text.encode() + tail + b"</VTKFile>\n"


HOSTILE = {  # id -> (file maker, a regular expression the one line must match)
    "legacy-grid-claims-1G-voxels-no-data": (write("g.vtk", legacy(f"DIMENSIONS {BIG} {BIG} {BIG}\n"
                                                                   "SPACING 1 1 1\nORIGIN 0 0 0\n".encode())),
                                              "image grid"),
    "legacy-point-data-claims-1G": (write("p.vtk", legacy(f"DIMENSIONS {BIG} {BIG} {BIG}\nSPACING 1 1 1\n"
                                                          f"ORIGIN 0 0 0\nPOINT_DATA {BIG ** 3}\nSCALARS v "
                                                          "short 1\nLOOKUP_TABLE default\n".encode() + bytes(64))),
                                    r"claims .* holds only"),
    "legacy-ascii-grid-claims": (write("a.vtk", legacy("DIMENSIONS 2000 2000 10\nSPACING 1 1 1\nORIGIN 0 0 0\n"
                                                       "POINT_DATA 4\nSCALARS v float\nLOOKUP_TABLE default\n"
                                                       "1 2 3 4\n".encode(), "ASCII")), "image grid"),
    "legacy-fewer-values-than-points": (write("f.vtk", legacy(b"DIMENSIONS 5 5 5\nSPACING 1 1 1\nORIGIN 0 0 0\n"
                                                              b"POINT_DATA 24\nSCALARS v short 1\n"
                                                              b"LOOKUP_TABLE default\n" + bytes(48 + 200))),
                                        r"(24 values for a grid of 5×5×5 points|points don't match)"),
    "legacy-negative-dimension": (write("n.vtk", legacy(b"DIMENSIONS -5 4 4\nSPACING 1 1 1\nORIGIN 0 0 0\n")),
                                  "at least 1"),
    "legacy-dimensions-not-numbers": (write("d.vtk", legacy(b"DIMENSIONS 4 x 4\nSPACING 1 1 1\n")),
                                      "bad DIMENSIONS"),
    "legacy-no-dimensions": (write("m.vtk", legacy(b"SPACING 1 1 1\nORIGIN 0 0 0\nPOINT_DATA 1\n")),
                             "no DIMENSIONS"),
    "legacy-zero-spacing": (write("z.vtk", edited("legacy-binary-int16",
                                                  lambda b: b.replace(b"SPACING 0.5 0.75 2", b"SPACING 0 0.75 2"))),
                            "singular"),
    "legacy-binary-cut-short": (write("t.vtk", edited("legacy-vtk-writer-binary-float64",
                                                      lambda b: b[: len(b) - 120])), "Error reading"),
    "vti-extent-claims-1G-compressed": (write("c.vti", vti(f"0 {BIG - 1} 0 {BIG - 1} 0 {BIG - 1}",
                                                           '<DataArray type="Int16" Name="v" format="binary">'
                                                           "AQAAAACAAAAwAAAALAAAAA==</DataArray>",
                                                           compressor="vtkZLibDataCompressor")),
                                        r"claims .* of gzip data"),
    "vti-extent-claims-1G-raw": (write("r.vti", vti(f"0 {BIG - 1} 0 {BIG - 1} 0 {BIG - 1}",
                                                    '<DataArray type="Float32" Name="v" format="appended" '
                                                    'offset="0"/>', appended=bytes(64))),
                                 r"claims .* holds only"),
    "vti-extent-claims-ascii": (write("a.vti", vti("0 999 0 999 0 9", '<DataArray type="Int16" Name="v" '
                                                   'format="ascii">1 2 3</DataArray>')),
                                r"claims .* holds only"),
    "vti-block-header-claims": (write("b.vti", vti("0 3 0 2 0 1", '<DataArray type="Int16" Name="v" '
                                                   'format="binary">/////wCAAAD/////</DataArray>',
                                                   compressor="vtkZLibDataCompressor")),
                                "corrupt compressed data header"),
    "vti-bad-extent": (write("e.vti", vti("0 3 0 x 0 1", "")), "WholeExtent"),
    "vti-empty-extent": (write("x.vti", vti("0 3 5 2 0 1", "")), "empty grid"),
    "vti-bad-piece-extent": (write("q.vti", vti("0 3 0 2 0 1", "").replace(b'Piece Extent="0 3 0 2 0 1"',
                                                                            b'Piece Extent="0 3"')),
                             "no valid Piece Extent"),
    "vti-polydata-inside": (write("p.vti", b'<?xml version="1.0"?>\n<VTKFile type="PolyData" version="0.1">\n'
                                           b"<PolyData></PolyData></VTKFile>\n"), "not VTK image data"),
    "vti-cut-in-half": (write("h.vti", edited("vti-appended-raw", lambda b: b[: len(b) // 2])),
                        "not a readable VTK image file"),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_image_grid_is_one_line(tmp_path: Path, case: str) -> None:
    make, words = HOSTILE[case]
    path = make(tmp_path)
    start = time.perf_counter()
    result = run_main("info", str(path))
    seconds = time.perf_counter() - start
    lines = result.stderr.splitlines()
    assert result.returncode == 2, (result.returncode, result.stdout[:300], result.stderr[-2000:])
    assert len(lines) == 1 and str(path) in lines[0] and re.search(words, lines[0]), result.stderr[-2000:]
    assert result.stdout == "" and seconds < TIME_CAP
