"""Detection boxes (:class:`~viewer.model.BoxesLayer`) in the views: in a slice view the rectangle
where its plane cuts each box, in the 3D view each box's twelve edges; both coloured by score
(:func:`~viewer.model.score_color`) with the score as text, the selected box drawn thicker.

A layer holds tens of boxes, not thousands: a change rebuilds its few actors; choosing another box
rebuilds only the lines (a text actor costs ~0.2 ms to make: 50 scores are ~10 ms per view).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from vtk.util.numpy_support import numpy_to_vtk, numpy_to_vtkIdTypeArray

from ..model import BoxesLayer, score_color
from .vtkutil import vtk

if TYPE_CHECKING:
    from .slice_view import SliceView
    from .view3d import View3D

__all__ = ["BoxSliceVisual", "add_boxes_3d", "look_at", "box_corners", "BOX_Z", "LINE_WIDTH", "SELECTED_WIDTH"]

BOX_Z = 0.65  # display depth in a slice view: over images and mesh cuts (0.6), under measurements (0.8)
LINE_WIDTH, SELECTED_WIDTH = 2.0, 4.0
_EDGES = np.array([[0, 1], [1, 3], [3, 2], [2, 0], [4, 5], [5, 7], [7, 6], [6, 4], [0, 4], [1, 5], [2, 6], [3, 7]])


def box_corners(box: np.ndarray) -> np.ndarray:
    """(8, 3) corners of one ``[r0, a0, s0, r1, a1, s1]`` box; corner ``k`` takes the max on axis
    ``a`` when bit ``2 - a`` of ``k`` is set."""
    lo, hi = np.asarray(box[:3], float), np.asarray(box[3:], float)
    return np.array([[(hi if i else lo)[0], (hi if j else lo)[1], (hi if k else lo)[2]]
                     for i in (0, 1) for j in (0, 1) for k in (0, 1)])


def _lines(points: np.ndarray, segments: np.ndarray, colors: np.ndarray, width: float, opacity: float) -> Any:
    """An actor of line ``segments`` (M, 2 point indices) over ``points`` (P, 3), one RGB uint8
    colour per segment."""
    poly = vtk.vtkPolyData()
    pts = vtk.vtkPoints()
    pts.SetData(numpy_to_vtk(np.ascontiguousarray(points, float), deep=True))
    cells = np.column_stack([np.full(len(segments), 2), segments]).astype(np.int64).ravel()
    arr = vtk.vtkCellArray()
    arr.SetCells(len(segments), numpy_to_vtkIdTypeArray(cells, deep=True))
    poly.SetPoints(pts)
    poly.SetLines(arr)
    rgb = numpy_to_vtk(np.ascontiguousarray(colors, np.uint8), deep=True)
    rgb.SetName("rgb")
    poly.GetCellData().SetScalars(rgb)
    mapper = vtk.vtkPolyDataMapper()
    mapper.SetInputData(poly)
    mapper.SetColorModeToDirectScalars()
    mapper.SetScalarModeToUseCellData()
    actor = vtk.vtkActor()
    actor.SetMapper(mapper)
    prop = actor.GetProperty()
    prop.SetLineWidth(width)
    prop.SetOpacity(opacity)
    prop.LightingOff()
    actor.PickableOff()
    return actor


def _rgb(score: float) -> np.ndarray:
    return np.round(np.asarray(score_color(score)) * 255).astype(np.uint8)


def _score_text(layer: BoxesLayer, i: int) -> str:
    label = layer.data.labels[i]
    return f"{label} {layer.data.scores[i]:.2f}" if label else f"{layer.data.scores[i]:.2f}"


def _style_text(tp: Any, score: float, opacity: float) -> None:
    tp.SetFontSize(13)
    tp.SetBold(True)
    tp.SetColor(*score_color(score))
    tp.SetOpacity(opacity)
    tp.SetShadow(True)


class BoxSliceVisual:
    """One boxes layer in one slice view: the rectangles where the view's plane cuts its boxes."""

    def __init__(self, view: "SliceView", layer: BoxesLayer) -> None:
        self.view, self.layer = view, layer
        self.actors: list = []  # lines
        self.texts: list = []
        self.cut: list[int] = []  # indices of the boxes drawn now (tests read it)
        self.depth: float | None = None
        for name in ("visible", "opacity", "min_score", "show_scores", "data"):
            getattr(layer.events, name).connect(self._redraw)
        layer.events.selected_box.connect(self._reselect)
        self.recut()

    def close(self) -> None:
        for slot in (self._redraw, self._reselect):
            self.layer.events.disconnect(slot)  # from every signal of the group
        self._clear(self.actors)
        self._clear(self.texts)

    def _clear(self, actors: list) -> None:
        for actor in actors:
            self.view.renderer.RemoveViewProp(actor)
        actors.clear()

    def recut(self) -> None:
        """Redraw if the plane moved (the view calls this on every cursor change)."""
        depth = float(self.view.n @ self.view.scene.cursor)
        if self.depth is not None and abs(depth - self.depth) < 1e-9:
            return
        self.depth = depth
        self._draw()

    def _redraw(self, *_: object) -> None:
        self._draw()
        self.view.request_render()

    def _reselect(self, *_: object) -> None:
        self._draw_lines()
        self.view.request_render()

    def _draw(self) -> None:
        view, layer = self.view, self.layer
        depth = float(view.n @ view.scene.cursor)
        self.cut, self.rects = [], []
        for i in layer.shown():
            corners = box_corners(layer.data.corners[i])
            along = corners @ view.n
            if along.min() - 1e-6 <= depth <= along.max() + 1e-6:
                u, v = corners @ view.u, corners @ view.v
                self.rects.append((i, u.min(), u.max(), v.min(), v.max()))
                self.cut.append(int(i))
        self._draw_lines()
        self._draw_texts()

    def _draw_lines(self) -> None:
        self._clear(self.actors)
        layer, rects = self.layer, self.rects
        if not rects or not layer.visible:
            return
        for selected in (False, True):
            chosen = [r for r in rects if (r[0] == layer.selected_box) == selected]
            if not chosen:
                continue
            pts = np.array([[x, y, BOX_Z] for _, u0, u1, v0, v1 in chosen
                            for x, y in ((u0, v0), (u1, v0), (u1, v1), (u0, v1))])
            segs = np.array([[4 * k + a, 4 * k + (a + 1) % 4] for k in range(len(chosen)) for a in range(4)])
            colors = np.repeat([_rgb(layer.data.scores[r[0]]) for r in chosen], 4, axis=0)
            self._add(self.actors, _lines(pts, segs, colors, SELECTED_WIDTH if selected else LINE_WIDTH,
                                          layer.opacity))

    def _draw_texts(self) -> None:
        self._clear(self.texts)
        layer = self.layer
        if layer.show_scores and layer.visible:
            for i, u0, u1, v0, v1 in self.rects:
                text = vtk.vtkTextActor()
                text.SetInput(_score_text(layer, i))
                text.GetPositionCoordinate().SetCoordinateSystemToWorld()
                text.GetPositionCoordinate().SetValue(float(u0), float(v1), BOX_Z)
                _style_text(text.GetTextProperty(), layer.data.scores[i], layer.opacity)
                text.GetTextProperty().SetVerticalJustificationToBottom()
                self._add(self.texts, text)

    def _add(self, actors: list, actor: Any) -> None:
        self.view.renderer.AddViewProp(actor)
        actors.append(actor)


