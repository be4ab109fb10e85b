"""Deterministic demo data, built in memory (no downloads): the CT phantom with labels (from
:mod:`.phantom`), a textured globe and a coloured point cloud.

World frame: RAS millimetres as in NIfTI (+x = patient's Right, +y = Anterior, +z = Superior).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from ..geometry.primitives import uv_sphere
from ..model.geometry import Mesh, PointCloud
from .phantom import LABEL_NAMES, MARKER_HU, MARKER_RADIUS_MM, MARKER_RAS, ct_phantom

# ct_phantom, LABEL_NAMES and the MARKER_* constants are re-exported for the callers that import
# them from here; uv_sphere (viewer.geometry.primitives) likewise, for tests/ui/test_render_panel.py
__all__ = ["ct_phantom", "textured_mesh", "procedural_globe", "globe_texture", "point_cloud", "demo_layers",
           "MARKER_RAS", "MARKER_RADIUS_MM", "MARKER_HU", "LABEL_NAMES", "uv_sphere"]


def _examples_dir() -> Path | None:
    try:
        import pyvista.examples as ex
    except ImportError:
        return None
    return Path(ex.__file__).parent


def textured_mesh(radius: float = 50.0, center: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> Mesh:
    """A textured globe of ``radius`` mm at ``center``.

    Uses pyvista's shipped ``globe.vtk`` and ``2k_earth_daymap.jpg`` (files inside the
    installed package: no download); without them, :func:`procedural_globe`.
    ``uv`` origin bottom-left (v = 1 at the north pole, +z); ``texture`` row 0 = north.
    """
    folder = _examples_dir()
    mesh = None
    if folder is not None and (folder / "globe.vtk").is_file() \
            and (folder / "2k_earth_daymap.jpg").is_file():
        try:
            mesh = _pyvista_globe(folder)
        except (OSError, ValueError, RuntimeError):
            mesh = None  # a broken install: fall back to the procedural globe
    if mesh is None:
        mesh = procedural_globe()
    mesh.points = mesh.points * radius + np.asarray(center, float)
    return mesh


def _pyvista_globe(folder: Path) -> Mesh:
    import pyvista as pv
    from PIL import Image

    from ..io.meshes import polydata_to_mesh

    pd = pv.read(folder / "globe.vtk")
    with Image.open(folder / "2k_earth_daymap.jpg") as im:
        texture = np.asarray(im.convert("RGB"), np.uint8).copy()  # row 0 = top = north
    mesh = polydata_to_mesh(pd, texture=texture, name="globe",
                            meta={"format": "demo", "texture_file": "2k_earth_daymap.jpg"})
    if mesh.uv is None:
        raise ValueError("globe.vtk has no texture coordinates")
    mesh.points = mesh.points / np.linalg.norm(mesh.points, axis=1).max()  # unit sphere
    mesh.normals = mesh.points / np.linalg.norm(mesh.points, axis=1, keepdims=True)
    return mesh


def procedural_globe(n_lat: int = 48, n_lon: int = 96) -> Mesh:
    """The globe without pyvista's files: a unit :func:`~viewer.geometry.primitives.uv_sphere`
    turned half a turn about z, so that ``u = 0.5`` faces +x as on pyvista's globe, with the
    :func:`globe_texture` (north at the top)."""
    mesh = uv_sphere(n_lat, n_lon)
    turn = np.array([-1.0, -1.0, 1.0])  # 180 degrees about z: the seam (u = 0 and 1) moves to -x
    return replace(mesh, points=mesh.points * turn, normals=mesh.normals * turn, texture=globe_texture(),
                   name="globe", meta={"format": "demo"})


def globe_texture(width: int = 512, height: int = 256) -> np.ndarray:
    """(height, width, 3) uint8: hue along u, brightness along v (bright at the top = north),
    a 16x8 checkerboard, and a white marker square at the top-left corner (orientation)."""
    v, u = np.mgrid[0:height, 0:width].astype(np.float32)
    hue = u / width * 6.0
    rgb = np.clip(np.stack([np.abs(hue - 3) - 1, 2 - np.abs(hue - 2), 2 - np.abs(hue - 4)], -1), 0, 1)
    light = 1.0 - 0.6 * (v / height)[..., None]
    checker = (((u // (width // 16)) + (v // (height // 8))) % 2)[..., None]
    img = rgb * light * (0.7 + 0.3 * checker)
    img[: height // 16, : width // 32] = 1.0
    return (img * 255).round().astype(np.uint8)


def point_cloud(n: int = 20000, seed: int = 0) -> PointCloud:
    """(n, 3) points on the surface of a (2, 3) torus-knot tube, ~100 mm across, centred at
    the origin, coloured by height (z) from blue (low) through green to yellow (high)."""
    rng = np.random.default_rng(seed)
    t = rng.uniform(0, 2 * np.pi, n)
    phi = rng.uniform(0, 2 * np.pi, n)
    p, q, big_r, small_r, tube = 2, 3, 30.0, 12.0, 5.0

    def curve(s: np.ndarray) -> np.ndarray:
        r = big_r + small_r * np.cos(q * s)
        return np.stack([r * np.cos(p * s), r * np.sin(p * s), small_r * np.sin(q * s)], -1)

    c = curve(t)
    tangent = curve(t + 1e-4) - curve(t - 1e-4)
    tangent /= np.linalg.norm(tangent, axis=1, keepdims=True)
    n1 = np.cross(tangent, c)  # the knot never runs radially, so this is never zero
    n1 /= np.linalg.norm(n1, axis=1, keepdims=True)
    n2 = np.cross(tangent, n1)
    normals = np.cos(phi)[:, None] * n1 + np.sin(phi)[:, None] * n2
    points = c + tube * normals
    h = (points[:, 2] - points[:, 2].min()) / np.ptp(points[:, 2])
    anchors = np.array([[40, 60, 200], [30, 180, 120], [250, 220, 40]], float)
    colors = np.stack([np.interp(h, [0, 0.5, 1], anchors[:, i]) for i in range(3)], -1)
    return PointCloud(points, colors=colors.round().astype(np.uint8), normals=normals,
                      name="torus knot", meta={"format": "demo"})


def demo_layers() -> list:
    """[Volume, LabelMap, Mesh] for ``main.py demo``: the CT phantom and its labels centred at
    the origin, and a 100 mm globe beside it on the +x side (the patient's right) so that the two
    never overlap in 3D. The globe sits 10 mm above the centre's axial plane: the axial view opens
    on that plane, and the outline of a globe cut by it showed as a stray arc at the view's edge."""
    volume, labels = ct_phantom()
    xmax = float(volume.bounds_world()[1, 0])
    globe = textured_mesh(radius=50.0, center=(xmax + 30.0 + 50.0, 0.0, 10.0 + 50.0))
    return [volume, labels, globe]
