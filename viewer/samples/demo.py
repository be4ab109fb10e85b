"""Deterministic demo data, built in memory (no downloads): a CT phantom with labels, a
textured globe and a coloured point cloud.

World frame: RAS millimetres as in NIfTI (+x = patient's Right, +y = Anterior, +z =
Superior). The phantom's voxel axes point Left, Posterior, Superior ("LPS" axcodes, like a
DICOM-ordered array), so loaders' LPS handling and the views' orientation labels are exercised.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..model.geometry import Mesh, PointCloud
from ..model.labels import Label, LabelMap, LabelTable
from ..model.volume import Volume

__all__ = ["ct_phantom", "textured_mesh", "point_cloud", "demo_layers", "MARKER_RAS",
           "MARKER_RADIUS_MM", "MARKER_HU", "LABEL_NAMES"]

#: Centre of the bright fiducial sphere, RAS mm: patient's left (-x), anterior (+y), superior
#: (+z). Asymmetric on every axis, so a flipped axis anywhere moves it visibly.
MARKER_RAS = (-40.0, 25.0, 60.0)
MARKER_RADIUS_MM = 6.0
MARKER_HU = 2000
LABEL_NAMES = {1: "liver", 2: "kidneys", 3: "spleen", 4: "bone"}
_REFERENCE_FOV_MM = np.array([192.0, 192.0, 192.0])  # the default grid: (128, 128, 96) x (1.5, 1.5, 2)
_LABEL_COLORS = {1: (0.65, 0.27, 0.22), 2: (0.95, 0.82, 0.25), 3: (0.55, 0.32, 0.70),
                 4: (0.96, 0.93, 0.82)}  # brownish red, yellow, purple, ivory


def ct_phantom(shape: tuple[int, int, int] = (128, 128, 96),
               spacing: tuple[float, float, float] = (1.5, 1.5, 2.0),
               seed: int = 0) -> tuple[Volume, LabelMap]:
    """A CT-like torso in Hounsfield units and its organ labels.

    Parameters
    ----------
    shape : (I, J, K) voxels; axis i points to the patient's Left, j Posterior, k Superior.
    spacing : voxel size along i, j, k in mm.
    seed : seeds the noise and the organs' shape wobble; equal seeds give equal arrays.

    Returns
    -------
    volume : (I, J, K) int16 HU, ``affine = diag(-sx, -sy, sz)`` with the grid centred at
        world (0, 0, 0); modality "CT". Air -1000, fat -100, soft tissue 40, lungs -850,
        liver 60, kidneys 30, spleen 50, bone 700-1200, a 2000 HU marker sphere of radius
        ``MARKER_RADIUS_MM`` centred exactly at ``MARKER_RAS``; Gaussian noise sd 10 HU.
    labels : (I, J, K) uint8 on the same grid: 1 liver, 2 kidneys, 3 spleen, 4 bone.

    The anatomy is laid out for the default 192 mm field of view (any grid with
    ``shape * spacing == (192, 192, 192)`` gives the same patient in mm). Other fields of
    view scale the whole phantom along each axis so that every organ stays in view; the
    marker's centre is then ``volume.meta["marker_ras"]`` (MARKER_RAS times that scale).
    """
    rng = np.random.default_rng(seed)
    sx, sy, sz = (float(s) for s in spacing)
    affine = np.diag([-sx, -sy, sz, 1.0])
    affine[:3, 3] = -affine[:3, :3] @ ((np.asarray(shape, float) - 1) / 2.0)
    scale = np.asarray(shape, float) * (sx, sy, sz) / _REFERENCE_FOV_MM
    # separable voxel-centre coordinates in the reference patient's mm (world mm / scale):
    # (I,1,1), (1,J,1), (1,1,K) float32, so every mask below costs one broadcast
    x, y, z = ((affine[a, 3] + affine[a, a] * np.arange(shape[a])) / scale[a] for a in range(3))
    x = x.astype(np.float32)[:, None, None]
    y = y.astype(np.float32)[None, :, None]
    z = z.astype(np.float32)[None, None, :]
    phases = rng.uniform(0, 2 * np.pi, size=(8, 3)).astype(np.float32)

    def blob(cx, cy, cz, rx, ry, rz, k: int, wobble: float = 0.12) -> np.ndarray:
        """Ellipsoid with a smooth sinusoidal wobble of its surface (boolean (I,J,K))."""
        f = ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 + ((z - cz) / rz) ** 2
        p = phases[k]
        f = f + wobble * (np.sin(x / 9 + p[0]) * np.sin(y / 11 + p[1]) * np.sin(z / 13 + p[2]))
        return f <= 1.0

    ax, ay = 88.0, 62.0  # body semi-axes, mm
    ring = (x / ax) ** 2 + (y / ay) ** 2  # (I, J, 1): the torso is a cylinder along z
    body, inner = ring <= 1.0, ring <= 0.81  # 0.81 = 0.9^2: fat layer under the skin
    hu = np.full(shape, -1000.0, np.float32)
    labels = np.zeros(shape, np.uint8)
    hu[np.broadcast_to(body, shape)] = -100.0
    inner3 = np.broadcast_to(inner, shape)
    hu[inner3] = 40.0
    for side in (-1, 1):  # lungs (unlabelled), above the abdomen
        hu[blob(side * 38, -5, 78, 32, 42, 48, k=5) & inner3] = -850.0
    kidneys = [(-42.0, -28.0, -25.0, 1), (42.0, -28.0, -31.0, 2)]  # left one higher, as usual
    for cx, cy, cz, k in kidneys:  # perirenal fat, so the kidneys stand out as on real CT
        hu[blob(cx, cy, cz, 22, 20, 36, k=k, wobble=0.05) & inner3] = -90.0
    organs = [  # (label, HU, mask): liver on the patient's right (+x), spleen on the left
        (1, 60.0, blob(35, 5, 15, 42, 36, 34, k=0)),
        (2, 30.0, np.logical_or(*(blob(cx, cy, cz, 16, 14, 30, k=k) for cx, cy, cz, k in kidneys))),
        (3, 50.0, blob(-52, -18, 25, 17, 24, 28, k=3)),
    ]
    for value, level, mask in organs:
        mask &= inner3
        hu[mask] = level
        labels[mask] = value
    # spine: vertebral bodies (cortical rim 1200, cancellous 700) with discs every 24 mm
    r_spine = np.sqrt(x ** 2 + (y + 36.0) ** 2)
    disc = ((z + 1000.0) % 24.0) < 4.0
    vert = (r_spine <= 13.0) & ~disc
    hu[vert] = 700.0
    hu[(r_spine > 10.0) & vert] = 1200.0
    hu[(r_spine <= 13.0) & disc] = 80.0
    # ribs: slabs of an elliptical ring inside the fat layer, thoracic levels only
    ribs = (ring >= 0.62) & (ring <= 0.72) & (((z + 1000.0) % 20.0) < 5.0) & (z > -30.0)
    ribs &= y < 0.55 * ay  # open at the front, where the costal cartilage would be
    bone = vert | ribs
    hu[ribs] = 900.0
    labels[np.broadcast_to(bone, shape)] = 4
    # the marker last (unlabelled): centred exactly at MARKER_RAS on a 192 mm field of view
    mx, my, mz = MARKER_RAS
    marker = (x - mx) ** 2 + (y - my) ** 2 + (z - mz) ** 2 <= MARKER_RADIUS_MM ** 2
    hu[marker] = float(MARKER_HU)
    hu += rng.standard_normal(shape, dtype=np.float32) * 10.0
    volume = Volume(np.clip(np.rint(hu), -1024, 3071).astype(np.int16), affine, modality="CT",
                    name="CT phantom", meta={"format": "demo", "marker_ras": [
                        float(v) for v in np.asarray(MARKER_RAS) * scale]})
    table = LabelTable([Label(v, n, _LABEL_COLORS[v]) for v, n in LABEL_NAMES.items()])
    return volume, LabelMap(labels, affine.copy(), table, name="CT phantom labels",
                            meta={"format": "demo"})


def _examples_dir() -> Path | None:
    try:
        import pyvista.examples as ex
    except ImportError:
        return None
    return Path(ex.__file__).parent


def textured_mesh(radius: float = 50.0, center: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> Mesh:
    """A textured globe of ``radius`` mm at ``center``.

    Uses pyvista's shipped ``globe.vtk`` and ``2k_earth_daymap.jpg`` (files inside the
    installed package: no download); without them, a UV sphere with a procedural texture.
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
        mesh = uv_sphere()
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


