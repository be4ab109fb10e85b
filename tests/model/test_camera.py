"""Camera conventions: round trips, projection written out per convention, and VTK's own renderer.

Each convention's projection is written here from its definition, not through :class:`Camera`:

* OpenGL / NeRF ``transform_matrix``: eye = inverse(c2w_gl) p, the camera looks down -z, +y up;
  u = cx + fx x_e / -z_e, v = cy - fy y_e / -z_e (v counts rows from the top).
* COLMAP: x = K (R p + t), (u, v) = x[:2] / x[2].
* VTK: eye basis from position, focal point and view up; VTK's frustum
  (``vtkCamera::ComputeProjectionTransform``) puts NDC x at x_e / (d tan(a/2) aspect) - wc_x,
  NDC y at y_e / (d tan(a/2)) - wc_y; u = W (1 + x_ndc) / 2, v = H (1 - y_ndc) / 2.

Then the cameras are given to a real ``vtkRenderer`` (offscreen, EGL when there is no X) with
small coloured spheres at known world points, and the spheres' pixel centroids must land within
a pixel of :meth:`Camera.project`.
"""

from __future__ import annotations

import numpy as np
import pytest

from viewer.model.camera import Camera, look_at, orbit_cameras, qvec_to_rotmat, rotmat_to_qvec, sphere_cameras

W, H = 160, 120


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q *= np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] *= -1
    return q


def _random_camera(seed: int, square_pixels: bool = False) -> Camera:
    rng = np.random.default_rng(seed)
    c2w = np.eye(4)
    c2w[:3, :3] = _random_rotation(rng)
    c2w[:3, 3] = rng.uniform(-5, 5, 3)
    fx = rng.uniform(80, 300)
    fy = fx if square_pixels else fx * rng.uniform(0.7, 1.4)
    cx, cy = W / 2 + rng.uniform(-30, 30), H / 2 + rng.uniform(-25, 25)
    return Camera(fx, fy, cx, cy, W, H, c2w, name=f"cam{seed}")


def _points_in_front(cam: Camera, n: int = 20, seed: int = 0) -> np.ndarray:
    """World points that land inside the image at depths 1..8."""
    rng = np.random.default_rng(seed)
    u, v = rng.uniform(5, W - 5, n), rng.uniform(5, H - 5, n)
    z = rng.uniform(1, 8, n)
    pc = np.stack([(u - cam.cx) / cam.fx * z, (v - cam.cy) / cam.fy * z, z], 1)
    return pc @ cam.c2w[:3, :3].T + cam.c2w[:3, 3]


def _same_intrinsics(a: Camera, b: Camera, tol: float = 1e-9) -> None:
    np.testing.assert_allclose([a.fx, a.fy, a.cx, a.cy], [b.fx, b.fy, b.cx, b.cy], atol=tol, rtol=0)
    assert (a.width, a.height) == (b.width, b.height)


# -- round trips ------------------------------------------------------------------------------

SEEDS = list(range(8))


@pytest.mark.parametrize("seed", SEEDS)
def test_opengl_round_trip(seed):
    cam = _random_camera(seed)
    back = Camera.from_opengl_c2w(cam.opengl_c2w(), cam.fx, cam.fy, cam.cx, cam.cy, W, H)
    np.testing.assert_allclose(back.c2w, cam.c2w, atol=1e-12)
    # OpenGL axes: +z backwards, +y up -> the camera looks down the stored matrix's -z column
    np.testing.assert_allclose(-cam.opengl_c2w()[:3, 2], cam.forward, atol=1e-12)


@pytest.mark.parametrize("seed", SEEDS)
def test_colmap_round_trip(seed):
    cam = _random_camera(seed)
    q, t = cam.colmap_qvec_tvec()
    assert q[0] >= 0 and abs(np.linalg.norm(q) - 1) < 1e-12
    back = Camera.from_colmap(q, t, cam.fx, cam.fy, cam.cx, cam.cy, W, H)
    np.testing.assert_allclose(back.c2w, cam.c2w, atol=1e-9)


