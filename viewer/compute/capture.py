"""Photographs of a textured mesh for neural-rendering data sets: VTK offscreen (EGL), Phong
shading with white specular highlights under lights fixed in the world, alpha = coverage.

Every view is drawn with the exact camera of :mod:`viewer.model.camera` (explicit projection,
OpenCV pixel convention) and no anti-aliasing, so its alpha > 0.5 mask is pixel for pixel the
mask of :class:`viewer.compute.raster.UVRasterizer` (``supersample=1``).

Shading, per pixel, with T the texture colour (bilinear, mipmapped), n the normal, L_k the world
directions towards the lights with intensities I_k, h_k the half-way vectors:

    rgb = T * (ka + kd * sum_k I_k max(n . L_k, 0)) + specular * sum_k I_k max(n . h_k, 0) ** power

VTK multiplies its specular term by the texture; the two terms are therefore drawn in two passes
(textured diffuse, then a white specular-only material) and added here, so highlights are
white, as on a glossy dielectric.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from vtk.util.numpy_support import numpy_to_vtk

from ..model.camera import Camera, sphere_cameras
from ..geometry.normals import smooth_normals, split_creases
from ..model.geometry import Mesh
from .raster import OffscreenWindow, mesh_polydata, near_far, set_vtk_camera
from .vtkbase import vtk

__all__ = ["Light", "default_lights", "render_views", "frame_cameras", "bounding_sphere",
           "scan_colours"]


@dataclass(frozen=True)
class Light:
    """A directional light fixed in the world.

    direction : (3,) world vector pointing FROM the surface TOWARDS the light.
    intensity : scale of its diffuse and specular contribution (0..1).
    """

    direction: tuple[float, float, float]
    intensity: float


def default_lights(up=(0.0, 0.0, 1.0)) -> list[Light]:
    """A key light from above front-left, a fill light from the other side, a rim light from below
    (directions in the world frame, ``up`` the scene's up vector)."""
    u = np.asarray(up, float) / np.linalg.norm(up)
    a = np.cross(u, [1.0, 0.0, 0.0] if abs(u[0]) < 0.9 else [0.0, 1.0, 0.0])
    a /= np.linalg.norm(a)
    b = np.cross(u, a)
    key, fill, rim = u * 1.0 + a * 0.8 + b * 0.6, -a * 0.7 - b * 0.5 + u * 0.2, -u * 0.8 + b * 0.6 - a * 0.3
    return [Light(tuple(v / np.linalg.norm(v)), i) for v, i in ((key, 1.0), (fill, 0.6), (rim, 0.4))]


def bounding_sphere(mesh: Mesh) -> tuple[np.ndarray, float]:
    """Centre of the bounding box and the largest distance of a vertex from it (world units)."""
    b = np.asarray(mesh.bounds(), float).reshape(3, 2)
    center = b.mean(1)
    pts = np.asarray(mesh.points, float)
    pts = pts[np.all(np.isfinite(pts), 1)]
    radius = float(np.sqrt(((pts - center) ** 2).sum(1).max())) if len(pts) else 1.0
    return center, max(radius, 1e-9)


def frame_cameras(mesh: Mesh, n: int, size: int, view_angle: float = 40.0, seed: int | None = 0,
                  up=(0.0, 0.0, 1.0), margin: float = 1.05) -> list[Camera]:
    """``n`` cameras spread over a sphere around the mesh (:func:`sphere_cameras`), all looking
    at its bounding-sphere centre from the distance at which the whole bounding sphere (times
    ``margin``) fits the vertical and horizontal ``view_angle`` (degrees) of a square image."""
    center, radius = bounding_sphere(mesh)
    dist = radius * margin / np.sin(np.radians(view_angle) / 2.0)
    return sphere_cameras(n, center, dist, size, view_angle, seed=seed, up=up)


def _vtk_texture(texture: np.ndarray) -> vtk.vtkTexture:
    """A bilinear, mipmapped, edge-clamped vtkTexture of an (H, W, 3|4) uint8 image (row 0 at
    the top; VTK's rows run bottom-up, matching uv with the origin bottom-left). RGB only."""
    rgb = np.ascontiguousarray(np.asarray(texture, np.uint8)[::-1, :, :3])
    h, w = rgb.shape[:2]
    img = vtk.vtkImageData()
    img.SetDimensions(w, h, 1)
    img.GetPointData().SetScalars(numpy_to_vtk(rgb.reshape(-1, 3), deep=True, array_type=vtk.VTK_UNSIGNED_CHAR))
    tex = vtk.vtkTexture()
    tex.SetInputData(img)
    tex.InterpolateOn()
    tex.MipmapOn()
    tex.RepeatOff()
    tex.EdgeClampOn()
    return tex


def render_views(mesh: Mesh, cameras: list[Camera], specular: float = 0.5,
                 background=(1.0, 1.0, 1.0), *, specular_power: float = 30.0, ambient: float = 0.2,
                 diffuse: float = 0.8, lights: list[Light] | None = None, up=(0.0, 0.0, 1.0),
                 supersample: int = 1) -> list[np.ndarray]:
    """Render ``mesh`` from each camera.

    Parameters
    ----------
    mesh : triangle mesh; with ``uv`` and ``texture`` it is textured, else it takes its vertex
        colours or a light grey. Normals: ``mesh.normals`` if set, else :func:`smooth_normals`.
    cameras : OpenCV-axes pinhole cameras; each image has that camera's width and height.
    specular : specular coefficient (white highlights); 0 = matte.
    background : RGB in 0..1 given to pixels the mesh does not cover (their alpha is 0).
    specular_power, ambient, diffuse : Phong constants.
    lights : lights fixed in the world; default :func:`default_lights` for ``up``.
    supersample : s > 1 renders s x s samples a pixel and averages them (anti-aliased colour,
        fractional alpha at the silhouette); 1 = one sample at the pixel centre.

    Returns
    -------
    list of (H, W, 4) uint8 RGBA, row 0 at the top; straight (not premultiplied) alpha, so
    ``rgb * a + background * (1 - a)`` is the picture on the background.
    """
    if not cameras:
        return []
    s = int(supersample)
    if s < 1:
        raise ValueError("supersample must be >= 1")
    lights = default_lights(up) if lights is None else lights
    bg = np.clip(np.asarray(background, float).reshape(3), 0.0, 1.0)
    win = OffscreenWindow(alpha=True)
    try:
        actor, texture = _build_actor(mesh)
        win.renderer.AddActor(actor)
        win.renderer.TwoSidedLightingOn()
        center, radius = bounding_sphere(mesh)
        for light in lights:
            vl = vtk.vtkLight()
            vl.SetLightTypeToSceneLight()
            vl.SetPositional(False)
            d = np.asarray(light.direction, float) / np.linalg.norm(light.direction)
            vl.SetPosition(*(center + 10.0 * radius * d))
            vl.SetFocalPoint(*center)
            vl.SetIntensity(float(light.intensity))
            vl.SetColor(1.0, 1.0, 1.0)
            win.renderer.AddLight(vl)
        prop = actor.GetProperty()
        out = []
        bounds = mesh.bounds()
        for cam in cameras:
            big = cam.scaled(cam.width * s, cam.height * s) if s > 1 else cam
            set_vtk_camera(win.renderer.GetActiveCamera(), big, *near_far(big, bounds))
            # pass 1: texture x (ambient + diffuse)
            actor.SetTexture(texture)
            prop.SetAmbient(ambient)
            prop.SetDiffuse(diffuse)
            prop.SetSpecular(0.0)
            base = win.render(big.width, big.height, rgba=True).astype(np.float32) / 255.0
            rgb = base[..., :3]
            alpha = base[..., 3:4]
            if specular > 0:
                # pass 2: white specular highlights only
                actor.SetTexture(None)
                prop.SetAmbient(0.0)
                prop.SetDiffuse(0.0)
                prop.SetSpecular(float(specular))
                prop.SetSpecularColor(1.0, 1.0, 1.0)
                prop.SetSpecularPower(float(specular_power))
                spec = win.render(big.width, big.height, rgba=True)[..., :3].astype(np.float32) / 255.0
                rgb = np.minimum(rgb + spec, 1.0)
            alpha = (alpha > 0.5).astype(np.float32)
            if s > 1:
                h, w = cam.height, cam.width
                rgb_a = (rgb * alpha).reshape(h, s, w, s, 3).mean((1, 3))
                alpha = alpha.reshape(h, s, w, s, 1).mean((1, 3))
                rgb = np.where(alpha > 0, rgb_a / np.maximum(alpha, 1e-6), 0.0)
            rgb = np.where(alpha > 0, rgb, bg)
            img = np.concatenate([rgb, alpha], -1)
            out.append(np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8))
        return out
    finally:
        win.close()