def uv_sphere(n_lon: int = 96, n_lat: int = 48) -> Mesh:
    """Unit sphere with a seam column of duplicated vertices (u = 0 and u = 1) and a
    procedural 512x256 texture (checkerboard over hue/brightness gradients)."""
    lon = np.linspace(-np.pi, np.pi, n_lon + 1)  # u = 0.5 at +x, like the pyvista globe
    lat = np.linspace(-np.pi / 2, np.pi / 2, n_lat + 1)
    lo, la = np.meshgrid(lon, lat)  # (n_lat+1, n_lon+1), row 0 = south pole
    pts = np.stack([np.cos(la) * np.cos(lo), np.cos(la) * np.sin(lo), np.sin(la)], -1).reshape(-1, 3)
    uv = np.stack([(lo + np.pi) / (2 * np.pi), (la + np.pi / 2) / np.pi], -1).reshape(-1, 2)
    idx = np.arange((n_lat + 1) * (n_lon + 1)).reshape(n_lat + 1, n_lon + 1)
    a, b, c, d = idx[:-1, :-1], idx[:-1, 1:], idx[1:, 1:], idx[1:, :-1]
    faces = np.concatenate([np.stack([a, b, c], -1).reshape(-1, 3),
                            np.stack([a, c, d], -1).reshape(-1, 3)])
    area = np.linalg.norm(np.cross(pts[faces[:, 1]] - pts[faces[:, 0]],
                                   pts[faces[:, 2]] - pts[faces[:, 0]]), axis=1)
    faces = faces[area > 1e-12]  # the quads touching a pole have one degenerate half
    return Mesh(pts, faces, uv=uv, texture=procedural_texture(), normals=pts.copy(),
                name="globe", meta={"format": "demo"})


def procedural_texture(width: int = 512, height: int = 256) -> np.ndarray:
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
    the origin, and a 100 mm globe beside it on the +x side (patient's right) so that the two
    never overlap in 3D."""
    volume, labels = ct_phantom()
    xmax = float(volume.bounds_world()[1, 0])
    globe = textured_mesh(radius=50.0, center=(xmax + 30.0 + 50.0, 0.0, 0.0))
    return [volume, labels, globe]