@pytest.mark.parametrize("rot", [
    np.diag([1.0, -1.0, -1.0]), np.diag([-1.0, 1.0, -1.0]), np.diag([-1.0, -1.0, 1.0]), np.eye(3),
    qvec_to_rotmat([0.01, 0.7, 0.7, 0.1]), qvec_to_rotmat([0.02, 0.1, 0.3, 0.95]),
], ids=["180x", "180y", "180z", "identity", "near180-xy", "near180-z"])
def test_quaternion_round_trip_every_branch(rot):
    q = rotmat_to_qvec(rot)
    np.testing.assert_allclose(qvec_to_rotmat(q), rot, atol=1e-12)


@pytest.mark.parametrize("seed", SEEDS)
def test_vtk_round_trip(seed):
    cam = _random_camera(seed, square_pixels=True)
    p = cam.vtk_params(distance=2.5)
    back = Camera.from_vtk(p["position"], p["focal_point"], p["view_up"], p["view_angle"], W, H,
                           window_center=p["window_center"])
    np.testing.assert_allclose(back.c2w, cam.c2w, atol=1e-9)
    _same_intrinsics(back, cam)


@pytest.mark.parametrize("seed", SEEDS[:3])
def test_dict_round_trip_and_scaling(seed):
    cam = _random_camera(seed)
    back = Camera.from_dict(cam.to_dict())
    np.testing.assert_array_equal(back.c2w, cam.c2w)
    _same_intrinsics(back, cam, 0)
    assert back.name == cam.name
    # a scaled camera sees the same points at scaled pixel positions
    half = cam.scaled(W // 2)
    pts = _points_in_front(cam)
    np.testing.assert_allclose(half.project(pts)[0], cam.project(pts)[0] / 2, atol=1e-9)


# -- projections written out per convention ---------------------------------------------------

@pytest.mark.parametrize("seed", SEEDS)
def test_project_matches_opengl_math(seed):
    cam = _random_camera(seed)
    pts = _points_in_front(cam, seed=seed)
    eye = (np.linalg.inv(cam.opengl_c2w()) @ np.c_[pts, np.ones(len(pts))].T).T[:, :3]
    u = cam.cx + cam.fx * eye[:, 0] / -eye[:, 2]
    v = cam.cy - cam.fy * eye[:, 1] / -eye[:, 2]
    uv, depth = cam.project(pts)
    np.testing.assert_allclose(uv, np.c_[u, v], atol=1e-9)
    np.testing.assert_allclose(depth, -eye[:, 2], atol=1e-9)


@pytest.mark.parametrize("seed", SEEDS)
def test_project_matches_colmap_math(seed):
    cam = _random_camera(seed)
    pts = _points_in_front(cam, seed=seed)
    q, t = cam.colmap_qvec_tvec()
    w, x, y, z = q  # rotation from the quaternion, written out independently of qvec_to_rotmat
    r = np.array([[w * w + x * x - y * y - z * z, 2 * (x * y - w * z), 2 * (x * z + w * y)],
                  [2 * (x * y + w * z), w * w - x * x + y * y - z * z, 2 * (y * z - w * x)],
                  [2 * (x * z - w * y), 2 * (y * z + w * x), w * w - x * x - y * y + z * z]])
    k = np.array([[cam.fx, 0, cam.cx], [0, cam.fy, cam.cy], [0, 0, 1]])
    x_img = (k @ (r @ pts.T + t[:, None])).T
    np.testing.assert_allclose(cam.project(pts)[0], x_img[:, :2] / x_img[:, 2:], atol=1e-9)


def _vtk_math_project(p: dict, pts: np.ndarray) -> np.ndarray:
    """VTK's perspective frustum with a window centre, written out (no VTK)."""
    pos, fp, up = (np.asarray(p[k], float) for k in ("position", "focal_point", "view_up"))
    d = (fp - pos) / np.linalg.norm(fp - pos)
    right = np.cross(d, up)
    right /= np.linalg.norm(right)
    true_up = np.cross(right, d)
    rel = pts - pos
    xe, ye, depth = rel @ right, rel @ true_up, rel @ d
    tan_h = np.tan(np.radians(p["view_angle"]) / 2)
    wcx, wcy = p["window_center"]
    x_ndc = xe / (depth * tan_h * (W / H)) - wcx
    y_ndc = ye / (depth * tan_h) - wcy
    return np.c_[W * (1 + x_ndc) / 2, H * (1 - y_ndc) / 2]


@pytest.mark.parametrize("seed", SEEDS)
def test_project_matches_vtk_frustum_math(seed):
    cam = _random_camera(seed, square_pixels=True)
    pts = _points_in_front(cam, seed=seed)
    np.testing.assert_allclose(cam.project(pts)[0], _vtk_math_project(cam.vtk_params(), pts), atol=1e-9)


def test_look_at_keeps_world_up_up_in_the_image():
    # looking along +x with +z up: +z is up the image (smaller v), -y is to the right (larger u)
    cam = Camera(100, 100, 50, 50, 100, 100, look_at([-5, 0, 0], [0, 0, 0], up=(0, 0, 1)))
    uv, _ = cam.project(np.array([[0, 0, 1.0], [0, -1.0, 0]]))
    assert uv[0, 1] < 50 and abs(uv[0, 0] - 50) < 1e-9
    assert uv[1, 0] > 50 and abs(uv[1, 1] - 50) < 1e-9
    np.testing.assert_allclose(cam.vtk_params()["view_up"], [0, 0, 1], atol=1e-12)
    for c in sphere_cameras(6, [0, 0, 0], 3.0, 32) + orbit_cameras(4, [0, 0, 0], 3.0, 32):
        assert np.dot(c.c2w[:3, 1], [0, 0, 1]) < 0  # image down is world down
        np.testing.assert_allclose(c.c2w[:3, :3].T @ c.c2w[:3, :3], np.eye(3), atol=1e-12)
        assert np.linalg.det(c.c2w[:3, :3]) > 0
        np.testing.assert_allclose(c.project(np.zeros((1, 3)))[0], [[16, 16]], atol=1e-9)


# -- VTK itself ---------------------------------------------------------------------------------

def _vtk():
    from viewer.render.vtkutil import vtk  # sets EGL up when there is no X server
    return vtk


def _set_vtk_camera(vc, cam: Camera, explicit: bool, near: float = 0.05, far: float = 100.0) -> None:
    vtk = _vtk()
    p = cam.vtk_params(distance=3.0)
    vc.SetPosition(*p["position"])
    vc.SetFocalPoint(*p["focal_point"])
    vc.SetViewUp(*p["view_up"])
    if explicit:
        m = vtk.vtkMatrix4x4()
        proj = cam.projection_matrix(near, far)
        for i in range(4):
            for j in range(4):
                m.SetElement(i, j, proj[i, j])  # as given: vtkMatrix4x4 is row-major, column vectors
        vc.SetExplicitProjectionTransformMatrix(m)
        vc.SetUseExplicitProjectionTransformMatrix(True)
    else:
        vc.SetViewAngle(p["view_angle"])
        vc.SetWindowCenter(*p["window_center"])
        vc.SetClippingRange(near, far)


def _vtk_matrix_project(vc, pts: np.ndarray) -> np.ndarray:
    """VTK's own world -> NDC matrix (projection x view), to pixels with rows from the top."""
    m4 = vc.GetCompositeProjectionTransformMatrix(W / H, -1, 1)
    m = np.array([[m4.GetElement(i, j) for j in range(4)] for i in range(4)])
    clip = np.c_[pts, np.ones(len(pts))] @ m.T
    ndc = clip[:, :3] / clip[:, 3:]
    return np.c_[W * (1 + ndc[:, 0]) / 2, H * (1 - ndc[:, 1]) / 2]


@pytest.mark.parametrize("explicit", [False, True], ids=["vtk_params", "explicit_projection"])
@pytest.mark.parametrize("seed", SEEDS[:4])
def test_vtk_camera_matrices_agree_with_project(seed, explicit):
    vtk = _vtk()
    cam = _random_camera(seed, square_pixels=not explicit)
    vc = vtk.vtkCamera()
    _set_vtk_camera(vc, cam, explicit)
    pts = _points_in_front(cam, seed=seed)
    np.testing.assert_allclose(_vtk_matrix_project(vc, pts), cam.project(pts)[0], atol=1e-6)


_SPHERES = np.array([[0.0, 0.0, 0.0], [0.6, 0.3, 0.2], [-0.5, -0.4, 0.3], [0.3, -0.5, -0.4], [-0.2, 0.6, -0.3]])
_COLOURS = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (0, 255, 255)]


