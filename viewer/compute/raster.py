"""Texture-coordinate maps of a mesh seen by a :class:`~viewer.model.camera.Camera`.

VTK draws the mesh offscreen (EGL, no X server) with every triangle's index + 1 as its flat
24-bit colour; the ids are read back and each covered pixel centre's ray is intersected with its
triangle in numpy (float64), which gives exact barycentrics, so the interpolated uv and depth are
exact to rounding and not limited by the GPU's interpolation precision. Closed, consistently
oriented meshes seen from outside are drawn with back faces culled (same result, ~1.7x faster).
Measured with ``bench/raster.py``.

Frames: the camera follows the OpenCV convention of :mod:`viewer.model.camera` (+x right,
+y down, +z forward; pixel (i, j) has its centre at (i + 0.5, j + 0.5)); every output array has
row 0 at the TOP of the image, as a photo does.

Examples
--------
>>> rast = UVRasterizer(mesh)                              # doctest: +SKIP
>>> m = rast.rasterize(camera, 256, 256)                   # doctest: +SKIP
>>> m.uv.shape, m.mask.shape, m.face.dtype                 # doctest: +SKIP
((256, 256, 2), (256, 256), dtype('int32'))
>>> rast.close()                                           # doctest: +SKIP
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np
from vtk.util.numpy_support import numpy_to_vtk, numpy_to_vtkIdTypeArray, vtk_to_numpy

from ..model.camera import Camera
from ..geometry.normals import closed_orientation
from ..model.geometry import Mesh
from .vtkbase import quiet_vtk, vtk

__all__ = ["UVMap", "UVRasterizer", "mesh_polydata", "set_vtk_camera", "near_far", "OffscreenWindow"]

_MAX_FACES = (1 << 24) - 2  # ids + 1 must fit in 24 bits
_LITTLE_ENDIAN = sys.byteorder == "little"


@dataclass
class UVMap:
    """What a mesh covers in one view; row 0 of every array is the top of the image.

    Attributes
    ----------
    uv : (H, W, 2) float32 texture coordinates in 0..1, origin bottom-left like ``Mesh.uv``;
        0 where not covered.
    mask : (H, W) bool, True where the mesh covers the pixel centre.
    face : (H, W) int32 triangle index into ``mesh.faces``, -1 where not covered.
    depth : (H, W) float32 camera-space z (distance along +z forward, world units), 0 where
        not covered.
    coverage : (H, W) float32 share of each pixel's area the mesh covers, from s x s samples a
        pixel (``rasterize(..., coverage=s)``), or None. A camera's photo blends the colours at
        the silhouette by this share; the centre-sampled ``mask`` cannot say how much.
    """

    uv: np.ndarray
    mask: np.ndarray
    face: np.ndarray
    depth: np.ndarray
    coverage: np.ndarray | None = None


# --- shared VTK helpers (also used by capture.py) -------------------------------------------
def mesh_polydata(points: np.ndarray, faces: np.ndarray) -> vtk.vtkPolyData:
    """A vtkPolyData of triangles: (N, 3) float points, (M, 3) int vertex indices."""
    pd = vtk.vtkPolyData()
    pts = vtk.vtkPoints()
    pts.SetData(numpy_to_vtk(np.ascontiguousarray(points, np.float64), deep=True))
    pd.SetPoints(pts)
    faces = np.asarray(faces, np.int64).reshape(-1, 3)
    cells = vtk.vtkCellArray()
    offsets = numpy_to_vtkIdTypeArray(np.arange(0, 3 * len(faces) + 1, 3, dtype=np.int64), deep=True)
    conn = numpy_to_vtkIdTypeArray(np.ascontiguousarray(faces.reshape(-1)), deep=True)
    cells.SetData(offsets, conn)
    pd.SetPolys(cells)
    return pd


def near_far(camera: Camera, bounds: list[float] | np.ndarray) -> tuple[float, float]:
    """Clipping distances (world units, along +z) enclosing the box ``[x0, x1, y0, y1, z0, z1]``.

    The box corners' camera-space depths, widened by 1 %; ``near`` is kept at or above
    ``far * 1e-4`` so the depth buffer keeps its precision when the camera is inside the box.
    """
    b = np.asarray(bounds, float).reshape(3, 2)
    corners = np.stack(np.meshgrid(b[0], b[1], b[2], indexing="ij"), -1).reshape(-1, 3)
    w2c = camera.w2c
    z = corners @ w2c[2, :3] + w2c[2, 3]
    span = max(float(np.ptp(b, axis=1).max()), 1e-9)
    far = max(float(z.max()) + 0.01 * span, 1e-6)
    near = max(float(z.min()) - 0.01 * span, far * 1e-4)
    return near, far


def set_vtk_camera(vcam: vtk.vtkCamera, camera: Camera, near: float, far: float) -> None:
    """Point ``vcam`` exactly as ``camera`` looks: the pose as VTK's view transform (eye space
    with OpenGL axes) and ``camera.projection_matrix`` as the explicit projection, so a world
    point lands on the pixel :meth:`Camera.project` gives (full window = the camera's image)."""
    p = camera.vtk_params(distance=0.5 * (near + far))  # a focal point at the scene's scale
    vcam.SetPosition(*p["position"])
    vcam.SetFocalPoint(*p["focal_point"])
    vcam.SetViewUp(*p["view_up"])
    vcam.SetClippingRange(near, far)
    m = vtk.vtkMatrix4x4()
    proj = camera.projection_matrix(near, far)
    for r in range(4):
        for c in range(4):
            m.SetElement(r, c, float(proj[r, c]))
    vcam.SetExplicitProjectionTransformMatrix(m)
    vcam.SetUseExplicitProjectionTransformMatrix(True)


class OffscreenWindow:
    """One offscreen VTK render window (EGL without a display), no anti-aliasing, reused.

    Not thread-safe: its OpenGL context belongs to the thread that first renders with it;
    create and use it in one thread.
    """

    def __init__(self, alpha: bool = False) -> None:
        quiet_vtk()
        self.renderer = vtk.vtkRenderer()
        self.renderer.SetBackground(0.0, 0.0, 0.0)
        self.renderer.SetBackgroundAlpha(0.0)
        self.renderer.SetUseFXAA(False)
        self.renderer.AutomaticLightCreationOff()
        self.window = vtk.vtkRenderWindow()
        self.window.SetOffScreenRendering(True)
        self.window.SetMultiSamples(0)
        self.window.SetAlphaBitPlanes(bool(alpha))
        self.window.SetPointSmoothing(False)
        self.window.SetLineSmoothing(False)
        self.window.SetPolygonSmoothing(False)
        self.window.AddRenderer(self.renderer)
        self._size: tuple[int, int] | None = None
        self._buf = vtk.vtkUnsignedCharArray()

    def render(self, width: int, height: int, rgba: bool = False) -> np.ndarray:
        """Render and read back: (H, W, 3|4) uint8, row 0 at the TOP."""
        if self._size != (width, height):
            self.window.SetSize(int(width), int(height))
            self._size = (width, height)
        self.window.Render()
        if rgba:
            self.window.GetRGBACharPixelData(0, 0, width - 1, height - 1, 0, self._buf, 0)
        else:
            self.window.GetPixelData(0, 0, width - 1, height - 1, 0, self._buf, 0)
        img = vtk_to_numpy(self._buf).reshape(height, width, -1)
        return np.ascontiguousarray(img[::-1])  # a copy; OpenGL rows run bottom to top

    def close(self) -> None:
        if self.window is not None:
            self.window.Finalize()
            self.window = None
            self.renderer = None


# --- the rasterizer -------------------------------------------------------------------------
class UVRasterizer:
    """Per-pixel uv, face id and depth of a textured mesh for any :class:`Camera`.

    Parameters
    ----------
    mesh : a :class:`Mesh` with ``uv`` (N, 2) per vertex (origin bottom-left) and at most
        16,777,214 triangles. A mesh whose faces share vertices across uv seams has to be split
        there first (e.g. :func:`viewer.geometry.uvatlas.parametrize`): uv is per vertex.

    Raises
    ------
    ValueError : the mesh has no uv, no faces or too many faces.

    Notes
    -----
    A closed, consistently oriented mesh seen from outside its bounding box is drawn with the
    triangles facing away culled (they can never be the nearest surface there).

    Not thread-safe: the offscreen OpenGL context belongs to one thread. A worker thread may own
    a rasterizer if it creates it, calls :meth:`rasterize` and :meth:`close` itself.
    """

    def __init__(self, mesh: Mesh) -> None:
        if mesh.uv is None:
            raise ValueError("the mesh has no texture coordinates (uv): parametrize it first")
        faces = np.asarray(mesh.faces, np.int64)
        if len(faces) == 0:
            raise ValueError("the mesh has no triangles")
        if len(faces) > _MAX_FACES:
            raise ValueError(f"too many triangles ({len(faces)}; at most {_MAX_FACES})")
        pts = np.asarray(mesh.points, np.float64)
        self.n_faces = len(faces)
        self.bounds = mesh.bounds()
        self._tables(pts, faces, np.asarray(mesh.uv, np.float64))
        self._win = OffscreenWindow()
        # one vertex per face corner, coloured with the face's id + 1: flat point colours draw
        # faster on llvmpipe than cell colours (a texture lookup per fragment)
        corner = np.ascontiguousarray(faces.reshape(-1))
        # float64: VTK shifts and scales the coordinates for the GPU (meshes far from the origin)
        pd = mesh_polydata(pts[corner], np.arange(len(corner)).reshape(-1, 3))
        ids = np.repeat(np.arange(1, len(faces) + 1, dtype=np.uint32), 3)
        rgb = np.stack([ids & 255, (ids >> 8) & 255, (ids >> 16) & 255], 1).astype(np.uint8)
        colors = numpy_to_vtk(rgb, deep=True, array_type=vtk.VTK_UNSIGNED_CHAR)
        colors.SetName("face_id")
        pd.GetPointData().SetScalars(colors)
        mapper = vtk.vtkPolyDataMapper()
        mapper.SetInputData(pd)
        mapper.SetScalarModeToUsePointData()
        mapper.SetColorModeToDirectScalars()
        mapper.ScalarVisibilityOn()
        mapper.InterpolateScalarsBeforeMappingOff()
        mapper.SetStatic(True)  # the data never changes: skip the pipeline checks every frame
        actor = vtk.vtkActor()
        actor.SetMapper(mapper)
        prop = actor.GetProperty()
        prop.LightingOff()
        prop.SetInterpolationToFlat()
        prop.SetAmbient(0.0)
        prop.SetDiffuse(1.0)
        prop.SetSpecular(0.0)
        prop.BackfaceCullingOff()
        self._win.renderer.AddActor(actor)
        self._actor, self._pd = actor, pd
        self._orientation = closed_orientation(pts, faces)
        self._box = np.asarray(self.bounds, float).reshape(3, 2)

    def _tables(self, pts: np.ndarray, faces: np.ndarray, uv: np.ndarray) -> None:
        """Per-face constants (world frame) for the ray-triangle solve, computed once.

        ``geo`` (M, 12): corner A, plane normal n, and g1, g2 with b1 = (X - A)·g1,
        b2 = (X - A)·g2 the barycentrics of a point X of the plane. ``uvt`` (M, 6): uv at A and
        the uv edge vectors to B and C.
        """
        a, b, c = pts[faces[:, 0]], pts[faces[:, 1]], pts[faces[:, 2]]
        e1, e2 = b - a, c - a
        n = np.cross(e1, e2)
        nn = np.einsum("ij,ij->i", n, n)
        nn[nn == 0] = np.inf  # degenerate triangles: never hit (VTK does not draw them either)
        g1 = np.cross(e2, n) / nn[:, None]
        g2 = np.cross(n, e1) / nn[:, None]
        self._geo = np.ascontiguousarray(np.concatenate([a, n, g1, g2], 1))
        ua, ub, uc = uv[faces[:, 0]], uv[faces[:, 1]], uv[faces[:, 2]]
        self._uvt = np.ascontiguousarray(np.concatenate([ua, ub - ua, uc - ua], 1))

    def rasterize(self, camera: Camera, width: int | None = None, height: int | None = None,
                  coverage: int = 1) -> UVMap:
        """The :class:`UVMap` of ``camera`` (intrinsics scaled to ``width`` x ``height`` if given).

        Parameters
        ----------
        camera : pinhole camera, OpenCV axes, ``c2w`` camera-to-world.
        width, height : output size in pixels; one alone keeps the camera's aspect ratio.
        coverage : s > 1 also gives ``UVMap.coverage``, the share of s x s samples a pixel that
            the mesh covers (one more draw of s² times the pixels; with an odd s the middle
            sample is the pixel centre, so coverage > 0 wherever ``mask`` is set).
        """
        if self._win is None:
            raise RuntimeError("the rasterizer is closed")
        cam = camera.scaled(width, height) if (width or height) else camera
        w, h = cam.width, cam.height
        near, far = near_far(cam, self.bounds)
        self._set_culling(cam)
        s = int(coverage)
        cov = None
        if s > 1:
            # one draw at s x s samples a pixel; with an odd s the middle sample of each pixel is
            # its centre, so the pixel-centre ids come from the same draw (drawing both sizes in
            # turn costs VTK a framebuffer resize every frame: 3x slower in the learned view)
            code = self._codes(cam.scaled(w * s, h * s), near, far)
            covered = (code != 0).view(np.uint8)
            share = np.zeros((h, w), np.uint8)
            for dy in range(s):
                for dx in range(s):
                    share += covered[dy::s, dx::s]
            cov = share.astype(np.float32) / float(s * s)
            ids = self._ids(code[s // 2::s, s // 2::s]) if s % 2 else self._face_ids(cam, near, far)
        else:
            ids = self._face_ids(cam, near, far)
        flat = ids.reshape(-1)
        pix = np.flatnonzero(flat >= 0)
        fid = flat[pix]
        # ray through each covered pixel centre, world frame: X = o + t d, d has camera z = 1
        jj, ii = np.divmod(pix, w)
        xc = (ii + 0.5 - cam.cx) / cam.fx
        yc = (jj + 0.5 - cam.cy) / cam.fy
        r, o = cam.c2w[:3, :3], cam.c2w[:3, 3]
        d = [r[k, 0] * xc + r[k, 1] * yc + r[k, 2] for k in range(3)]
        g = np.take(self._geo, fid, axis=0)
        ao = [g[:, k] - o[k] for k in range(3)]  # A - o
        nd = g[:, 3] * d[0] + g[:, 4] * d[1] + g[:, 5] * d[2]
        nao = g[:, 3] * ao[0] + g[:, 4] * ao[1] + g[:, 5] * ao[2]
        with np.errstate(divide="ignore", invalid="ignore"):
            t = nao / nd
        t[~np.isfinite(t)] = 0.0  # a ray in the plane (edge-on triangle): take its corner
        x = [d[k] * t - ao[k] for k in range(3)]  # X - A
        b1 = x[0] * g[:, 6] + x[1] * g[:, 7] + x[2] * g[:, 8]
        b2 = x[0] * g[:, 9] + x[1] * g[:, 10] + x[2] * g[:, 11]
        # pixel centres the GPU gave a triangle lie inside it up to its sub-pixel snapping:
        # clamp into the triangle so the uv never leaves the triangle's chart
        np.clip(b1, 0.0, 1.0, out=b1)
        np.clip(b2, 0.0, 1.0, out=b2)
        s = b1 + b2
        over = s > 1.0
        b1[over] /= s[over]
        b2[over] /= s[over]
        ut = np.take(self._uvt, fid, axis=0)
        uv = np.zeros((h * w, 2), np.float32)
        uv[pix, 0] = ut[:, 0] + b1 * ut[:, 2] + b2 * ut[:, 4]
        uv[pix, 1] = ut[:, 1] + b1 * ut[:, 3] + b2 * ut[:, 5]
        depth = np.zeros(h * w, np.float32)
        depth[pix] = t
        return UVMap(uv=uv.reshape(h, w, 2), mask=(ids >= 0), face=np.ascontiguousarray(ids),
                     depth=depth.reshape(h, w), coverage=cov)

    def _codes(self, cam: Camera, near: float, far: float) -> np.ndarray:
        """(H, W) uint32 triangle index + 1 at each pixel centre of ``cam``, 0 where none."""
        set_vtk_camera(self._win.renderer.GetActiveCamera(), cam, near, far)
        img = self._win.render(cam.width, cam.height, rgba=True)  # (H, W, 4) uint8, row 0 at the top
        if _LITTLE_ENDIAN:  # R | G << 8 | B << 16 in one pass over the RGBA bytes
            return img.view(np.uint32)[..., 0] & 0xFFFFFF
        return (img[..., 0].astype(np.uint32) | (img[..., 1].astype(np.uint32) << 8)
                | (img[..., 2].astype(np.uint32) << 16))

    def _ids(self, code: np.ndarray) -> np.ndarray:
        """:meth:`_codes` as int32 triangle indices, -1 where none."""
        ids = code.astype(np.int32) - 1
        ids[ids >= self.n_faces] = -1  # never expected; keeps indexing safe
        return ids

    def _face_ids(self, cam: Camera, near: float, far: float) -> np.ndarray:
        """(H, W) int32 index of the triangle at each pixel centre of ``cam``, -1 where none."""
        return self._ids(self._codes(cam, near, far))

    def _set_culling(self, cam: Camera) -> None:
        """Skip the triangles that face away (about 1.7x faster on llvmpipe) when that cannot
        change the result: a closed, consistently oriented mesh seen from outside its box, where
        the first surface along every ray is always one facing the camera."""
        prop = self._actor.GetProperty()
        pad = 1e-6 * float(np.ptp(self._box, axis=1).max())
        outside = bool(np.any((cam.center < self._box[:, 0] - pad) | (cam.center > self._box[:, 1] + pad)))
        prop.SetBackfaceCulling(outside and self._orientation > 0)
        prop.SetFrontfaceCulling(outside and self._orientation < 0)

    def close(self) -> None:
        """Release the render window (call from the thread that used it)."""
        if self._win is not None:
            self._win.renderer.RemoveActor(self._actor)
            self._win.close()
            self._win = None

    def __enter__(self) -> "UVRasterizer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
