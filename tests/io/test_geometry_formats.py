"""Mesh and point-cloud loaders on real files written by pyvista, laspy and PIL (no mocks).

Each test writes a file with a library other than the loader's code path where one exists,
loads it with ``viewer.io.load`` and compares what came back with what was written: vertex
positions, faces, uv, colours (exact bytes) and texture pixels (including which row is on top).
"""

from __future__ import annotations

from pathlib import Path

import laspy
import numpy as np
import pytest
import pyvista as pv
from PIL import Image

from viewer.io import load
from viewer.io.meshes import mesh_to_polydata, polydata_to_mesh, save_mesh
from viewer.model import LoadError, Mesh, PointCloud

RNG = np.random.default_rng(7)


def sphere_with_data() -> pv.PolyData:
    """A small UV sphere with normals, texture coordinates and uint8 RGB point colours."""
    s = pv.Sphere(theta_resolution=10, phi_resolution=8).texture_map_to_sphere()
    s.point_data["RGB"] = RNG.integers(0, 256, (s.n_points, 3)).astype(np.uint8)
    return s


def pairs(points: np.ndarray, other: np.ndarray, decimals: int = 5) -> set:
    """Set of rounded (point, attribute) rows: order-free comparison of per-vertex data."""
    return {tuple(np.round(np.r_[p, o], decimals)) for p, o in zip(points, other)}


def faces_as_point_sets(points: np.ndarray, faces: np.ndarray) -> set:
    return {frozenset(tuple(np.round(points[i], 5)) for i in f) for f in faces}


# --- meshes --------------------------------------------------------------------------------
@pytest.mark.parametrize("binary", [True, False])
def test_ply_with_faces_is_a_mesh(tmp_path, binary):
    src = sphere_with_data()
    path = tmp_path / "sphere.ply"
    src.save(path, binary=binary, texture="RGB")
    mesh = load(path)
    assert isinstance(mesh, Mesh)
    assert mesh.n_points == src.n_points and mesh.n_faces == src.n_cells
    np.testing.assert_allclose(mesh.points, src.points, atol=1e-6)
    np.testing.assert_array_equal(mesh.faces, src.regular_faces)
    np.testing.assert_array_equal(mesh.colors, src.point_data["RGB"])
    np.testing.assert_allclose(mesh.uv, src.active_texture_coordinates, atol=1e-6)
    np.testing.assert_allclose(mesh.normals, src.point_normals, atol=1e-6)
    assert mesh.meta["format"] == "PLY" and mesh.source == str(path)


def test_ply_without_faces_is_a_point_cloud_with_exact_colours(tmp_path):
    pts = RNG.normal(size=(500, 3)) * 40
    rgb = RNG.integers(0, 256, (500, 3)).astype(np.uint8)
    cloud = pv.PolyData(pts)
    cloud.point_data["RGB"] = rgb
    path = tmp_path / "cloud.ply"
    cloud.save(path, texture="RGB")
    pc = load(path)
    assert isinstance(pc, PointCloud)
    np.testing.assert_allclose(pc.points, pts, atol=1e-4)  # float32 on disk
    assert pc.colors.dtype == np.uint8
    np.testing.assert_array_equal(pc.colors, rgb)


def test_ascii_ply_vertices_only_rgba(tmp_path):
    path = tmp_path / "rgba.ply"
    path.write_text("ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nproperty float y\n"
                    "property float z\nproperty uchar red\nproperty uchar green\nproperty uchar blue\n"
                    "property uchar alpha\nend_header\n0 0 0 255 0 0 255\n1 0 0 0 255 0 128\n"
                    "0 1 0 0 0 255 0\n")
    pc = load(path)
    assert isinstance(pc, PointCloud)
    np.testing.assert_array_equal(pc.colors, [[255, 0, 0], [0, 255, 0], [0, 0, 255]])


def test_binary_ply_with_mixed_polygons_is_triangulated(tmp_path):
    quads = pv.Plane(i_resolution=3, j_resolution=2)  # 6 quads
    tri = pv.Triangle([[2.0, 0, 0], [3.0, 0, 0], [2.0, 1, 0]])
    mixed = quads.merge(tri, merge_points=False)
    path = tmp_path / "mixed.ply"
    mixed.save(path, binary=True)
    mesh = load(path)
    assert mesh.n_faces == 6 * 2 + 1 and mesh.n_points == mixed.n_points
    with open(path, "r+b") as fh:  # cut inside the (variable-length) face records
        fh.truncate(path.stat().st_size - 7)
    with pytest.raises(LoadError, match="truncated"):
        load(path)