def _render_spheres(cam: Camera, explicit: bool) -> np.ndarray:
    """(H, W, 3) uint8 offscreen render, row 0 at the top; unlit spheres of flat colours."""
    vtk = _vtk()
    from vtk.util import numpy_support

    ren = vtk.vtkRenderer()
    ren.SetBackground(0, 0, 0)
    for centre, colour in zip(_SPHERES, _COLOURS):
        src = vtk.vtkSphereSource()
        src.SetCenter(*centre)
        src.SetRadius(0.04)
        src.SetThetaResolution(32)
        src.SetPhiResolution(32)
        mapper = vtk.vtkPolyDataMapper()
        mapper.SetInputConnection(src.GetOutputPort())
        actor = vtk.vtkActor()
        actor.SetMapper(mapper)
        prop = actor.GetProperty()
        prop.SetColor(*(c / 255 for c in colour))
        prop.LightingOff()
        ren.AddActor(actor)
    win = vtk.vtkRenderWindow()
    win.SetOffScreenRendering(1)
    win.SetMultiSamples(0)
    win.AddRenderer(ren)
    win.SetSize(W, H)
    _set_vtk_camera(ren.GetActiveCamera(), cam, explicit)
    win.Render()
    grab = vtk.vtkWindowToImageFilter()
    grab.SetInput(win)
    grab.SetInputBufferTypeToRGB()
    grab.ReadFrontBufferOff()
    grab.Update()
    img = grab.GetOutput()
    w, h, _ = img.GetDimensions()
    assert (w, h) == (W, H)
    rgb = numpy_support.vtk_to_numpy(img.GetPointData().GetScalars()).reshape(h, w, 3)
    win.Finalize()
    return rgb[::-1]  # VTK's rows come bottom first