def _build_actor(mesh: Mesh) -> tuple[vtk.vtkActor, vtk.vtkTexture | None]:
    """The mesh as a Phong-shaded actor with normals and tcoords, and its texture (not set)."""
    if mesh.n_faces == 0:
        raise ValueError("the mesh has no triangles to render")
    pd = mesh_polydata(mesh.points, mesh.faces)
    pdata = pd.GetPointData()
    normals = mesh.normals if mesh.normals is not None else smooth_normals(mesh.points, mesh.faces)
    pdata.SetNormals(numpy_to_vtk(np.ascontiguousarray(normals, np.float32), deep=True))
    texture = None
    mapper = vtk.vtkPolyDataMapper()
    mapper.SetInputData(pd)
    mapper.ScalarVisibilityOff()
    if mesh.uv is not None and mesh.texture is not None:
        pdata.SetTCoords(numpy_to_vtk(np.ascontiguousarray(mesh.uv, np.float32), deep=True))
        texture = _vtk_texture(mesh.texture)
    elif mesh.colors is not None:
        cols = numpy_to_vtk(np.ascontiguousarray(mesh.colors, np.uint8), deep=True,
                            array_type=vtk.VTK_UNSIGNED_CHAR)
        pdata.SetScalars(cols)
        mapper.ScalarVisibilityOn()
        mapper.SetColorModeToDirectScalars()
        mapper.SetScalarModeToUsePointData()
    actor = vtk.vtkActor()
    actor.SetMapper(mapper)
    prop = actor.GetProperty()
    prop.SetInterpolationToPhong()
    grey = texture is None and mesh.colors is None
    prop.SetColor(*((0.8, 0.8, 0.8) if grey else (1.0, 1.0, 1.0)))
    prop.BackfaceCullingOff()
    return actor, texture


