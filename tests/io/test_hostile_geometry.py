"""Hostile meshes, point clouds and photo sets: refused with one line, fast, in little memory.

Each case builds a real file (with pyvista, laspy, PIL, or by hand where the point is a lying
header) and runs ``main.py info PATH`` in a subprocess whose address space is capped
(RLIMIT_AS) under a wall-clock timeout: a header that makes a reader allocate gigabytes dies of
MemoryError (or VTK's abort) instead of passing, and a FIFO that blocks trips the timeout. A
refusal is exit status 2, exactly one line on stderr naming the path, nothing on stdout.
Files referred to by what the user opened (an OBJ's material and texture, a scene's photos)
are read only when they are regular files; those from outside the opened file's folder are
listed in ``meta["outside_files"]``.
"""

from __future__ import annotations

import base64
import json
import math
import os
import resource
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path
from typing import Callable

import laspy
import numpy as np
import pytest
import pyvista as pv
from PIL import Image

from viewer.io import load
from viewer.io.photosets import pixel_budget

ROOT = Path(__file__).resolve().parents[2]
MEMORY_CAP = 1536 << 20  # bytes of address space: VTK's imports fit, a blow-up does not
TIME_CAP = 30.0  # seconds for one `main.py info` (imports included) on a busy 2-core machine
BIG = 400_000_000  # the count the lying headers claim (4.8 GB of float xyz)
IDENTITY = np.eye(4).tolist()


def run_info(path: Path, timeout: float = TIME_CAP) -> tuple[subprocess.CompletedProcess, float]:
    """``main.py info PATH`` under the memory cap; (result, seconds)."""
    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))

    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    start = time.perf_counter()
    result = subprocess.run([sys.executable, str(ROOT / "main.py"), "info", str(path)], cwd=ROOT,
                            capture_output=True, text=True, timeout=timeout, preexec_fn=cap, env=env)
    return result, time.perf_counter() - start


def load_in_child(path: Path, timeout: float = TIME_CAP) -> dict:
    """Load PATH in a capped subprocess (a hang or blow-up fails the test, never the run) and
    return its ``meta`` (notes, outside files) and what it holds; stderr must stay empty."""
    code = ("import json, sys; from viewer.io import load; d = load(sys.argv[1]); "
            "print(json.dumps({'meta': {k: v for k, v in d.meta.items() if isinstance(v, (str, list))}, "
            "'texture': getattr(d, 'texture', None) is not None}))")

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))

    r = subprocess.run([sys.executable, "-c", code, str(path)], cwd=ROOT, capture_output=True,
                       text=True, timeout=timeout, preexec_fn=cap)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    return json.loads(r.stdout)


# --- file makers ---------------------------------------------------------------------------------
def write(name: str, data: bytes | str) -> Callable[[Path], Path]:
    def make(tmp: Path) -> Path:
        (tmp / name).write_bytes(data.encode() if isinstance(data, str) else data)
        return tmp / name
    return make


def vtk_legacy(body: bytes, mode: str = "ASCII", version: str = "3.0") -> bytes:
    return f"# vtk DataFile Version {version}\nhostile\n{mode}\n".encode() + body


def ply(fmt: str, elements: str, body: bytes) -> bytes:
    return f"ply\nformat {fmt} 1.0\n{elements}end_header\n".encode() + body


XYZ = "property float x\nproperty float y\nproperty float z\n"
FACE = "property list uchar int vertex_indices\n"


def vtp(piece: str, arrays: str, extra: str = "", attrs: str = "") -> str:
    return ('<?xml version="1.0"?>\n<VTKFile type="PolyData" version="0.1" byte_order="LittleEndian"'
            f'{attrs}>\n<PolyData>\n<Piece {piece}>\n<Points>\n{arrays}\n</Points>\n</Piece>\n'
            f"</PolyData>\n{extra}</VTKFile>\n")


