"""Pinhole cameras and the one place where camera conventions are converted.

Internal convention (OpenCV/COLMAP): camera axes +x right, +y down, +z forward (into the scene);
``c2w`` maps camera coordinates to world coordinates. Pixel coordinates are continuous with the
image spanning ``[0, width] x [0, height]``, so the centre of pixel (i, j) is (i + 0.5, j + 0.5)
and a centred principal point is ``cx = width / 2`` (COLMAP's and nerfstudio's convention).

Converters:

* NeRF / Blender / nerfstudio ``transform_matrix``: camera-to-world with OpenGL axes
  (+x right, +y up, +z backwards) -> :meth:`Camera.from_opengl_c2w`, :meth:`Camera.opengl_c2w`.
* COLMAP / OpenCV: world-to-camera rotation as a quaternion (w, x, y, z) and translation
  -> :meth:`Camera.from_colmap`, :meth:`Camera.colmap_qvec_tvec`.
* VTK: position, focal point, view up, vertical view angle in degrees and window centre
  -> :meth:`Camera.from_vtk`, :meth:`Camera.vtk_params`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

__all__ = ["Camera", "qvec_to_rotmat", "rotmat_to_qvec", "look_at", "orbit_cameras", "sphere_cameras"]

# OpenCV camera axes expressed in OpenGL camera axes and back: flip y and z.
_FLIP_YZ = np.diag([1.0, -1.0, -1.0, 1.0])


@dataclass(eq=False)
class Camera:
    """A pinhole camera.

    Parameters
    ----------
    fx, fy : focal lengths in pixels.
    cx, cy : principal point in pixels (image spans [0, width] x [0, height]).
    width, height : image size in pixels.
    c2w : (4, 4) camera-to-world transform, OpenCV camera axes (+z forward, +y down).
    name : the frame's name (its image file name without folder), if any.
    """

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int
    c2w: np.ndarray = field(default_factory=lambda: np.eye(4))
    name: str = ""

    def __post_init__(self) -> None:
        self.c2w = np.asarray(self.c2w, dtype=float).reshape(4, 4)
        self.width, self.height = int(self.width), int(self.height)
        vals = (self.fx, self.fy, self.cx, self.cy)
        if not np.all(np.isfinite(vals)) or not np.all(np.isfinite(self.c2w)):
            raise ValueError("camera has non-finite intrinsics or pose")
        if self.fx <= 0 or self.fy <= 0 or self.width <= 0 or self.height <= 0:
            raise ValueError("camera needs positive focal lengths and image size")

    # -- basic geometry -------------------------------------------------------------------
    @property
    def K(self) -> np.ndarray:
        """(3, 3) intrinsic matrix."""
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    @property
    def w2c(self) -> np.ndarray:
        """(4, 4) world-to-camera transform (OpenCV axes)."""
        r, t = self.c2w[:3, :3], self.c2w[:3, 3]
        out = np.eye(4)
        out[:3, :3] = r.T
        out[:3, 3] = -r.T @ t
        return out

    @property
    def center(self) -> np.ndarray:
        """(3,) camera centre in world coordinates."""
        return self.c2w[:3, 3].copy()

    @property
    def forward(self) -> np.ndarray:
        """(3,) unit viewing direction in world coordinates."""
        v = self.c2w[:3, 2]
        return v / np.linalg.norm(v)

    def project(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """World points (N, 3) -> pixel coordinates (N, 2) and depth along +z (N,)."""
        p = np.asarray(points, dtype=float).reshape(-1, 3)
        w2c = self.w2c
        pc = p @ w2c[:3, :3].T + w2c[:3, 3]
        z = pc[:, 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            uv = np.stack([self.fx * pc[:, 0] / z + self.cx, self.fy * pc[:, 1] / z + self.cy], axis=1)
        return uv, z

    def pixel_rays(self, width: int | None = None, height: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Rays through every pixel centre: origin (3,) and unit directions (H, W, 3) in world.

        With ``width``/``height`` other than the camera's own, the intrinsics are scaled first.
        """
        cam = self.scaled(width, height) if width or height else self
        i, j = np.meshgrid(np.arange(cam.width) + 0.5, np.arange(cam.height) + 0.5)
        d = np.stack([(i - cam.cx) / cam.fx, (j - cam.cy) / cam.fy, np.ones_like(i)], axis=-1)
        d = d @ cam.c2w[:3, :3].T
        d /= np.linalg.norm(d, axis=-1, keepdims=True)
        return cam.center, d

    def scaled(self, width: int | None = None, height: int | None = None) -> "Camera":
        """The same camera at another image size (intrinsics scaled; aspect kept if one is None)."""
        if width is None and height is None:
            return self
        if width is None:
            width = round(self.width * height / self.height)
        if height is None:
            height = round(self.height * width / self.width)
        sx, sy = width / self.width, height / self.height
        return replace(self, fx=self.fx * sx, fy=self.fy * sy, cx=self.cx * sx, cy=self.cy * sy,
                       width=int(width), height=int(height), c2w=self.c2w.copy())

    def projection_matrix(self, near: float, far: float) -> np.ndarray:
        """(4, 4) OpenGL projection for this camera's intrinsics (eye space = OpenGL axes).

        Exact for any fx, fy, cx, cy, so a VTK camera given it as an explicit projection
        (``SetExplicitProjectionTransformMatrix``) draws pixel for pixel what :meth:`project` says.
        Hand it to ``vtkMatrix4x4`` element by element as it is (row-major, column vectors; no
        transpose); VTK multiplies it onto its own view transform (position, focal point, view up
        from :meth:`vtk_params`), and ignores view angle, window centre and clipping range.
        """
        w, h = self.width, self.height
        m = np.zeros((4, 4))
        m[0, 0] = 2 * self.fx / w
        m[0, 2] = 1 - 2 * self.cx / w
        m[1, 1] = 2 * self.fy / h
        m[1, 2] = 2 * self.cy / h - 1
        m[2, 2] = -(far + near) / (far - near)
        m[2, 3] = -2 * far * near / (far - near)
        m[3, 2] = -1.0
        return m

    # -- NeRF / Blender / nerfstudio --------------------------------------------------------
    @classmethod
    def from_opengl_c2w(cls, c2w_gl: np.ndarray, fx: float, fy: float, cx: float, cy: float,
                        width: int, height: int, name: str = "") -> "Camera":
        """From a ``transforms.json`` ``transform_matrix`` (camera-to-world, OpenGL axes)."""
        return cls(fx, fy, cx, cy, width, height, np.asarray(c2w_gl, float).reshape(4, 4) @ _FLIP_YZ, name)

    def opengl_c2w(self) -> np.ndarray:
        """(4, 4) camera-to-world with OpenGL axes, as ``transforms.json`` stores it."""
        return self.c2w @ _FLIP_YZ

    # -- COLMAP / OpenCV ----------------------------------------------------------------------
    @classmethod
    def from_colmap(cls, qvec: np.ndarray, tvec: np.ndarray, fx: float, fy: float, cx: float, cy: float,
                    width: int, height: int, name: str = "") -> "Camera":
        """From COLMAP's ``images.txt`` pose: world-to-camera quaternion (w, x, y, z) and translation."""
        w2c = np.eye(4)
        w2c[:3, :3] = qvec_to_rotmat(qvec)
        w2c[:3, 3] = np.asarray(tvec, float)
        return cls(fx, fy, cx, cy, width, height, np.linalg.inv(w2c), name)

    def colmap_qvec_tvec(self) -> tuple[np.ndarray, np.ndarray]:
        """World-to-camera quaternion (w, x, y, z) and translation (3,), as COLMAP writes them."""
        w2c = self.w2c
        return rotmat_to_qvec(w2c[:3, :3]), w2c[:3, 3].copy()

    # -- VTK -----------------------------------------------------------------------------------
    @classmethod
    def from_vtk(cls, position, focal_point, view_up, view_angle: float, width: int, height: int,
                 window_center: tuple[float, float] = (0.0, 0.0), name: str = "") -> "Camera":
        """From a VTK camera: position, focal point, view up, vertical view angle (degrees).

        ``window_center`` is VTK's ``GetWindowCenter()``: VTK shifts its frustum by it, which puts
        the principal point at NDC ``-window_center``, so ``cx = W (1 - wc_x) / 2`` and
        ``cy = H (1 + wc_y) / 2`` (rows from the top). Checked against VTK's renderer in
        ``tests/model/test_camera.py``.
        """
        pos, fp, up = (np.asarray(v, float) for v in (position, focal_point, view_up))
        z = fp - pos
        z /= np.linalg.norm(z)
        y = -(up - np.dot(up, z) * z)  # OpenCV +y points down the image
        y /= np.linalg.norm(y)
        x = np.cross(y, z)
        c2w = np.eye(4)
        c2w[:3, 0], c2w[:3, 1], c2w[:3, 2], c2w[:3, 3] = x, y, z, pos
        f = (height / 2.0) / np.tan(np.radians(view_angle) / 2.0)
        cx = width / 2.0 * (1.0 - window_center[0])
        cy = height / 2.0 * (1.0 + window_center[1])
        return cls(f, f, cx, cy, width, height, c2w, name)

    def vtk_params(self, distance: float = 1.0) -> dict:
        """VTK camera settings: position, focal_point (``distance`` ahead), view_up, view_angle
        (vertical, degrees, from fy) and window_center (principal point offset).

        VTK's camera has one focal length; when fx != fy use :meth:`projection_matrix`.
        ``window_center = (1 - 2 cx / W, 2 cy / H - 1)``; a renderer given these draws a world
        point at :meth:`project`'s pixel (verified with VTK's renderer to within a pixel).
        """
        pos = self.center
        return {
            "position": pos,
            "focal_point": pos + distance * self.forward,
            "view_up": -self.c2w[:3, 1] / np.linalg.norm(self.c2w[:3, 1]),
            "view_angle": float(np.degrees(2.0 * np.arctan((self.height / 2.0) / self.fy))),
            "window_center": (1.0 - 2.0 * self.cx / self.width, 2.0 * self.cy / self.height - 1.0),
        }

    # -- JSON ---------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {"fx": self.fx, "fy": self.fy, "cx": self.cx, "cy": self.cy, "width": self.width,
                "height": self.height, "c2w": self.c2w.tolist(), "name": self.name}

    @classmethod
    def from_dict(cls, d: dict) -> "Camera":
        return cls(float(d["fx"]), float(d["fy"]), float(d["cx"]), float(d["cy"]), int(d["width"]),
                   int(d["height"]), np.asarray(d["c2w"], float), str(d.get("name", "")))