def scan_colours(mesh: Mesh, seed: int = 0, min_faces: int = 50_000, texture_size: int = 1024) -> Mesh:
    """A copy of ``mesh`` that looks like a colour scan: per-vertex colours, no uv, no texture.

    The mesh is split into four at edge midpoints until it has at least ``min_faces`` triangles
    (a scan's colour detail is as fine as its vertices), given normals sharp at creases
    (:func:`split_creases`, as the textured capture does), and each vertex takes the colour of
    the seeded procedural texture (:func:`viewer.geometry.uvatlas.procedural_texture`) at its
    direction from the bounding-sphere centre (longitude, latitude): detail at several scales that
    no uv atlas of ours was made for, so a renderer has to find its own.
    """
    from ..geometry.primitives import procedural_texture, subdivide

    if mesh.n_faces == 0:
        raise ValueError("the mesh has no triangles")
    levels = 0
    while mesh.n_faces * 4 ** levels < min_faces and levels < 8:
        levels += 1
    base = Mesh(mesh.points, mesh.faces, name=mesh.name, source=mesh.source)
    fine = split_creases(subdivide(base, levels) if levels else base)
    center, _ = bounding_sphere(fine)
    d = np.asarray(fine.points, float) - center
    r = np.maximum(np.linalg.norm(d, axis=1), 1e-300)
    u = (np.arctan2(d[:, 1], d[:, 0]) / (2 * np.pi)) % 1.0
    v = np.arccos(np.clip(d[:, 2] / r, -1.0, 1.0)) / np.pi  # 0 at +z (row 0 = top of the image)
    tex = procedural_texture(texture_size, seed)
    rows = np.clip((v * texture_size).astype(int), 0, texture_size - 1)
    cols = np.clip((u * texture_size).astype(int), 0, texture_size - 1)
    fine.colors = np.ascontiguousarray(tex[rows, cols, :3])
    fine.uv, fine.texture = None, None
    return fine
