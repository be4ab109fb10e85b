"""UVRasterizer against analytic answers and a brute-force numpy ray cast (EGL, no display)."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from viewer.model.camera import Camera, look_at
from viewer.model.geometry import Mesh
from viewer.compute.raster import UVRasterizer
from viewer.geometry.normals import closed_orientation
from viewer.geometry.primitives import uv_sphere

# a 2 x 2 square in the plane z = 0, uv = ((x + 1) / 2, (y + 1) / 2)
PLANE = Mesh(np.array([[-1, -1, 0], [1, -1, 0], [1, 1, 0], [-1, 1, 0]], float),
             np.array([[0, 1, 2], [0, 2, 3]]),
             uv=np.array([[0, 0], [1, 0], [1, 1], [0, 1]], float))
# an oblique camera, fx != fy, principal point off centre, not square
CAM = Camera(50.0, 60.0, 33.3, 30.1, 64, 48, look_at([0.2, -0.3, 3.0], [0.1, 0.0, 0.0], [0, 1, 0]))


def _plane_hits(cam: Camera) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Analytic ray/plane z=0 intersections: points (H, W, 3), inside (H, W), depth (H, W)."""
    o, d = cam.pixel_rays()
    t = -o[2] / d[..., 2]
    x = o + t[..., None] * d
    inside = (np.abs(x[..., 0]) < 1) & (np.abs(x[..., 1]) < 1)
    return x, inside, (x - cam.center) @ cam.forward


@pytest.fixture(scope="module")
def plane_map():
    with UVRasterizer(PLANE) as rast:
        yield rast.rasterize(CAM)


def test_plane_uv_and_depth_are_analytic(plane_map):
    m = plane_map
    assert m.uv.shape == (48, 64, 2) and m.uv.dtype == np.float32
    assert m.mask.shape == (48, 64) and m.mask.dtype == bool
    assert m.face.dtype == np.int32 and m.depth.dtype == np.float32
    x, inside, depth = _plane_hits(CAM)
    rng = np.random.default_rng(0)
    rows, cols = np.nonzero(inside & m.mask)
    pick = rng.choice(len(rows), 40, replace=False)
    for j, i in zip(rows[pick], cols[pick]):
        np.testing.assert_allclose(m.uv[j, i], (x[j, i, :2] + 1) / 2, atol=1e-4)
        np.testing.assert_allclose(m.depth[j, i], depth[j, i], rtol=1e-5)
    assert np.all(m.uv[~m.mask] == 0) and np.all(m.depth[~m.mask] == 0)
    assert np.all(m.face[~m.mask] == -1) and set(np.unique(m.face[m.mask])) == {0, 1}


def test_plane_coverage_matches_analytic(plane_map):
    _, inside, _ = _plane_hits(CAM)
    assert (plane_map.mask == inside).mean() > 0.995


def test_pixel_coverage_is_the_covered_share_of_the_pixel():
    """``coverage=s``: the share of s x s samples a pixel covered, against the plane's analytic
    share from 9 x 9 samples; 0 / 1 away from the edge, fractional only along it."""
    with UVRasterizer(PLANE) as rast:
        plain = rast.rasterize(CAM)
        m = rast.rasterize(CAM, coverage=3)
    assert plain.coverage is None and m.coverage.dtype == np.float32 and m.coverage.shape == (48, 64)
    np.testing.assert_array_equal(m.mask, plain.mask)
    np.testing.assert_array_equal(m.uv, plain.uv)
    _, fine, _ = _plane_hits(CAM.scaled(64 * 9, 48 * 9))
    share = fine.reshape(48, 9, 64, 9).mean((1, 3))
    assert np.abs(m.coverage - share).max() <= 2 / 9 + 1e-6  # one sample row or column of 3
    assert np.abs(m.coverage - share).mean() < 0.01
    part = (m.coverage > 0) & (m.coverage < 1)
    assert 40 < part.sum() < 300 and np.all((share[part] > 0) & (share[part] < 1))
    assert np.all(m.coverage[m.mask] > 0)  # the middle sample is the pixel centre