def add_boxes_3d(view: "View3D", layer: BoxesLayer) -> None:
    """The 3D visual of a boxes layer (``View3D.VISUALS``): each shown box's edges, its score as a
    billboard text at its max corner; rebuilt on every change of the layer."""
    props = view.props[id(layer)]  # lines and texts: what the view shows and hides with the layer
    texts: list = []

    def build_lines(*_: object) -> None:
        for prop in [p for p in props if p not in texts]:
            view.renderer.RemoveViewProp(prop)
            props.remove(prop)
        lines = []
        shown = list(layer.shown())
        for selected in (False, True):
            chosen = [i for i in shown if (i == layer.selected_box) == selected]
            if not chosen:
                continue
            pts = np.concatenate([box_corners(layer.data.corners[i]) for i in chosen])
            segs = np.concatenate([_EDGES + 8 * k for k in range(len(chosen))])
            colors = np.repeat([_rgb(layer.data.scores[i]) for i in chosen], len(_EDGES), axis=0)
            lines.append(_lines(pts, segs, colors, SELECTED_WIDTH if selected else LINE_WIDTH, layer.opacity))
        for prop in lines:
            view.renderer.AddViewProp(prop)
        props.extend(lines)
        view._sync_visibility(layer)

    def build_texts(*_: object) -> None:
        for prop in texts:
            view.renderer.RemoveViewProp(prop)
            props.remove(prop)
        texts.clear()
        if layer.show_scores:
            for i in layer.shown():
                text = vtk.vtkBillboardTextActor3D()
                text.SetInput(_score_text(layer, i))
                text.SetPosition(*(float(v) for v in layer.data.corners[i][3:]))
                _style_text(text.GetTextProperty(), layer.data.scores[i], layer.opacity)
                text.PickableOff()
                texts.append(text)
                view.renderer.AddViewProp(text)
        props.extend(texts)
        build_lines()

    for name in ("opacity", "min_score", "show_scores", "data"):
        view._connect(layer, name, build_texts)
    view._connect(layer, "selected_box", build_lines)
    build_texts()


def look_at(view: "View3D", center: Any, size: float | None = None) -> None:
    """Turn the 3D camera to ``center`` (RAS mm) from where it looks now; with ``size`` (mm), come
    as close as shows about eight times that across, never farther than the camera already is."""
    cam = view.renderer.GetActiveCamera()
    center = np.asarray(center, float)
    pos, focal = np.array(cam.GetPosition()), np.array(cam.GetFocalPoint())
    direction = pos - focal
    dist = float(np.linalg.norm(direction)) or 1.0
    direction /= dist
    if size is not None and size > 0:
        half_angle = np.radians(cam.GetViewAngle()) / 2
        dist = min(dist, 4.0 * float(size) / max(np.tan(half_angle), 1e-3))
    cam.SetFocalPoint(*center)
    cam.SetPosition(*(center + direction * dist))
    view.renderer.ResetCameraClippingRange()
    if hasattr(view.renderer, "camera_set"):
        view.renderer.camera_set = True
    view._render()