def qvec_to_rotmat(q: np.ndarray) -> np.ndarray:
    """Unit quaternion (w, x, y, z) -> (3, 3) rotation matrix."""
    w, x, y, z = np.asarray(q, float) / np.linalg.norm(q)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
    ])


def rotmat_to_qvec(r: np.ndarray) -> np.ndarray:
    """(3, 3) rotation -> unit quaternion (w, x, y, z) with w >= 0 (Shepperd's method)."""
    r = np.asarray(r, float)
    tr = np.trace(r)
    if tr > 0:
        s = 2.0 * np.sqrt(tr + 1.0)
        q = [0.25 * s, (r[2, 1] - r[1, 2]) / s, (r[0, 2] - r[2, 0]) / s, (r[1, 0] - r[0, 1]) / s]
    elif r[0, 0] > r[1, 1] and r[0, 0] > r[2, 2]:
        s = 2.0 * np.sqrt(1.0 + r[0, 0] - r[1, 1] - r[2, 2])
        q = [(r[2, 1] - r[1, 2]) / s, 0.25 * s, (r[0, 1] + r[1, 0]) / s, (r[0, 2] + r[2, 0]) / s]
    elif r[1, 1] > r[2, 2]:
        s = 2.0 * np.sqrt(1.0 + r[1, 1] - r[0, 0] - r[2, 2])
        q = [(r[0, 2] - r[2, 0]) / s, (r[0, 1] + r[1, 0]) / s, 0.25 * s, (r[1, 2] + r[2, 1]) / s]
    else:
        s = 2.0 * np.sqrt(1.0 + r[2, 2] - r[0, 0] - r[1, 1])
        q = [(r[1, 0] - r[0, 1]) / s, (r[0, 2] + r[2, 0]) / s, (r[1, 2] + r[2, 1]) / s, 0.25 * s]
    q = np.asarray(q)
    q /= np.linalg.norm(q)
    return -q if q[0] < 0 else q