def las_patched(suffix: str, offset: int, fmt: str, value: int | Callable[[int], tuple],
                version: str = "1.2", keep: float = 1.0) -> Callable[[Path], Path]:
    """A small valid LAS/LAZ written by laspy, then one header field overwritten (``value``
    may be a function of the file's size giving the packed values), or the file cut short."""
    def make(tmp: Path) -> Path:
        header = laspy.LasHeader(point_format=3, version=version)
        header.scales = [0.01] * 3
        las = laspy.LasData(header)
        n = 200
        las.x, las.y, las.z = np.arange(n) * 1.0, np.arange(n) * 2.0, np.zeros(n)
        path = tmp / f"cloud{suffix}"
        las.write(path)
        data = bytearray(path.read_bytes())
        if offset >= 0:
            struct.pack_into(fmt, data, offset, *(value(len(data)) if callable(value) else (value,)))
        path.write_bytes(bytes(data[:int(len(data) * keep)]))
        return path
    return make


def laz_chunk_table_past_end(tmp: Path) -> Path:
    """A LAZ whose chunk-table offset (the first 8 bytes of its point data) points far away."""
    path = las_patched(".laz", -1, "", 0)(tmp)
    data = bytearray(path.read_bytes())
    struct.pack_into("<q", data, struct.unpack_from("<I", data, 96)[0], 10**15)
    path.write_bytes(bytes(data))
    return path