def test_triangle_coverage_matches_camera_project():
    tri = Mesh(np.array([[-0.8, -0.5, 0.1], [0.9, -0.7, -0.2], [0.1, 0.8, 0.0]]), [[0, 1, 2]],
               uv=np.array([[0.1, 0.1], [0.9, 0.2], [0.5, 0.9]]))
    with UVRasterizer(tri) as rast:
        m = rast.rasterize(CAM)
    uv, z = CAM.project(tri.points)
    assert np.all(z > 0)
    jj, ii = np.mgrid[0:CAM.height, 0:CAM.width] + 0.5
    p = np.stack([ii, jj], -1)
    # signed edge functions of the projected triangle at every pixel centre
    e = [np.cross(uv[(k + 1) % 3] - uv[k], p - uv[k]) for k in range(3)]
    e = np.stack(e, -1) * np.sign(np.cross(uv[1] - uv[0], uv[2] - uv[0]))
    lengths = np.array([np.linalg.norm(uv[(k + 1) % 3] - uv[k]) for k in range(3)])
    dist = e / lengths  # pixels from each edge, positive inside
    inside, clear = np.all(dist > 0, -1), np.all(np.abs(dist) > 0.01, -1)
    assert inside.sum() > 200
    assert np.array_equal(m.mask[clear], inside[clear])
    # the uv at pixel centres: barycentrics of the world point the ray hits
    assert np.all(m.uv[m.mask] >= 0.1 - 1e-6) and np.all(m.uv[m.mask] <= 0.9 + 1e-6)


def test_row_zero_is_the_top():
    # camera on +z looking down -z with world +y up the image: a triangle at y > 0 is in the top half
    cam = Camera(40, 40, 32, 32, 64, 64, look_at([0, 0, 4], [0, 0, 0], [0, 1, 0]))
    tri = Mesh(np.array([[-1, 0.5, 0], [1, 0.5, 0], [0, 1.5, 0]], float), [[0, 1, 2]],
               uv=np.zeros((3, 2)))
    with UVRasterizer(tri) as rast:
        m = rast.rasterize(cam)
    rows = np.nonzero(m.mask.any(1))[0]
    assert len(rows) and rows.max() < 32
    uv, _ = cam.project(tri.points)
    assert abs(rows.min() - uv[:, 1].min()) < 1.5 and abs(rows.max() + 1 - uv[:, 1].max()) < 1.5


def _ray_cast(points, faces, origin, dirs):
    """Nearest triangle hit by each ray (Moller-Trumbore against every face): ids and the
    smallest barycentric of the hit (distance from an edge), -1 / nan when nothing is hit."""
    a, b, c = points[faces[:, 0]], points[faces[:, 1]], points[faces[:, 2]]
    e1, e2 = b - a, c - a
    ids, margins = [], []
    for d in dirs:
        p = np.cross(d, e2)
        det = np.einsum("ij,ij->i", e1, p)
        ok = np.abs(det) > 1e-14
        inv = np.where(ok, 1.0 / np.where(ok, det, 1.0), 0.0)
        s = origin - a
        u = np.einsum("ij,ij->i", s, p) * inv
        q = np.cross(s, e1)
        v = (q @ d) * inv
        t = np.einsum("ij,ij->i", e2, q) * inv
        hit = ok & (u >= 0) & (v >= 0) & (u + v <= 1) & (t > 0)
        if not hit.any():
            ids.append(-1)
            margins.append(np.nan)
            continue
        k = np.flatnonzero(hit)[np.argmin(t[hit])]
        ids.append(k)
        margins.append(min(u[k], v[k], 1 - u[k] - v[k]))
    return np.array(ids), np.array(margins)


def test_sphere_face_ids_match_brute_force_ray_cast():
    sphere = uv_sphere(24, 48, radius=1.3, center=(0.2, -0.1, 0.3))
    cam = Camera(70, 70, 40, 40, 80, 80, look_at([3.0, 2.0, 1.5], [0.2, -0.1, 0.3]))
    with UVRasterizer(sphere) as rast:
        m = rast.rasterize(cam)
    o, d = cam.pixel_rays()
    rng = np.random.default_rng(1)
    flat = m.mask.reshape(-1)  # 36 pixels on the sphere, 12 off it (and its silhouette)
    pix = np.r_[rng.choice(np.flatnonzero(flat), 36, replace=False),
                rng.choice(np.flatnonzero(~flat), 12, replace=False)]
    ids, margin = _ray_cast(sphere.points, sphere.faces, o, d.reshape(-1, 3)[pix])
    got = m.face.reshape(-1)[pix]
    clear = np.isnan(margin) | (margin > 1e-3)  # leave out pixel centres right on an edge
    assert clear.sum() >= 40 and (ids >= 0).sum() >= 30 and (ids < 0).sum() >= 10
    assert np.array_equal(got[clear], ids[clear])
    # the uv is the sphere's own parametrisation at the hit point (interior points)
    hit = (ids >= 0) & clear
    jj, ii = np.divmod(pix[hit], 80)
    x = o + m.depth[jj, ii, None] / (d.reshape(-1, 3)[pix[hit]] @ cam.forward)[:, None] \
        * d.reshape(-1, 3)[pix[hit]]
    n = (x - np.array([0.2, -0.1, 0.3])) / 1.3
    np.testing.assert_allclose(np.linalg.norm(n, axis=1), 1.0, atol=0.01)  # on the facets
    lat = 1.0 - np.arccos(np.clip(n[:, 2], -1, 1)) / np.pi
    assert np.abs(m.uv[jj, ii, 1] - lat).max() < 0.01