def look_at(eye, target, up=(0.0, 0.0, 1.0)) -> np.ndarray:
    """(4, 4) camera-to-world (OpenCV axes) for a camera at ``eye`` looking at ``target``.

    World ``up`` appears up in the image: the camera's +y (down the image) is ``-up`` made
    perpendicular to the viewing direction, so there is no roll.
    """
    eye, target, up = (np.asarray(v, float) for v in (eye, target, up))
    z = target - eye
    z /= np.linalg.norm(z)
    if abs(np.dot(z, up / np.linalg.norm(up))) > 0.999:  # looking along "up": pick another
        up = np.array([0.0, 1.0, 0.0]) if abs(z[1]) < 0.9 else np.array([1.0, 0.0, 0.0])
    x = np.cross(z, up)  # OpenCV: +y (down the image) is -up, so x = y cross z = z cross up
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    c2w = np.eye(4)
    c2w[:3, 0], c2w[:3, 1], c2w[:3, 2], c2w[:3, 3] = x, y, z, eye
    return c2w


def sphere_cameras(n: int, center, radius: float, size: int, view_angle: float = 40.0,
                   seed: int | None = 0, up=(0.0, 0.0, 1.0), min_elevation: float = -60.0) -> list[Camera]:
    """``n`` cameras spread evenly over a sphere (Fibonacci lattice, randomly rotated about ``up``
    by ``seed``), all looking at ``center``; square images of ``size`` pixels."""
    rng = np.random.default_rng(seed)
    offset = rng.uniform(0, 2 * np.pi) if seed is not None else 0.0
    zmin = np.sin(np.radians(min_elevation))
    k = np.arange(n) + 0.5
    zs = 1.0 - (1.0 - zmin) * k / n
    phi = np.pi * (1 + 5 ** 0.5) * k + offset
    r = np.sqrt(np.clip(1 - zs ** 2, 0, None))
    dirs = np.stack([r * np.cos(phi), r * np.sin(phi), zs], axis=1)
    upv = np.asarray(up, float) / np.linalg.norm(up)
    # rotate the lattice so its pole is ``up``
    rot = _rotation_between(np.array([0.0, 0.0, 1.0]), upv)
    dirs = dirs @ rot.T
    f = (size / 2.0) / np.tan(np.radians(view_angle) / 2.0)
    center = np.asarray(center, float)
    return [Camera(f, f, size / 2.0, size / 2.0, size, size, look_at(center + radius * d, center, upv),
                   name=f"r_{i:03d}") for i, d in enumerate(dirs)]