@pytest.mark.parametrize("explicit", [False, True], ids=["vtk_params_fx_eq_fy", "explicit_fx_ne_fy"])
def test_vtk_renderer_draws_points_where_project_says(explicit):
    c2w = look_at([2.5, -1.5, 1.2], [0.1, 0.05, 0.0])
    # principal point well off centre in both axes; fx != fy for the explicit projection
    cam = Camera(150, 150 if not explicit else 118, 97.0, 47.0, W, H, c2w)
    img = _render_spheres(cam, explicit)
    uv, _ = cam.project(_SPHERES)
    for k, colour in enumerate(_COLOURS):
        ys, xs = np.nonzero(np.all(img == colour, axis=-1))
        assert len(xs) >= 4, f"sphere {k} not drawn"
        centroid = np.array([xs.mean() + 0.5, ys.mean() + 0.5])  # pixel centres at i + 0.5
        assert np.all(np.abs(centroid - uv[k]) < 1.0), (k, centroid, uv[k])


def test_vtk_renderer_is_sensitive_to_the_window_center_sign():
    """Guard against a test that passes whatever the sign: the flipped sign lands far off.

    The camera with (W - cx, H - cy) has exactly the negated ``window_center``.
    """
    c2w = look_at([2.5, -1.5, 1.2], [0.1, 0.05, 0.0])
    cam = Camera(150, 150, 97.0, 47.0, W, H, c2w)
    flipped = Camera(150, 150, W - 97.0, H - 47.0, W, H, c2w)
    img = _render_spheres(flipped, explicit=False)
    uv, _ = cam.project(_SPHERES[:1])
    ys, xs = np.nonzero(np.all(img == _COLOURS[0], axis=-1))
    assert np.abs(np.array([xs.mean() + 0.5, ys.mean() + 0.5]) - uv[0]).max() > 10