def test_scaled_size_and_reuse():
    with UVRasterizer(PLANE) as rast:
        small = rast.rasterize(CAM, 32)  # aspect kept: 32 x 24
        big = rast.rasterize(CAM, 128, 96)
        again = rast.rasterize(CAM)
    assert small.mask.shape == (24, 32) and big.mask.shape == (96, 128)
    _, inside, _ = _plane_hits(CAM.scaled(128, 96))
    assert (big.mask == inside).mean() > 0.995
    assert again.mask.shape == (48, 64)


def test_needs_uv_and_faces():
    with pytest.raises(ValueError, match="texture coordinates"):
        UVRasterizer(Mesh(PLANE.points, PLANE.faces))
    with pytest.raises(ValueError, match="no triangles"):
        UVRasterizer(Mesh(PLANE.points, np.zeros((0, 3), int), uv=PLANE.uv))


def test_closed_rasterizer_refuses():
    rast = UVRasterizer(PLANE)
    rast.close()
    rast.close()  # twice is fine
    with pytest.raises(RuntimeError):
        rast.rasterize(CAM)


def test_worker_thread_owns_its_rasterizer(plane_map):
    out = {}

    def work():
        try:
            with UVRasterizer(PLANE) as rast:
                out["map"] = rast.rasterize(CAM)
        except Exception as exc:  # pragma: no cover - reported below
            out["error"] = exc

    th = threading.Thread(target=work)
    th.start()
    th.join(60)
    assert "error" not in out
    np.testing.assert_array_equal(out["map"].face, plane_map.face)


def test_closed_orientation():
    s = uv_sphere(12, 24)
    assert closed_orientation(s.points, s.faces) == 1
    assert closed_orientation(s.points, s.faces[:, ::-1]) == -1
    assert closed_orientation(s.points, np.delete(s.faces, 100, axis=0)) == 0  # a hole
    flipped = s.faces.copy()
    flipped[100] = flipped[100, ::-1]
    assert closed_orientation(s.points, flipped) == 0
    assert closed_orientation(PLANE.points, PLANE.faces) == 0


@pytest.mark.parametrize("reverse", [False, True])
def test_culling_changes_nothing_outside_and_is_off_inside(reverse):
    sphere = uv_sphere(16, 32, radius=1.0)
    if reverse:  # inward-facing triangles: the front faces are culled instead
        sphere.faces = sphere.faces[:, ::-1].copy()
    plain = Mesh(sphere.points, sphere.faces, uv=sphere.uv)
    outside = Camera(60, 60, 32, 32, 64, 64, look_at([2.5, 1.0, 0.8], [0, 0, 0]))
    inside = Camera(20, 20, 32, 32, 64, 64, look_at([0.1, 0.2, 0.0], [1.0, 0.0, 0.3]))
    with UVRasterizer(plain) as rast:
        culled = rast.rasterize(outside)
        assert rast._actor.GetProperty().GetBackfaceCulling() == (not reverse)
        assert rast._actor.GetProperty().GetFrontfaceCulling() == reverse
        rast._set_culling = lambda cam: None  # the same view with every triangle drawn
        rast._actor.GetProperty().SetBackfaceCulling(False)
        rast._actor.GetProperty().SetFrontfaceCulling(False)
        full = rast.rasterize(outside)
    assert np.array_equal(culled.mask, full.mask) and (culled.face != full.face).sum() <= 3
    with UVRasterizer(plain) as rast:
        m = rast.rasterize(inside)
        assert not rast._actor.GetProperty().GetBackfaceCulling()
        assert not rast._actor.GetProperty().GetFrontfaceCulling()
    assert m.mask.all()  # inside the ball every ray hits the wall
    o, d = inside.pixel_rays()
    pix = np.arange(0, 64 * 64, 97)
    ids, margin = _ray_cast(plain.points, plain.faces, o, d.reshape(-1, 3)[pix])
    clear = margin > 1e-3
    assert clear.sum() > 30 and np.array_equal(m.face.reshape(-1)[pix][clear], ids[clear])