def write_obj_with_texture(folder: Path, image_name: str = "tex.png") -> tuple[Path, np.ndarray]:
    """A two-triangle square whose shared edge has different uv in each face (vt != v)."""
    obj = folder / "square.obj"
    obj.write_text(
        "# two faces share vertices 1 and 3 but not their uvs\nmtllib square.mtl\n"
        "v 0 0 0\nv 10 0 0\nv 10 10 0\nv 0 10 0\n"
        "vt 0 0\nvt 1 0\nvt 1 1\nvt 0 1\nvt 0.25 0.25\nvt 0.75 0.75\n"
        "vn 0 0 1\nusemtl skin\n"
        "f 1/1/1 2/2/1 3/3/1\nf 1/5/1 3/6/1 4/4/1\n")
    (folder / "square.mtl").write_text(
        f"newmtl skin\nKa 1 1 1\nKd 1 1 1\nmap_Kd -s 1 1 1 {image_name}\n")
    # 3 rows x 4 columns, every pixel different, so a flip or transpose shows
    img = np.arange(3 * 4 * 3, dtype=np.uint8).reshape(3, 4, 3) * 7
    img[0, 0] = (255, 0, 0)  # the top-left pixel of the PNG
    return obj, img


def test_obj_with_mtl_texture_and_per_face_uvs(tmp_path):
    obj, img = write_obj_with_texture(tmp_path)
    Image.fromarray(img).save(tmp_path / "tex.png")
    mesh = load(obj)
    assert isinstance(mesh, Mesh) and mesh.n_faces == 2
    # vertices 1 and 3 carry two uvs each: VTK duplicates them, 6 corners -> 6 points
    assert mesh.n_points == 6
    written = {((0, 0), (0, 0)), ((10, 0), (1, 0)), ((10, 10), (1, 1)), ((0, 0), (0.25, 0.25)),
               ((10, 10), (0.75, 0.75)), ((0, 10), (0, 1))}
    loaded = {(tuple(p[:2]), tuple(uv)) for p, uv in zip(np.round(mesh.points, 6), np.round(mesh.uv, 6))}
    assert loaded == {((float(a), float(b)), (float(u), float(v))) for (a, b), (u, v) in written}
    # each face keeps its own uvs at the shared corners
    corner_uv = {tuple(np.round(mesh.uv[f], 6).ravel()) for f in mesh.faces}
    assert (0.0, 0.0, 1.0, 0.0, 1.0, 1.0) in corner_uv
    assert (0.25, 0.25, 0.75, 0.75, 0.0, 1.0) in corner_uv
    assert mesh.texture.dtype == np.uint8 and mesh.texture.shape == (3, 4, 3)
    np.testing.assert_array_equal(mesh.texture, img)
    with Image.open(tmp_path / "tex.png") as im:
        assert tuple(mesh.texture[0, 0]) == im.convert("RGB").getpixel((0, 0)) == (255, 0, 0)
    np.testing.assert_allclose(mesh.normals, np.tile([0, 0, 1.0], (6, 1)))
    assert mesh.meta["texture_file"] == str(tmp_path / "tex.png") and "note" not in mesh.meta


def test_obj_with_missing_texture_loads_without_it(tmp_path):
    obj, _ = write_obj_with_texture(tmp_path, image_name="nowhere.png")
    mesh = load(obj)
    assert isinstance(mesh, Mesh) and mesh.n_faces == 2 and mesh.uv is not None
    assert mesh.texture is None
    assert "nowhere.png" in mesh.meta["note"] and "\n" not in mesh.meta["note"]