def orbit_cameras(n: int, center, radius: float, size: int, elevation: float = 20.0,
                  view_angle: float = 40.0, up=(0.0, 0.0, 1.0)) -> list[Camera]:
    """``n`` cameras on a circle at ``elevation`` degrees around ``up``, looking at ``center``."""
    upv = np.asarray(up, float) / np.linalg.norm(up)
    rot = _rotation_between(np.array([0.0, 0.0, 1.0]), upv)
    el = np.radians(elevation)
    f = (size / 2.0) / np.tan(np.radians(view_angle) / 2.0)
    center = np.asarray(center, float)
    out = []
    for i in range(n):
        a = 2 * np.pi * i / n
        d = rot @ np.array([np.cos(el) * np.cos(a), np.cos(el) * np.sin(a), np.sin(el)])
        out.append(Camera(f, f, size / 2.0, size / 2.0, size, size, look_at(center + radius * d, center, upv),
                          name=f"orbit_{i:04d}"))
    return out


def _rotation_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Rotation taking unit vector a to unit vector b."""
    v = np.cross(a, b)
    c = float(np.dot(a, b))
    if np.linalg.norm(v) < 1e-12:
        return np.eye(3) if c > 0 else np.diag([1.0, -1.0, -1.0])
    vx = np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])
    return np.eye(3) + vx + vx @ vx / (1 + c)
