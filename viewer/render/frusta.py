"""Cameras of a view set in the 3D view: frusta, photo thumbnails, sparse points, picking.

Each frame's camera is a wireframe pyramid from its centre to the four image corners on a plane
``scale`` world units ahead (depth along the camera's +z), placed with the camera's own
intrinsics (the inverse of K at the pixel corners (0, 0), (W, 0), (W, H), (0, H)), and a small
triangle above the top edge that marks the image's up. With thumbnails on, every photo (shrunk to
~64 px in a worker) is a textured quad on its frustum's far face; all quads share one texture
atlas and one actor, so 200 frames cost two hundred tiny line actors and one quad actor.

Coordinates: world = the view set's own frame; cameras use OpenCV axes (+x right, +y down,
+z forward), pixel rows from the top, as in :mod:`viewer.model.camera`.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from ..model import Camera, ViewSetLayer
from .vtkutil import vtk

__all__ = ["frustum_points", "thumbnail_atlas", "pick_frame", "attach_frame_picking", "FrustaVisual",
           "HELD_OUT_COLOR", "SELECTED_COLOR", "THUMB_SIZE"]

HELD_OUT_COLOR = (0.35, 0.72, 1.0)
"""Frusta of the "val" and "test" frames (train frames use the layer's colour)."""
SELECTED_COLOR = (1.0, 1.0, 1.0)
THUMB_SIZE = 64
"""Longest side of a thumbnail in pixels."""

# pyramid edges (apex 0, corners 1..4 clockwise from the top-left) and the up marker (5, 6, 7)
_LINES = [(0, 1), (0, 2), (0, 3), (0, 4), (1, 2), (2, 3), (3, 4), (4, 1), (5, 7), (7, 6), (6, 5)]


def frustum_points(camera: Camera, scale: float) -> np.ndarray:
    """(8, 3) world points of one frustum: the centre, the image corners at depth ``scale``
    (top-left, top-right, bottom-right, bottom-left) and the up marker (two points on the top
    edge and a tip above it)."""
    w, h = float(camera.width), float(camera.height)
    uv = np.array([[0, 0], [w, 0], [w, h], [0, h], [0.3 * w, 0], [0.7 * w, 0], [0.5 * w, -0.22 * h]])
    kinv = np.linalg.inv(camera.K)
    rays = np.c_[uv, np.ones(len(uv))] @ kinv.T  # camera-space directions with z = 1
    pc = np.vstack([np.zeros(3), rays * scale])
    return pc @ camera.c2w[:3, :3].T + camera.c2w[:3, 3]


def _polydata(points: np.ndarray, lines: list[tuple[int, int]] | None = None,
              quads: np.ndarray | None = None, tcoords: np.ndarray | None = None) -> vtk.vtkPolyData:
    from vtk.util import numpy_support

    pts = vtk.vtkPoints()
    pts.SetData(numpy_support.numpy_to_vtk(np.ascontiguousarray(points, np.float64), deep=True))
    poly = vtk.vtkPolyData()
    poly.SetPoints(pts)
    if lines:
        cells = vtk.vtkCellArray()
        for a, b in lines:
            cells.InsertNextCell(2, (a, b))
        poly.SetLines(cells)
    if quads is not None and len(quads):
        cells = vtk.vtkCellArray()
        for q in quads:
            cells.InsertNextCell(4, [int(i) for i in q])
        poly.SetPolys(cells)
    if tcoords is not None:
        tc = numpy_support.numpy_to_vtk(np.ascontiguousarray(tcoords, np.float32), deep=True)
        tc.SetName("uv")
        poly.GetPointData().SetTCoords(tc)
    return poly


def _shrink(frame: Any, background, size: int) -> np.ndarray:
    """One frame's photo composited over ``background``, longest side ``size``: (h, w, 3) uint8."""
    from PIL import Image

    rgba = np.asarray(frame.rgba)
    h, w = rgba.shape[:2]
    f = size / max(h, w)
    tw, th = max(1, round(w * f)), max(1, round(h * f))
    im = Image.fromarray(rgba, "RGBA").resize((tw, th), Image.Resampling.BOX)
    small = np.asarray(im, np.float32) / 255.0
    if frame.mask is not None:
        m = Image.fromarray(np.asarray(frame.mask, np.uint8) * 255).resize((tw, th), Image.Resampling.BOX)
        alpha = np.asarray(m, np.float32)[..., None] / 255.0
    else:
        alpha = small[..., 3:4]
    rgb = small[..., :3] * alpha + np.asarray(background, np.float32) * (1 - alpha)
    return np.clip(rgb * 255.0 + 0.5, 0, 255).astype(np.uint8)


def thumbnail_atlas(frames: list, background=(1.0, 1.0, 1.0), size: int = THUMB_SIZE
                    ) -> tuple[np.ndarray, np.ndarray]:
    """All frames' photos shrunk into one texture (run it in a worker: it reads every pixel).

    Returns
    -------
    atlas : (H, W, 3) uint8, row 0 at the top; one ``size + 2`` px slot per frame (1 px border).
    uv : (N, 4, 2) float32 texture coordinates (origin bottom-left, as VTK wants them) of each
        frame's image corners in :func:`frustum_points` order (top-left, top-right,
        bottom-right, bottom-left), at texel centres so slots never bleed into each other.
    """
    n = len(frames)
    cols = max(1, int(np.ceil(np.sqrt(n))))
    rows = max(1, int(np.ceil(n / cols)))
    slot = size + 2
    atlas = np.zeros((rows * slot, cols * slot, 3), np.uint8)
    uv = np.zeros((n, 4, 2), np.float32)
    ah, aw = atlas.shape[:2]
    for i, frame in enumerate(frames):
        img = _shrink(frame, background, size)
        th, tw = img.shape[:2]
        y0, x0 = (i // cols) * slot + 1, (i % cols) * slot + 1
        atlas[y0:y0 + th, x0:x0 + tw] = img
        u0, u1 = (x0 + 0.5) / aw, (x0 + tw - 0.5) / aw
        v0, v1 = 1.0 - (y0 + 0.5) / ah, 1.0 - (y0 + th - 0.5) / ah  # top row, bottom row
        uv[i] = [(u0, v0), (u1, v0), (u1, v1), (u0, v1)]
    return atlas, uv


def _point_segment_distance(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    ab = b - a
    t = np.clip(np.sum((p - a) * ab, -1) / np.maximum(np.sum(ab * ab, -1), 1e-12), 0, 1)
    return np.linalg.norm(a + t[..., None] * ab - p, axis=-1)


def _inside(p: np.ndarray, quad: np.ndarray) -> bool:
    """Point (2,) inside a convex quad (4, 2) of either winding."""
    e = np.roll(quad, -1, 0) - quad
    c = e[:, 0] * (p[1] - quad[:, 1]) - e[:, 1] * (p[0] - quad[:, 0])
    return bool(np.all(c >= 0) or np.all(c <= 0))


def pick_frame(frusta: list[np.ndarray], view: Camera, x: float, y: float, tolerance: float = 6.0) -> int | None:
    """The frustum under pixel (``x``, ``y``) (rows from the top) of the camera ``view``.

    A click inside a frustum's projected far face, or within ``tolerance`` pixels of one of its
    edges, hits it; of several hits the one whose far face is nearest the viewer wins. ``frusta``
    holds :func:`frustum_points` of each frame; frusta partly behind the viewer are skipped.
    """
    p = np.array([x, y], float)
    best, best_depth = None, np.inf
    for i, pts in enumerate(frusta):
        uv, z = view.project(pts[:5])
        if np.any(z <= 1e-9) or not np.all(np.isfinite(uv)):
            continue
        a = np.array([uv[s] for s, _ in _LINES[:8]])
        b = np.array([uv[t] for _, t in _LINES[:8]])
        hit = _inside(p, uv[1:5]) or float(_point_segment_distance(p, a, b).min()) <= tolerance
        depth = float(z[1:5].mean())
        if hit and depth < best_depth:
            best, best_depth = i, depth
    return best


def attach_frame_picking(view, interactor, on_pick: Callable[[ViewSetLayer, int], None],
                         slop: int = 3) -> None:
    """A left click on a frustum of the 3D ``view`` (press and release less than ``slop``
    pixels apart, so a rotating drag never picks) calls ``on_pick(layer, frame_index)``.

    The observers sit beside the interactor style's, which still rotates the camera on a drag.
    """
    state: dict[str, Any] = {"down": None}

    def press(obj, evt) -> None:
        state["down"] = interactor.GetEventPosition()

    def release(obj, evt) -> None:
        down, state["down"] = state["down"], None
        if down is None:
            return
        x, y = interactor.GetEventPosition()
        if abs(x - down[0]) + abs(y - down[1]) >= slop:
            return
        hit = view.pick_frame(x, y)
        if hit is not None:
            on_pick(*hit)

    # passive: the interactor style grabs the focus on button down, and while it holds it only
    # passive observers see the events besides it
    for event, cb in (("LeftButtonPressEvent", press), ("LeftButtonReleaseEvent", release)):
        interactor.GetCommand(interactor.AddObserver(event, cb)).PassiveObserverOn()


class FrustaVisual:
    """The VTK actors of one :class:`ViewSetLayer`: a line actor per frame, one quad actor for
    the thumbnails (built through ``run_async``) and one for the sparse points.

    ``props`` lists every actor (the 3D view toggles them with the layer's visibility); an actor
    with ``_shown = False`` stays hidden whatever the layer's visibility.
    """

    def __init__(self, renderer, layer: ViewSetLayer, render: Callable[[], None],
                 run_async: Callable[[Callable[[], Any], Callable[[Any], None]], None]) -> None:
        self.renderer, self.layer, self._render, self._async = renderer, layer, render, run_async
        self.frames = list(layer.data.frames)
        self.frustum_actors: list = []
        self.props: list = []
        self.frusta: list[np.ndarray] = []
        self._atlas: tuple[np.ndarray, np.ndarray] | None = None
        self._texture = None
        self._closed = False
        self.quads = vtk.vtkActor()
        self.quads._shown = False
        self.quads.PickableOff()
        qp = self.quads.GetProperty()
        qp.SetAmbient(1.0)
        qp.SetDiffuse(0.0)
        qp.SetSpecular(0.0)
        qp.SetColor(1.0, 1.0, 1.0)
        self.quads.SetMapper(vtk.vtkPolyDataMapper())
        for frame in self.frames:
            actor = vtk.vtkActor()
            actor.SetMapper(vtk.vtkPolyDataMapper())
            actor.GetProperty().SetLighting(False)
            actor.PickableOff()
            self.frustum_actors.append(actor)
            renderer.AddActor(actor)
        renderer.AddActor(self.quads)
        self.props = [*self.frustum_actors, self.quads]
        self.points = self._points_actor()
        if self.points is not None:
            renderer.AddActor(self.points)
            self.props.append(self.points)
        self.rebuild()

    def _points_actor(self):
        pc = self.layer.data.points
        if pc is None or not pc.n_points:
            return None
        import pyvista as pv

        pd = pv.PolyData(np.asarray(pc.points, float))
        mapper = vtk.vtkPolyDataMapper()
        mapper.SetInputData(pd)
        if pc.colors is not None:
            pd.point_data["rgb"] = pc.colors
            mapper.SetScalarModeToUsePointFieldData()
            mapper.SelectColorArray("rgb")
            mapper.SetColorModeToDirectScalars()
            mapper.ScalarVisibilityOn()
        else:
            mapper.ScalarVisibilityOff()
        actor = vtk.vtkActor()
        actor.SetMapper(mapper)
        actor.PickableOff()
        p = actor.GetProperty()
        p.SetRepresentationToPoints()
        p.SetPointSize(3.0)
        p.SetRenderPointsAsSpheres(True)
        p.SetColor(0.85, 0.85, 0.85)
        return actor

    # geometry ------------------------------------------------------------------------------------
    def rebuild(self, *_: object) -> None:
        """Recompute every frustum at the layer's scale (numpy; cheap) and restyle."""
        scale = self.layer.frustum_scale
        self.frusta = [frustum_points(f.camera, scale) for f in self.frames]
        for actor, pts in zip(self.frustum_actors, self.frusta):
            actor.GetMapper().SetInputData(_polydata(pts, _LINES))
        self._update_quads()
        self.restyle()

    def _update_quads(self) -> None:
        if self._atlas is None:
            return
        _, uv = self._atlas
        sel = self.layer.selected_frame
        keep = [i for i in range(len(self.frames)) if i != sel]  # the photo of the camera looked through
        pts = np.concatenate([self.frusta[i][1:5] for i in keep]) if keep else np.zeros((0, 3))
        tc = np.concatenate([uv[i] for i in keep]) if keep else np.zeros((0, 2), np.float32)
        quads = np.arange(len(pts)).reshape(-1, 4)
        self.quads.GetMapper().SetInputData(_polydata(pts, quads=quads, tcoords=tc))

    def restyle(self, *_: object) -> None:
        sel = self.layer.selected_frame
        for i, (actor, frame) in enumerate(zip(self.frustum_actors, self.frames)):
            p = actor.GetProperty()
            if i == sel:
                color, width = SELECTED_COLOR, 3.0
            else:
                color, width = (self.layer.color if frame.split == "train" else HELD_OUT_COLOR), 1.5
            p.SetColor(*color)
            p.SetLineWidth(width)
            p.SetOpacity(self.layer.opacity)
        self.quads.GetProperty().SetOpacity(self.layer.opacity)
        if self.points is not None:
            self.points.GetProperty().SetOpacity(self.layer.opacity)
        self.thumbnails()

    def selection_changed(self, *_: object) -> None:
        self._update_quads()
        self.restyle()

    # thumbnails ----------------------------------------------------------------------------------
    def thumbnails(self, *_: object) -> None:
        """Show or hide the photos; the atlas is built once, in a worker, when first wanted."""
        want = bool(self.layer.show_thumbnails)
        if want and self._atlas is None:
            if not getattr(self, "_building", False):
                self._building = True
                frames, bg = self.frames, self.layer.data.background
                self._async(lambda: thumbnail_atlas(frames, bg), self._atlas_done)
            want = False
        self.quads._shown = want
        self.quads.SetVisibility(want and self.layer.visible)

    def _atlas_done(self, result) -> None:
        self._building = False
        if self._closed:
            return
        import pyvista as pv

        self._atlas = result
        self._texture = pv.Texture(np.ascontiguousarray(result[0]))
        self._texture.SetInterpolate(True)
        self.quads.SetTexture(self._texture)
        self._update_quads()
        self.thumbnails()
        self._render()

    def close(self) -> None:
        self._closed = True
        for prop in self.props:
            self.renderer.RemoveViewProp(prop)