def png_header(w: int, h: int) -> bytes:
    """A PNG with a real IHDR claiming w x h RGBA and no pixels: only its header can be read, so
    a loader that decodes before checking sizes fails differently from one that checks first."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 6, 0, 0, 0))
            + chunk(b"IEND", b""))


def transforms(tmp: Path, names: list[str], folder: str = "scene", **frame_extra) -> Path:
    d = tmp / folder
    d.mkdir(exist_ok=True)
    frames = [{"file_path": n, "transform_matrix": IDENTITY, **frame_extra} for n in names]
    (d / "transforms.json").write_text(json.dumps({"camera_angle_x": 0.8, "frames": frames}))
    return d


def photo_set(image: Callable[[Path], None], n: int = 2, **frame_extra) -> Callable[[Path], Path]:
    """A transforms.json scene whose frames all show scene/img.png, made by ``image``."""
    def make(tmp: Path) -> Path:
        d = transforms(tmp, ["img.png"] * n, **frame_extra)
        image(d / "img.png")
        return d
    return make


def frames_over_budget(w: int = 4000, h: int = 4000) -> int:
    """How many w x h RGBA frames make twice the scene pixel budget (the child's budget
    is read again there, from the memory available then: the margin absorbs the change)."""
    return math.ceil(2 * pixel_budget() / (w * h * 4)) + 1


def colmap_over_budget(tmp: Path) -> Path:
    d = tmp / "colmap"
    (d / "sparse" / "0").mkdir(parents=True)
    (d / "images").mkdir()
    (d / "images" / "big.png").write_bytes(png_header(4000, 4000))
    (d / "sparse/0/cameras.txt").write_text("1 PINHOLE 4000 4000 3000 3000 2000 2000\n")
    lines = [f"{i + 1} 1 0 0 0 0 0 0 1 big.png\n" for i in range(frames_over_budget())]
    (d / "sparse/0/images.txt").write_text("\n".join(lines) + "\n")
    return d


def truncated_png(path: Path) -> None:
    rng = np.random.default_rng(3)
    Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(path)
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * 0.6)])


def fifo_at(name: str, make_owner: Callable[[Path], Path]) -> Callable[[Path], Path]:
    def make(tmp: Path) -> Path:
        owner = make_owner(tmp)
        target = (owner if owner.is_dir() else owner.parent) / name
        target.unlink(missing_ok=True)
        os.mkfifo(target)
        return owner
    return make


def linked_to_dev_zero(name: str, make_owner: Callable[[Path], Path]) -> Callable[[Path], Path]:
    def make(tmp: Path) -> Path:
        owner = make_owner(tmp)
        target = (owner if owner.is_dir() else owner.parent) / name
        target.unlink(missing_ok=True)
        target.symlink_to("/dev/zero")
        return owner
    return make


def colmap_scene(tmp: Path) -> Path:
    d = tmp / "colmap"
    (d / "sparse" / "0").mkdir(parents=True)
    (d / "images").mkdir()
    Image.new("RGB", (16, 12)).save(d / "images" / "a.png")
    (d / "sparse/0/cameras.txt").write_text("1 PINHOLE 16 12 20 20 8 6\n")
    (d / "sparse/0/images.txt").write_text("1 1 0 0 0 0 0 0 1 a.png\n\n")
    return d


def tiny_obj(tmp: Path, mtl: str = "m.mtl", texture: str = "t.png") -> Path:
    d = tmp / "obj"
    d.mkdir(exist_ok=True)
    (d / "m.obj").write_text(f"mtllib {mtl}\nv 0 0 0\nv 1 0 0\nv 0 1 0\nvt 0 0\nvt 1 0\nvt 0 1\n"
                             "usemtl x\nf 1/1 2/2 3/3\n")
    if not (d / mtl).exists():
        (d / mtl).write_text(f"newmtl x\nmap_Kd {texture}\n")
    return d / "m.obj"


# --- refused: one line, exit 2, bounded time and memory -----------------------------------------
_P = "POINTS 3 float\n0 0 0 1 0 0 0 1 0\n"
REFUSED = {
    # legacy VTK: counts in the header against the bytes in the file
    "vtk_ascii_points": (write("p.vtk", vtk_legacy(f"DATASET POLYDATA\nPOINTS {BIG} float\n0 0 0\n".encode())),
                         "claims"),
    "vtk_binary_points": (write("p.vtk", vtk_legacy(f"DATASET POLYDATA\nPOINTS {BIG} float\n".encode()
                                                    + bytes(36), "BINARY")), "claims"),
    "vtk_polygons": (write("p.vtk", vtk_legacy(f"DATASET POLYDATA\n{_P}POLYGONS {BIG} {4 * BIG}\n3 0 1 2\n"
                                               .encode())), "claims"),
    "vtk_v5_offsets": (write("p.vtk", vtk_legacy(f"DATASET POLYDATA\n{_P}POLYGONS {BIG} {BIG}\n"
                                                 "OFFSETS vtktypeint64\n0 3\nCONNECTIVITY vtktypeint64\n"
                                                 "0 1 2\n".encode(), version="5.1")), "claims"),
    "vtk_unstructured_cells": (write("u.vtk", vtk_legacy(f"DATASET UNSTRUCTURED_GRID\n{_P}CELLS 1 {BIG}\n"
                                                         f"3 0 1 2\nCELL_TYPES {BIG}\n5\n".encode())),
                               "claims"),
    "vtk_cell_count_over_size": (write("c.vtk", vtk_legacy(f"DATASET UNSTRUCTURED_GRID\n{_P}CELLS {BIG} 4\n"
                                                           "3 0 1 2\nCELL_TYPES 1\n5\n".encode())), "claims"),
    "vtk_unstructured_without_cells": (write("n.vtk", vtk_legacy(f"DATASET UNSTRUCTURED_GRID\n{_P}".encode())),
                                       "no points found"),  # was an internal error (no cell array)
    "vtk_point_scalars": (write("s.vtk", vtk_legacy(f"DATASET POLYDATA\n{_P}POINT_DATA {BIG}\nSCALARS s "
                                                    "float 4\nLOOKUP_TABLE default\n1 2 3\n".encode())),
                          "claims"),
    "vtk_field_array": (write("f.vtk", vtk_legacy(f"DATASET POLYDATA\n{_P}POINT_DATA 3\nFIELD FieldData 1\n"
                                                  f"arr 3 {BIG} double\n1 2 3\n".encode())), "claims"),
    "vtk_lookup_table": (write("l.vtk", vtk_legacy(f"DATASET POLYDATA\n{_P}POINT_DATA 3\nSCALARS s float 1\n"
                                                   f"LOOKUP_TABLE lut\n1 2 3\nLOOKUP_TABLE lut {BIG}\n"
                                                   "0 0 0 1\n".encode())), "claims"),
    "vtk_keyword_glued_to_binary": (write("g.vtk", vtk_legacy(b"DATASET POLYDATA\nPOINTS 1 float\n"
                                                              + bytes(11) + b"A"
                                                              + f"POLYGONS {BIG} {4 * BIG}\n".encode()
                                                              + bytes(16), "BINARY")), "claims"),
    "vtk_image_grid": (write("i.vtk", vtk_legacy(b"DATASET STRUCTURED_POINTS\nDIMENSIONS 100000 100000 "
                                                 b"100000\nSPACING 1 1 1\nORIGIN 0 0 0\n")), "image grid"),
    "vtk_structured_grid_dims": (write("sg.vtk", vtk_legacy(f"DATASET STRUCTURED_GRID\nDIMENSIONS 2000 2000 "
                                                            f"2000\n{_P}".encode())), "grid of"),
    # PLY: element counts against the body (binary exactly, ASCII two bytes a value)
    "ply_binary_vertices": (write("v.ply", ply("binary_little_endian", f"element vertex {BIG}\n{XYZ}",
                                                 bytes(24))), "claims"),
    "ply_ascii_vertices": (write("v.ply", ply("ascii", f"element vertex {BIG}\n{XYZ}", b"0 0 0\n")),
                           "claims"),
    "ply_binary_faces": (write("f.ply", ply("binary_little_endian",
                                              f"element vertex 3\n{XYZ}element face {BIG}\n{FACE}",
                                              bytes(36) + b"\x03" + bytes(12))), "claims"),
    "ply_truncated_body": (lambda tmp: (pv.Sphere().save(tmp / "t.ply", binary=True),
                                        (tmp / "t.ply").write_bytes((tmp / "t.ply").read_bytes()[:-300]),
                                        tmp / "t.ply")[2], "truncated"),
    # STL: 84-byte header + 50 bytes a triangle
    "stl_binary_count": (write("t.stl", b"\0" * 80 + struct.pack("<I", BIG) + bytes(50)), "claims"),
    # VTP: piece counts against the file (raw, appended, compressed)
    "vtp_ascii_points": (write("p.vtp", vtp(f'NumberOfPoints="{BIG}" NumberOfPolys="0"',
                                            '<DataArray type="Float32" NumberOfComponents="3" '
                                            'format="ascii">0 0 0</DataArray>')), "claims"),
    "vtp_appended_points": (write("a.vtp", vtp(f'NumberOfPoints="{BIG}"', '<DataArray type="Float32" '
                                               'NumberOfComponents="3" format="appended" offset="0"/>',
                                               '<AppendedData encoding="raw">\n_' + "\0" * 16
                                               + "\n</AppendedData>\n")), "claims"),
    "vtp_compressed_polys": (write("c.vtp", vtp(f'NumberOfPoints="3" NumberOfPolys="{BIG}"',
                                                '<DataArray type="Float32" NumberOfComponents="3" '
                                                'format="ascii">0 0 0 1 0 0 0 1 0</DataArray>',
                                                attrs=' compressor="vtkZLibDataCompressor"')), "claims"),
    "vtp_huge_components": (write("n.vtp", vtp('NumberOfPoints="3"', f'<DataArray type="Float32" '
                                               f'NumberOfComponents="{BIG}" format="ascii">0 0 0</DataArray>')),
                            "claims"),  # VTK aborted the process (std::bad_alloc)
    "vtp_negative_count": (write("m.vtp", vtp('NumberOfPoints="-5"', '<DataArray type="Float32" '
                                              'NumberOfComponents="3" format="ascii">0 0 0</DataArray>')),
                           "negative"),
    "vtp_compressed_block_count": (write("z.vtp", vtp('NumberOfPoints="3"', '<DataArray type="Float32" '
                                                      'NumberOfComponents="3" format="binary">'
                                                      + base64.b64encode(struct.pack("<III", 4_000_000_000,
                                                                                     65536, 10)).decode()
                                                      + "</DataArray>",
                                                      attrs=' compressor="vtkZLibDataCompressor"')),
                                   "compressed data header"),  # VTK aborted the process
    # OBJ: no counts; an index past the vertices is caught before VTK reads it
    "obj_huge_index": (write("i.obj", "v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 4000000000\n"), "corrupt"),
    "obj_index_overflowing_int64": (write("o.obj", "v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 99999999999999999999999\n"),
                                    "corrupt"),
    "ply_face_list_length": (write("l.ply", ply("binary_little_endian", f"element vertex 3\n{XYZ}element face 1\n"
                                                "property list int int vertex_indices\n",
                                                bytes(36) + struct.pack("<i", 2_000_000_000) + bytes(12))),
                             "truncated"),
    # LAS / LAZ: header counts and offsets against the file
    "las_point_count": (las_patched(".las", 107, "<I", 4_000_000_000), "truncated"),
    "las14_count64": (las_patched(".las", 247, "<Q", 10**12, version="1.4"), "truncated"),
    "las14_evlr_count": (las_patched(".las", 235, "<QI", lambda size: (size, 4_000_000_000), version="1.4"),
                         "corrupt"),  # 4 billion EVLRs at the end of the file: laspy looped
    "las_data_offset": (las_patched(".las", 96, "<I", 10**9), "corrupt"),
    "laz_point_count": (las_patched(".laz", 107, "<I", 4_000_000_000), "corrupt"),
    "laz_truncated": (las_patched(".laz", -1, "", 0, keep=0.8), "LAS/LAZ"),
    "laz_chunk_table_offset": (laz_chunk_table_past_end, "LAS/LAZ"),
    # text points: counts only compared, never allocated
    "pts_count_line": (write("c.pts", f"{BIG}\n0 0 0\n1 1 1\n"), "truncated"),
    # the opened file itself is a FIFO
    "fifo_ply": (fifo_at("f.ply", lambda tmp: tmp / "f.ply"), "FIFO"),
    "fifo_las": (fifo_at("f.las", lambda tmp: tmp / "f.las"), "FIFO"),
    # photo sets: total pixels from the headers before any decoding; bombs; irregular photos
    "scene_12_frames_12000px": (photo_set(lambda p: p.write_bytes(png_header(12000, 12000)), 12),
                                "decompression bomb"),
    "scene_over_pixel_budget": (lambda tmp: photo_set(lambda p: p.write_bytes(png_header(4000, 4000)),
                                                      frames_over_budget())(tmp), "allowed"),
    "colmap_over_pixel_budget": (colmap_over_budget, "allowed"),
    "scene_truncated_png": (photo_set(truncated_png), "cannot read the image"),
    "scene_fifo_image": (fifo_at("img.png", photo_set(lambda p: None)), "FIFO"),
    "scene_dev_zero_image": (linked_to_dev_zero("img.png", photo_set(lambda p: None)),
                             "character device"),
    "scene_fifo_mask": (fifo_at("m.png", photo_set(lambda p: Image.new("RGB", (16, 12)).save(p),
                                                   mask_path="m.png")), "FIFO"),
    "colmap_fifo_image": (fifo_at("images/a.png", colmap_scene), "FIFO"),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_hostile_input_is_one_line(tmp_path, case):
    make, words = REFUSED[case]
    path = make(tmp_path)
    result, seconds = run_info(path)
    lines = result.stderr.splitlines()
    assert result.returncode == 2, (result.returncode, result.stdout[:300], result.stderr[-2000:])
    assert len(lines) == 1 and str(path) in lines[0] and words in lines[0], result.stderr[-2000:]
    assert result.stdout == ""
    assert seconds < TIME_CAP


# --- loaded with a note: a bad texture or material is skipped, never waited on -----------------
SKIPPED = {
    "obj_fifo_texture": (lambda tmp: fifo_at("t.png", tiny_obj)(tmp), "FIFO"),
    "obj_fifo_mtl": (lambda tmp: fifo_at("m.mtl", tiny_obj)(tmp), "FIFO"),
    "obj_dev_zero_texture": (lambda tmp: linked_to_dev_zero("t.png", tiny_obj)(tmp), "character device"),
    "obj_dev_zero_mtl": (lambda tmp: linked_to_dev_zero("m.mtl", tiny_obj)(tmp), "character device"),
    "obj_bomb_texture": (lambda tmp: (tiny_obj(tmp), (tmp / "obj/t.png").write_bytes(png_header(12000, 12000)),
                                      tmp / "obj/m.obj")[2], "decompression bomb"),
    "obj_truncated_texture": (lambda tmp: (tiny_obj(tmp), truncated_png(tmp / "obj/t.png"),
                                           tmp / "obj/m.obj")[2], "unreadable"),
}


@pytest.mark.parametrize("case", list(SKIPPED))
def test_unusable_texture_or_material_is_a_note(tmp_path, case):
    make, words = SKIPPED[case]
    got = load_in_child(make(tmp_path))
    assert not got["texture"] and words in got["meta"]["note"], got


# --- outside files: read (when regular) and listed ----------------------------------------------
def test_obj_texture_from_another_folder_is_listed(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    Image.new("RGB", (4, 4), (200, 10, 10)).save(elsewhere / "skin.png")
    obj = tiny_obj(tmp_path, texture=str(elsewhere / "skin.png"))
    mesh = load(obj)
    assert mesh.texture is not None and mesh.texture[0, 0].tolist() == [200, 10, 10]
    assert mesh.meta["outside_files"] == [str((elsewhere / "skin.png").resolve())]


def test_obj_texture_beside_it_is_not_listed(tmp_path):
    obj = tiny_obj(tmp_path)
    Image.new("RGB", (4, 4)).save(obj.parent / "t.png")
    mesh = load(obj)
    assert mesh.texture is not None and "outside_files" not in mesh.meta


@pytest.mark.parametrize("layout", ["parent_path", "symlink"])
def test_scene_photo_from_outside_is_listed(tmp_path, layout):
    outside = tmp_path / "photos" / "a.png"
    outside.parent.mkdir()
    Image.new("RGB", (16, 12), (1, 2, 3)).save(outside)
    if layout == "parent_path":
        scene = transforms(tmp_path, ["../photos/a.png"])
    else:
        scene = transforms(tmp_path, ["a.png"])
        (scene / "a.png").symlink_to(outside)
    vs = load(scene)
    assert vs.frames[0].rgba[0, 0].tolist() == [1, 2, 3, 255]
    assert vs.meta["outside_files"] == [str(outside.resolve())]


def test_colmap_photo_from_outside_is_listed(tmp_path):
    d = colmap_scene(tmp_path)
    outside = tmp_path / "a.png"
    Image.new("RGB", (16, 12), (9, 9, 9)).save(outside)
    (d / "images" / "a.png").unlink()
    (d / "images" / "a.png").symlink_to(outside)
    vs = load(d)
    assert vs.meta["outside_files"] == [str(outside.resolve())]
    (tmp_path / "other").mkdir()
    assert "outside_files" not in load(colmap_scene(tmp_path / "other")).meta


# --- files that are large but honest still load -------------------------------------------------
@pytest.mark.filterwarnings("error")  # a warning would be a second line on the CLI's stderr
@pytest.mark.parametrize("suffix, binary", [(".vtk", True), (".vtk", False), (".ply", True),
                                            (".ply", False), (".stl", True), (".vtp", None)])
def test_honest_files_pass_the_claim_checks(tmp_path, suffix, binary):
    src = pv.Sphere(theta_resolution=60, phi_resolution=60).texture_map_to_sphere()
    src.point_data["s"] = np.arange(src.n_points, dtype=np.int32)
    path = tmp_path / f"s{suffix}"
    src.save(path, **({} if binary is None else {"binary": binary}))
    mesh = load(path)
    assert mesh.n_faces == src.n_cells


def test_scene_under_the_budget_loads(tmp_path):
    scene = photo_set(lambda p: Image.new("RGBA", (16, 12), (5, 6, 7, 255)).save(p), 3)(tmp_path)
    vs = load(scene)
    assert len(vs.frames) == 3 and vs.frames[2].rgba[5, 5].tolist() == [5, 6, 7, 255]


@pytest.mark.filterwarnings("error")  # a warning would be a second line on the CLI's stderr
@pytest.mark.parametrize("mode", ["ascii", "binary", "appended_raw", "appended_base64"])
@pytest.mark.parametrize("compressor", [None, "ZLib", "LZ4", "LZMA"])
@pytest.mark.parametrize("header", ["UInt32", "UInt64"])
def test_honest_vtp_variants_pass_the_checks(tmp_path, mode, compressor, header):
    """Every way vtkXMLPolyDataWriter lays data out (and 2 blocks of compressed data) loads."""
    import vtk

    src = pv.Sphere(theta_resolution=120, phi_resolution=120)
    src.point_data["n"] = np.arange(src.n_points, dtype=np.float64)  # > one 32 KiB block
    writer = vtk.vtkXMLPolyDataWriter()
    writer.SetInputData(src)
    writer.SetFileName(str(tmp_path / "s.vtp"))
    writer.SetBlockSize(32768)
    getattr(writer, f"SetHeaderTypeTo{header}")()
    if compressor is None:
        writer.SetCompressorTypeToNone()
    else:
        getattr(writer, f"SetCompressorTypeTo{compressor}")()
    kind, _, enc = mode.partition("_")
    getattr(writer, f"SetDataModeTo{kind.capitalize()}")()
    writer.SetEncodeAppendedData(enc == "base64")
    assert writer.Write() == 1
    mesh = load(tmp_path / "s.vtp")
    assert mesh.n_faces == src.n_cells and mesh.n_points == src.n_points


@pytest.mark.filterwarnings("error")  # a warning would be a second line on the CLI's stderr
@pytest.mark.parametrize("version", [42, 51])
@pytest.mark.parametrize("binary", [True, False])
@pytest.mark.parametrize("dataset", ["polydata", "unstructured"])
def test_honest_legacy_vtk_with_every_attribute_passes(tmp_path, version, binary, dataset):
    """Legacy files as vtkDataSetWriter lays them out, with every attribute kind the claim
    scan counts (scalars + lookup table, colours, vectors, normals, tcoords, tensors, fields,
    bit and string arrays), are not refused."""
    import vtk
    from vtk.util.numpy_support import numpy_to_vtk

    src = pv.Sphere(theta_resolution=30, phi_resolution=30).texture_map_to_sphere()
    n, m = src.n_points, src.n_cells
    src.point_data["s"] = np.arange(n, dtype=np.int32)
    src.point_data.active_scalars_name = "s"
    src.point_data["v"] = np.ones((n, 3))
    src.point_data["T"] = np.ones((n, 9), np.float32)
    src.cell_data["c"] = np.arange(m, dtype=np.float64)
    src.field_data["names"] = np.array(["a", "bb", "ccc"])
    bits = vtk.vtkBitArray()
    bits.SetName("flags")
    bits.SetNumberOfValues(n)
    src.GetPointData().AddArray(bits)
    rgb = numpy_to_vtk(np.full((m, 3), 200, np.uint8), deep=True)
    rgb.SetName("rgb")
    src.GetCellData().AddArray(rgb)
    data = src if dataset == "polydata" else src.cast_to_unstructured_grid()
    writer = vtk.vtkDataSetWriter()
    writer.SetInputData(data)
    writer.SetFileName(str(tmp_path / "s.vtk"))
    writer.SetFileVersion(version)
    writer.SetFileTypeToBinary() if binary else writer.SetFileTypeToASCII()
    writer.SetTensorsName("T")
    writer.SetVectorsName("v")
    assert writer.Write() == 1
    mesh = load(tmp_path / "s.vtk")
    assert mesh.n_points == n and mesh.n_faces == m


def test_scene_folder_named_like_a_photo_is_skipped(tmp_path):
    """Blender's file_path has no extension; a folder of that name is not the photo."""
    scene = transforms(tmp_path, ["./train/r_0"])
    (scene / "train" / "r_0").mkdir(parents=True)
    Image.new("RGB", (16, 12), (4, 5, 6)).save(scene / "train" / "r_0.png")
    assert load(scene).frames[0].name == "r_0.png"