def test_obj_rgba_texture_and_missing_mtl(tmp_path):
    obj, img = write_obj_with_texture(tmp_path)
    rgba = np.dstack([img, np.full(img.shape[:2], 77, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(tmp_path / "tex.png")
    assert load(obj).texture.shape == (3, 4, 4)
    (tmp_path / "square.mtl").unlink()
    mesh = load(obj)
    assert mesh.texture is None and "square.mtl" in mesh.meta["note"]


@pytest.mark.parametrize("binary", [True, False])
def test_stl(tmp_path, binary):
    src = pv.Icosphere(radius=20.0, nsub=2)
    path = tmp_path / "ico.stl"
    src.save(path, binary=binary)
    mesh = load(path)
    assert isinstance(mesh, Mesh)
    assert mesh.n_faces == src.n_cells and mesh.n_points == src.n_points  # STL points merged
    assert faces_as_point_sets(mesh.points, mesh.faces) == faces_as_point_sets(
        np.asarray(src.points), src.regular_faces)


def test_vtk_legacy_quads_are_triangulated_and_uv_kept(tmp_path):
    plane = pv.Plane(i_size=30, j_size=20, i_resolution=5, j_resolution=4)
    path = tmp_path / "plane.vtk"
    plane.save(path)
    mesh = load(path)
    assert mesh.n_faces == 2 * plane.n_cells and mesh.n_points == plane.n_points
    np.testing.assert_allclose(mesh.points, plane.points, atol=1e-6)
    np.testing.assert_allclose(mesh.uv, plane.active_texture_coordinates, atol=1e-6)
    assert np.isclose(sum(np.linalg.norm(np.cross(*(mesh.points[f[1:]] - mesh.points[f[0]])))
                          for f in mesh.faces) / 2, 600.0)


def test_vtp_mesh_and_vertices_only(tmp_path):
    src = sphere_with_data()
    src.save(tmp_path / "s.vtp")
    mesh = load(tmp_path / "s.vtp")
    np.testing.assert_array_equal(mesh.colors, src.point_data["RGB"])
    np.testing.assert_array_equal(mesh.faces, src.regular_faces)
    cloud = pv.PolyData(RNG.normal(size=(50, 3)))  # vertex cells only
    cloud.point_data["Colors"] = RNG.random((50, 3))  # float 0..1 colours
    cloud.save(tmp_path / "c.vtp")
    pc = load(tmp_path / "c.vtp")
    assert isinstance(pc, PointCloud) and pc.n_points == 50
    np.testing.assert_array_equal(pc.colors, np.rint(cloud.point_data["Colors"] * 255).astype(np.uint8))


# --- text and LAS point clouds -------------------------------------------------------------
def test_xyz_whitespace_with_comments(tmp_path):
    pts = np.round(RNG.normal(size=(20, 3)) * 100, 3)
    path = tmp_path / "a.xyz"
    path.write_text("# scanner export\n" + "\n".join(" ".join(map(str, p)) for p in pts) + "\n")
    pc = load(path)
    np.testing.assert_allclose(pc.points, pts)
    assert pc.colors is None


def test_xyz_comma_separated_float_colours(tmp_path):
    path = tmp_path / "b.xyz"
    path.write_text("x,y,z,r,g,b\n1,2,3,1.0,0.5,0\n4,5,6,0,0.25,1.0\n")
    pc = load(path)
    np.testing.assert_allclose(pc.points, [[1, 2, 3], [4, 5, 6]])
    np.testing.assert_array_equal(pc.colors, [[255, 128, 0], [0, 64, 255]])


def test_pts_with_count_line_intensity_and_colours(tmp_path):
    pts = np.round(RNG.normal(size=(30, 3)), 4)
    inten = RNG.integers(-2048, 2048, 30)
    rgb = RNG.integers(0, 256, (30, 3))
    path = tmp_path / "scan.pts"
    lines = [f"{p[0]} {p[1]} {p[2]} {i} {c[0]} {c[1]} {c[2]}" for p, i, c in zip(pts, inten, rgb)]
    path.write_text("30\n" + "\n".join(lines) + "\n")
    pc = load(path)
    np.testing.assert_allclose(pc.points, pts)
    np.testing.assert_array_equal(pc.colors, rgb.astype(np.uint8))
    np.testing.assert_array_equal(pc.meta["intensity"], inten.astype(np.float32))
    path.write_text("30\n" + "\n".join(f"{p[0]} {p[1]} {p[2]} {c[0]} {c[1]} {c[2]}"
                                       for p, c in zip(pts, rgb)) + "\n")
    np.testing.assert_array_equal(load(path).colors, rgb.astype(np.uint8))


@pytest.mark.parametrize("suffix", [".las", ".laz"])
@pytest.mark.parametrize("sixteen_bit", [True, False])
def test_las_laz_real_coordinates_and_colours(tmp_path, suffix, sixteen_bit):
    n = 1000
    header = laspy.LasHeader(point_format=3, version="1.2")
    header.offsets = [500000.0, 4000000.0, 100.0]
    header.scales = [0.001, 0.001, 0.01]
    las = laspy.LasData(header)
    xyz = np.column_stack([500000 + RNG.uniform(0, 50, n), 4000000 + RNG.uniform(0, 50, n),
                           100 + RNG.uniform(0, 10, n)])
    las.x, las.y, las.z = xyz.T
    rgb8 = RNG.integers(0, 256, (n, 3)).astype(np.uint16)
    stored = rgb8 * 257 if sixteen_bit else rgb8  # 16-bit per the spec, or 8-bit values
    las.red, las.green, las.blue = stored.T
    path = tmp_path / f"tile{suffix}"
    las.write(str(path))
    pc = load(path)
    assert isinstance(pc, PointCloud) and pc.n_points == n
    np.testing.assert_allclose(pc.points, xyz, atol=0.006)  # the file's quantisation
    np.testing.assert_array_equal(pc.colors, rgb8.astype(np.uint8))
    assert pc.meta["format"] == suffix[1:].upper()


# --- bad input -----------------------------------------------------------------------------
def assert_one_line_error(path: Path, capfd, match: str | None = None) -> LoadError:
    with pytest.raises(LoadError) as info:
        load(path)
    msg = str(info.value)
    assert str(path) in msg and "\n" not in msg
    if match:
        assert match in msg, msg
    out, err = capfd.readouterr()
    assert err == "" and out == "", "VTK or a library printed to the terminal"
    return info.value


GARBAGE = bytes(range(256)) * 8 + b"\x00\xff garbage \x89PNG\r\n"


@pytest.mark.parametrize("suffix", [".ply", ".obj", ".stl", ".vtk", ".vtp", ".las", ".laz",
                                    ".xyz", ".pts"])
def test_garbage_and_empty_files(tmp_path, capfd, suffix):
    path = tmp_path / f"garbage{suffix}"
    path.write_bytes(GARBAGE)
    assert_one_line_error(path, capfd)
    empty = tmp_path / f"empty{suffix}"
    empty.write_bytes(b"")
    assert_one_line_error(empty, capfd, "empty")


@pytest.mark.parametrize("suffix", [".ply", ".stl", ".vtk", ".vtp"])
@pytest.mark.parametrize("frac", [0.3, 0.6, 0.95])
def test_truncated_binary_meshes(tmp_path, capfd, suffix, frac):
    src = tmp_path / f"whole{suffix}"
    sphere_with_data().save(src, binary=True, **({"texture": "RGB"} if suffix == ".ply" else {}))
    data = src.read_bytes()
    cut = tmp_path / f"cut{suffix}"
    cut.write_bytes(data[: int(len(data) * frac)])
    assert_one_line_error(cut, capfd)


def test_truncated_ascii_ply(tmp_path, capfd):
    src = tmp_path / "a.ply"
    sphere_with_data().save(src, binary=False)
    text = src.read_bytes()
    (tmp_path / "cut.ply").write_bytes(text[: int(len(text) * 0.8)])
    assert_one_line_error(tmp_path / "cut.ply", capfd, "truncated")


@pytest.mark.parametrize("suffix", [".las", ".laz"])
def test_truncated_las(tmp_path, capfd, suffix):
    las = laspy.LasData(laspy.LasHeader(point_format=2, version="1.2"))
    las.x, las.y, las.z = RNG.uniform(0, 10, (3, 2000))
    path = tmp_path / f"t{suffix}"
    las.write(str(path))
    path.write_bytes(path.read_bytes()[:-500])
    assert_one_line_error(path, capfd)


@pytest.mark.parametrize("faces, match", [("f 1 2 9", "v 9"), ("f 1/1 2/2 3/7", "vt 7"),
                                          ("f 1//1 2//1 -4//1", "v -4"), ("f 1 2 x", "form")])
def test_obj_face_naming_a_missing_vertex(tmp_path, capfd, faces, match):
    # VTK's OBJ reader does not check these (some crash the process): refused before it runs
    path = tmp_path / "bad.obj"
    path.write_text(f"v 0 0 0\nv 1 0 0\nv 0 1 0\nvt 0 0\nvt 1 0\nvt 0 1\nvn 0 0 1\n{faces}\n")
    assert_one_line_error(path, capfd, match)


@pytest.mark.parametrize("binary", [True, False])
def test_ply_face_naming_a_missing_vertex(tmp_path, capfd, binary):
    src = sphere_with_data()
    path = tmp_path / "bad.ply"
    src.save(path, binary=binary)
    data, bad = path.read_bytes(), src.n_points + 5
    # the file ends with the last index of the last triangle: make it name a missing vertex
    if binary:
        data = data[:-4] + np.int32(bad).tobytes()
    else:
        head, last = data.rstrip().rsplit(b"\n", 1)
        data = head + b"\n" + last.rsplit(b" ", 1)[0] + b" %d\n" % bad
    path.write_bytes(data)
    assert_one_line_error(path, capfd, f"vertex {bad}")


@pytest.mark.parametrize("old, new", [(b"property list", b"propertz list"),
                                      (b"property float x", b"property float q"),
                                      (b"element vertex 62", b"element vertex -2")])
def test_ply_bad_header(tmp_path, capfd, old, new):
    path = tmp_path / "h.ply"
    sphere_with_data().save(path)
    data = path.read_bytes()
    assert old in data
    path.write_bytes(data.replace(old, new, 1))
    assert_one_line_error(path, capfd)


def test_vtk_garbled_version_line(tmp_path, capfd):
    path = tmp_path / "v.vtk"
    sphere_with_data().save(path, binary=True)
    data = path.read_bytes()
    path.write_bytes(data.replace(b"Version 5.1", b"Version 5.\x80", 1))
    assert_one_line_error(path, capfd, "legacy VTK")


def test_text_points_with_only_comments(tmp_path, capfd):
    path = tmp_path / "c.xyz"
    path.write_text("# exported by nothing\n\n// empty\n")
    assert_one_line_error(path, capfd, "no points")


def test_text_points_with_too_few_columns(tmp_path, capfd):
    path = tmp_path / "two.xyz"
    path.write_text("1 2\n3 4\n")
    assert_one_line_error(path, capfd, "x y z")


# --- writing and conversion ----------------------------------------------------------------
@pytest.mark.parametrize("suffix", [".ply", ".obj", ".stl", ".vtp"])
def test_save_mesh_round_trip(tmp_path, suffix):
    src = polydata_to_mesh(sphere_with_data(), name="s")
    src.texture = RNG.integers(0, 256, (8, 16, 3)).astype(np.uint8)
    out = save_mesh(src, tmp_path / f"out{suffix}")
    assert out.is_file() and not list(tmp_path.glob(".*part*"))
    back = load(out)
    assert back.n_faces == src.n_faces
    assert faces_as_point_sets(back.points, back.faces) == faces_as_point_sets(src.points, src.faces)
    if suffix in (".ply", ".vtp"):
        np.testing.assert_array_equal(back.colors, src.colors)
    if suffix != ".stl":
        assert pairs(back.points, back.uv, 4) == pairs(src.points, src.uv, 4)
    if suffix == ".obj":
        np.testing.assert_array_equal(back.texture, src.texture)


def test_polydata_conversion_round_trip():
    m = Mesh(points=[[0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 1, 0]], faces=[[0, 1, 2], [1, 3, 2]],
             uv=[[0, 0], [1, 0], [0, 1], [1, 1]], colors=np.full((4, 3), 9, np.uint8),
             normals=np.tile([0, 0, 1.0], (4, 1)))
    pd = mesh_to_polydata(m)
    assert pd.n_cells == 2 and pd.active_texture_coordinates is not None
    back = polydata_to_mesh(pd)
    for name in ("points", "faces", "uv", "colors", "normals"):
        np.testing.assert_array_equal(getattr(back, name), getattr(m, name))
