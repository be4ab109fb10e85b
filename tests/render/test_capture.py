"""render_views (pixel-exact alpha, world-fixed lights, white highlights) and ``main.py capture``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from viewer.cli import main
from viewer.model.camera import Camera
from viewer.model.geometry import Mesh
from viewer.compute.capture import frame_cameras, render_views
from viewer.geometry.normals import smooth_normals, split_creases
from viewer.compute.raster import UVRasterizer
from viewer.geometry.primitives import procedural_texture, subdivide, uv_sphere
from viewer.geometry.uvatlas import parametrize


@pytest.fixture(scope="module")
def sphere() -> Mesh:
    s = uv_sphere(24, 48, radius=1.5, center=(0.3, -0.2, 0.1))
    s.texture = procedural_texture(128, seed=1)
    return s


def test_alpha_is_the_rasterizer_mask(sphere):
    cams = frame_cameras(sphere, 4, 64, seed=3)
    images = render_views(sphere, cams, specular=0.5)
    assert len(images) == 4
    with UVRasterizer(sphere) as rast:
        for cam, img in zip(cams, images):
            assert img.shape == (64, 64, 4) and img.dtype == np.uint8
            mask = rast.rasterize(cam).mask
            alpha = img[..., 3] > 127
            assert (alpha == mask).mean() >= 0.99
            assert 0.2 < mask.mean() < 0.95  # framed: the object fills much of the view, all of it inside
            assert not mask[[0, -1]].any() and not mask[:, [0, -1]].any()
            assert np.all(img[~alpha][:, :3] == 255)  # uncovered: white, alpha 0
            assert np.all(img[~alpha][:, 3] == 0)


def test_supersampled_alpha_is_fractional_at_the_silhouette_only(sphere):
    cam = frame_cameras(sphere, 1, 48, seed=0)[0]
    img = render_views(sphere, [cam], specular=0.5, supersample=3)[0]
    with UVRasterizer(sphere) as rast:
        mask = rast.rasterize(cam).mask
    a = img[..., 3]
    partial = (a > 0) & (a < 255)
    assert partial.any() and ((a > 127) == mask).mean() >= 0.98
    assert np.all(a[mask & ~partial] == 255) or partial.sum() < mask.sum() / 3


def _same_points(cam_a: Camera, cam_b: Camera, rast: UVRasterizer):
    """Pixels of view A and B that see the same surface point (to 0.05 px and 1e-3 depth)."""
    ma, mb = rast.rasterize(cam_a), rast.rasterize(cam_b)
    jj, ii = np.nonzero(ma.mask)
    o, d = cam_a.pixel_rays()
    x = o + d[jj, ii] * (ma.depth[jj, ii] / (d[jj, ii] @ cam_a.forward))[:, None]
    uv, z = cam_b.project(x)
    col, row = np.floor(uv[:, 0]).astype(int), np.floor(uv[:, 1]).astype(int)
    ok = (col >= 0) & (col < cam_b.width) & (row >= 0) & (row < cam_b.height)
    centred = ok & (np.abs(uv[:, 0] - col - 0.5) < 0.25) & (np.abs(uv[:, 1] - row - 0.5) < 0.25)
    sel = np.flatnonzero(centred)
    visible = mb.mask[row[sel], col[sel]] & (np.abs(mb.depth[row[sel], col[sel]] - z[sel]) < 1e-3 * z[sel])
    sel = sel[visible]
    return (jj[sel], ii[sel]), (row[sel], col[sel])


def test_specular_is_view_dependent_and_diffuse_is_not():
    s = subdivide(uv_sphere(16, 32), 1)
    s.texture = np.full((4, 4, 3), 160, np.uint8)  # uniform: colour = shading only
    cams = frame_cameras(s, 6, 96, seed=2)
    a, b = cams[0], cams[1]
    with UVRasterizer(s) as rast:
        pa, pb = _same_points(a, b, rast)
    assert len(pa[0]) > 50
    matte = render_views(s, [a, b], specular=0.0)
    shiny = render_views(s, [a, b], specular=1.0)
    diff_matte = np.abs(matte[0][pa][:, :3].astype(int) - matte[1][pb][:, :3].astype(int))
    diff_shiny = np.abs(shiny[0][pa][:, :3].astype(int) - shiny[1][pb][:, :3].astype(int))
    assert np.median(diff_matte) <= 2  # lights fixed in the world: diffuse colour stays put
    assert diff_shiny.max() >= 40 and diff_shiny.mean() > diff_matte.mean() + 3
    # highlights are white, added on top of the texture: never darker, grey stays grey
    assert np.all(shiny[0][..., :3].astype(int) >= matte[0][..., :3].astype(int) - 1)


def test_smooth_normals_agree_across_uv_seams():
    s = uv_sphere(8, 16)
    n = smooth_normals(s.points, s.faces)
    left, right = np.isclose(s.uv[:, 0], 0.0), np.isclose(s.uv[:, 0], 1.0)
    np.testing.assert_allclose(s.points[left], s.points[right], atol=1e-12)  # the seam's two copies
    np.testing.assert_allclose(n[left], n[right], atol=1e-12)
    assert np.all(np.einsum("ij,ij->i", n, s.normals) > 0.95)


def test_procedural_texture_is_seeded_and_detailed():
    a, b, c = procedural_texture(64, 0), procedural_texture(64, 0), procedural_texture(64, 1)
    assert a.shape == (64, 64, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert a.std() > 20 and np.abs(np.diff(a.astype(int), axis=1)).mean() > 3


def test_parametrize_splits_and_keeps_faces():
    s = uv_sphere(6, 12)
    plain = Mesh(s.points, s.faces)
    p = parametrize(plain, resolution=256)
    assert p.uv is not None and p.uv.min() >= 0 and p.uv.max() <= 1
    assert p.n_faces == plain.n_faces
    np.testing.assert_allclose(p.points[p.faces], plain.points[plain.faces])


# --- the command --------------------------------------------------------------------------
def _mesh_file(tmp_path: Path) -> Path:
    """A small sphere as a .ply without uv (so capture runs xatlas)."""
    from viewer.io.meshes import save_mesh

    s = uv_sphere(12, 24)
    path = tmp_path / "ball.ply"
    save_mesh(Mesh(s.points, s.faces), path)
    return path


def test_capture_writes_a_blender_dataset(tmp_path, capsys):
    from viewer.io import load_path

    src = _mesh_file(tmp_path)
    out = tmp_path / "data"
    assert main(["capture", str(src), "--out", str(out), "--views", "6", "--size", "64",
                 "--test-fraction", "0.34", "--seed", "5"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    summary = json.loads(lines[-1])
    assert summary["train"] == 4 and summary["test"] == 2 and summary["uv"] == "xatlas"
    assert summary["texture"] == "procedural"
    assert sorted(p.name for p in out.iterdir()) == ["mesh.mtl", "mesh.obj", "mesh.png", "points.ply", "test",
                                                    "train", "transforms_test.json", "transforms_train.json"]
    cloud = load_path(out / "points.ply")
    assert cloud.n_points == summary["surface_points"]  # for the point renderers, with the surface's normals
    assert cloud.normals is not None and np.allclose(np.linalg.norm(cloud.normals, axis=1), 1.0, atol=1e-4)
    mesh = load_path(out / "mesh.obj")
    assert mesh.uv is not None and mesh.texture is not None and mesh.n_faces == summary["n_faces"]
    assert np.array_equal(mesh.texture[..., :3], procedural_texture(1024, 5))
    with UVRasterizer(mesh) as rast:
        for split, n in (("train", 4), ("test", 2)):
            meta = json.loads((out / f"transforms_{split}.json").read_text())
            assert meta["w"] == meta["h"] == 64 and meta["background"] == [1.0, 1.0, 1.0]
            assert meta["camera_angle_x"] == pytest.approx(2 * np.arctan(32 / meta["fl_x"]))
            assert [f["file_path"] for f in meta["frames"]] == [f"./{split}/r_{i:03d}" for i in range(n)]
            for f in meta["frames"]:
                img = np.asarray(Image.open(out / (f["file_path"] + ".png")))
                assert img.shape == (64, 64, 4)
                cam = Camera.from_opengl_c2w(f["transform_matrix"], meta["fl_x"], meta["fl_y"],
                                             meta["cx"], meta["cy"], 64, 64)
                mask = rast.rasterize(cam).mask
                assert mask.mean() > 0.1 and ((img[..., 3] > 127) == mask).mean() >= 0.99


def test_capture_keeps_the_mesh_uv_and_takes_a_texture(tmp_path, capsys):
    from viewer.io import load_path
    from viewer.io.meshes import save_mesh

    s = uv_sphere(10, 20)
    s.texture = procedural_texture(64, 3)
    (tmp_path / "in").mkdir()
    src = save_mesh(Mesh(s.points, s.faces, uv=s.uv, texture=s.texture), tmp_path / "in" / "ball.obj")
    tex = tmp_path / "tex.png"
    Image.fromarray(procedural_texture(32, 9)).save(tex)
    assert main(["capture", str(src), "--out", str(tmp_path / "a"), "--views", "3", "--size", "32",
                 "--test-fraction", "0"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["uv"] == "mesh" and summary["texture"] == "mesh" and summary["test"] == 0
    assert not (tmp_path / "a" / "transforms_test.json").exists()
    back = load_path(tmp_path / "a" / "mesh.obj")
    np.testing.assert_allclose(back.uv, load_path(src).uv, atol=1e-5)
    assert main(["capture", str(src), "--out", str(tmp_path / "b"), "--views", "3", "--size", "32",
                 "--texture", str(tex), "--test-fraction", "0"]) == 0
    assert np.array_equal(load_path(tmp_path / "b" / "mesh.obj").texture[..., :3], procedural_texture(32, 9))


def test_capture_supersample_writes_camera_like_photos(tmp_path, capsys):
    """``--supersample 3``: the same views, each pixel the mean of 3 x 3 samples, so alpha is
    fractional along the silhouette only, and the photo is the sharp one box-filtered."""
    src = _mesh_file(tmp_path)
    args = ["capture", str(src), "--views", "3", "--size", "48", "--test-fraction", "0", "--seed", "2"]
    assert main([*args, "--out", str(tmp_path / "sharp")]) == 0
    assert main([*args, "--out", str(tmp_path / "aa"), "--supersample", "3"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["supersample"] == 3
    for k in range(3):
        sharp = np.asarray(Image.open(tmp_path / "sharp" / "train" / f"r_{k:03d}.png")).astype(float)
        aa = np.asarray(Image.open(tmp_path / "aa" / "train" / f"r_{k:03d}.png")).astype(float)
        assert set(np.unique(sharp[..., 3])) == {0, 255}
        part = (aa[..., 3] > 0) & (aa[..., 3] < 255)
        assert part.sum() > 20  # the silhouette's pixels are partly covered
        edge = (sharp[..., 3] > 0) != ndimage.binary_erosion(sharp[..., 3] > 0)
        ring = ndimage.binary_dilation(edge, iterations=1)
        assert ring[part].all()  # ... and only those
        assert ((aa[..., 3] > 127) == (sharp[..., 3] > 127)).mean() > 0.98
        inside = ndimage.binary_erosion(sharp[..., 3] > 0, iterations=2)
        assert np.abs(aa[inside, :3] - sharp[inside, :3]).mean() < 12  # the same picture, filtered


@pytest.mark.parametrize("extra, where, why", [
    (["--views", "0"], "--views", "between 1 and"),
    (["--supersample", "9"], "--supersample", "between 1 and 8"),
    (["--size", "8"], "--size", "between 16"),
    (["--test-fraction", "1.5"], "--test-fraction", "[0, 1)"),
    (["--views", "2", "--test-fraction", "0.1"], "--test-fraction", "no test view"),
    (["--specular", "-1"], "--specular", "between 0"),
    (["--texture", "nope.png"], "nope.png", "no such texture"),
])
def test_capture_bad_options(tmp_path, capsys, extra, where, why):
    src = _mesh_file(tmp_path)
    assert main(["capture", str(src), "--out", str(tmp_path / "o"), *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith(f"error: {where}") and why in err, err
    assert not (tmp_path / "o").exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".o.")]


def test_capture_refuses_bad_inputs_and_a_full_folder(tmp_path, capsys, cli):
    src = _mesh_file(tmp_path)
    full = tmp_path / "full"
    full.mkdir()
    (full / "mine.txt").write_text("keep me")
    r = cli("capture", src, "--out", full, "--views", "2", "--size", "16", "--test-fraction", "0")
    assert r.returncode == 2 and r.stderr.strip() == f"error: {full}: exists and is not empty: " \
                                                      "refusing to overwrite; choose a new folder"
    assert [p.name for p in full.iterdir()] == ["mine.txt"]
    pts = tmp_path / "pts.ply"
    pts.write_text("ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nproperty float y\n"
                   "property float z\nend_header\n0 0 0\n1 0 0\n0 1 0\n")
    for bad, why in ((tmp_path / "missing.obj", ""), (pts, "not a triangle mesh")):
        assert main(["capture", str(bad), "--out", str(tmp_path / "x")]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and err.startswith(f"error: {bad}:") and why in err, err


def test_smooth_normals_keep_creases_sharp():
    # a unit cube with each side's 4 corners its own vertices (as a uv atlas splits it)
    quads = [((0, 0, 0), (0, 1, 0), (1, 1, 0), (1, 0, 0)), ((0, 0, 1), (1, 0, 1), (1, 1, 1), (0, 1, 1)),
             ((0, 0, 0), (1, 0, 0), (1, 0, 1), (0, 0, 1)), ((0, 1, 0), (0, 1, 1), (1, 1, 1), (1, 1, 0)),
             ((0, 0, 0), (0, 0, 1), (0, 1, 1), (0, 1, 0)), ((1, 0, 0), (1, 1, 0), (1, 1, 1), (1, 0, 1))]
    pts = np.array([p for q in quads for p in q], float)
    faces = np.array([[4 * i, 4 * i + 1, 4 * i + 2] for i in range(6)] + [[4 * i, 4 * i + 2, 4 * i + 3] for i in range(6)])
    n = smooth_normals(pts, faces)
    expected = np.repeat(np.array([[0, 0, -1], [0, 0, 1], [0, -1, 0], [0, 1, 0], [-1, 0, 0], [1, 0, 0]], float), 4, 0)
    np.testing.assert_allclose(n, expected, atol=1e-12)
    soft = smooth_normals(pts, faces, crease_angle=180.0)  # every face around a corner: diagonal
    assert np.all(np.abs(soft) > 0.3)  # blended over the sides meeting there


def test_split_creases_makes_cube_sides_flat():
    # one vertex per cube corner: shared by three sides, split into three by the creases
    corners = np.array([[x, y, z] for x in (0, 1) for y in (0, 1) for z in (0, 1)], float)
    s = uv_sphere(4, 8)  # only for a uv layout to carry along
    quads = [(0, 2, 6, 4), (1, 5, 7, 3), (0, 4, 5, 1), (2, 3, 7, 6), (0, 1, 3, 2), (4, 6, 7, 5)]
    faces = np.array([[q[0], q[1], q[2]] for q in quads] + [[q[0], q[2], q[3]] for q in quads])
    cube = Mesh(corners, faces, uv=s.uv[:8])
    out = split_creases(cube)
    assert out.n_points == 24 and out.n_faces == 12
    np.testing.assert_allclose(out.points[out.faces], cube.points[cube.faces])
    fn = np.cross(out.points[out.faces[:, 1]] - out.points[out.faces[:, 0]],
                  out.points[out.faces[:, 2]] - out.points[out.faces[:, 0]])
    fn /= np.linalg.norm(fn, axis=1, keepdims=True)
    for k in range(3):
        np.testing.assert_allclose(out.normals[out.faces[:, k]], fn, atol=1e-9)
    np.testing.assert_allclose(out.uv[out.faces], cube.uv[cube.faces])
    smooth = split_creases(uv_sphere(12, 24))  # a smooth ball: nothing to split but the seam copies
    assert smooth.n_points == uv_sphere(12, 24).n_points


def test_parametrize_survives_large_coordinates_and_degenerate_triangles():
    """pyvista's globe (metres, 6e9, with zero-area triangles at the poles) crashed xatlas
    (SIGSEGV) until the mesh was handed over centred and scaled; run it in a child process so a
    regression fails this test instead of killing the suite."""
    import subprocess
    import sys

    from viewer.samples.datasets import globe_mesh_path

    code = ("import dataclasses, numpy as np; from viewer.io import load_path; "
            "from viewer.geometry.uvatlas import parametrize; "
            f"m = dataclasses.replace(load_path({str(globe_mesh_path())!r}), uv=None); p = parametrize(m); "
            "assert p.n_faces == m.n_faces and 0 <= p.uv.min() and p.uv.max() <= 1; print('ok')")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                       cwd=str(__import__("pathlib").Path(__file__).resolve().parents[2]))
    assert r.returncode == 0 and r.stdout.strip() == "ok", (r.returncode, r.stderr[-500:])


def test_surface_samples_carry_the_shading_normals(sphere):
    """The points' normals are the mesh's vertex normals interpolated (what the renderer shades
    with: radial on a sphere), not the flat triangles' they lie on."""
    from viewer.compute.photoset import sample_surface

    mesh = Mesh(sphere.points, sphere.faces, normals=smooth_normals(sphere.points, sphere.faces))
    cloud = sample_surface(mesh, 5000, seed=2)
    radial = cloud.points - [0.3, -0.2, 0.1]  # the fixture's centre
    radial /= np.linalg.norm(radial, axis=1, keepdims=True)
    cos = np.abs((cloud.normals * radial).sum(1))
    flat = np.abs((sample_surface(Mesh(sphere.points, sphere.faces), 5000, seed=2).normals * radial).sum(1))
    assert np.degrees(np.arccos(np.median(cos))) < 0.5 < np.degrees(np.arccos(np.median(flat)))
