"""The 2D slice views: image and label layers cut through the crosshair, in one VTK renderer.

A :class:`SliceView` subscribes to a :class:`~viewer.model.Scene` (layers added, removed,
moved; the cursor) and to each layer's display events, and redraws only what changed. The same
class draws in the window (a pyvistaqt interactor) and offscreen for ``main.py screenshot``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import numpy as np
from psygnal import Signal

from ..model import BoxesLayer, ImageLayer, LabelLayer, Layer, MeshLayer, PointsLayer, Scene
from .slicing import SliceImage, extract_slice, plane_axes, slice_step
from .vtkutil import colormap_lut, image_2d, label_lut, vtk

if TYPE_CHECKING:
    from .slice_cuts import CutVisual

__all__ = ["SliceView", "VIEW_COLORS", "direction_letter"]

# Slicer's colours: each view's plane has one, and its crosshair line in the other views too
VIEW_COLORS = {"axial": (0.95, 0.33, 0.33), "sagittal": (0.93, 0.84, 0.3), "coronal": (0.43, 0.75, 0.35)}
_DIRS = {(0, 1): "R", (0, -1): "L", (1, 1): "A", (1, -1): "P", (2, 1): "S", (2, -1): "I"}


def direction_letter(vec: np.ndarray) -> str:
    """Anatomical letter(s) of a RAS direction, e.g. (-1, 0, 0) -> "L"."""
    w = int(np.argmax(np.abs(vec)))
    return _DIRS[(w, 1 if vec[w] > 0 else -1)]


def outline_of(labels: np.ndarray) -> np.ndarray:
    """Keep only boundary pixels of each label region (4-neighbourhood), zero elsewhere."""
    edge = np.zeros(labels.shape, bool)
    edge[:-1, :] |= labels[:-1, :] != labels[1:, :]
    edge[1:, :] |= labels[1:, :] != labels[:-1, :]
    edge[:, :-1] |= labels[:, :-1] != labels[:, 1:]
    edge[:, 1:] |= labels[:, 1:] != labels[:, :-1]
    edge[0, :] = edge[-1, :] = True
    edge[:, 0] = edge[:, -1] = True
    return np.where(edge, labels, 0)


def _mark_camera_set(renderer) -> None:
    # pyvista resets an unset camera to its isometric default on the first render
    if hasattr(renderer, "camera_set"):
        renderer.camera_set = True


class _SliceVisual:
    """One image or label layer in one slice view (a vtkImageSlice in the view's stack)."""

    def __init__(self, view: "SliceView", layer: ImageLayer | LabelLayer) -> None:
        self.view, self.layer = view, layer
        self.image = vtk.vtkImageData()
        self.mapper = vtk.vtkImageSliceMapper()
        self.mapper.SetInputData(self.image)
        self.mapper.SliceAtFocalPointOff()
        self.mapper.SliceFacesCameraOff()
        self.prop = vtk.vtkImageProperty()
        self.prop.UseLookupTableScalarRangeOn()
        self.actor = vtk.vtkImageSlice()
        self.actor.SetMapper(self.mapper)
        self.actor.SetProperty(self.prop)
        self.current: SliceImage | None = None
        self._label_max = 0
        if isinstance(layer, LabelLayer):
            self.prop.SetInterpolationTypeToNearest()
            self._label_max = int(np.max(layer.data.present_values()))
            for name in ("outline", "table", "opacity", "data", "edited"):
                getattr(layer.events, name).connect(self._restyle_and_recut)
        else:
            self.prop.SetInterpolationTypeToLinear()
            for name in ("window", "level", "colormap", "opacity"):
                getattr(layer.events, name).connect(self._restyle)
            layer.events.data.connect(self.recut)
        layer.events.visible.connect(self._restyle)
        self.recut()

    def close(self) -> None:
        # the group's own disconnect: iterating the group gives signal *names*, so a loop
        # over it calling ``.disconnect`` failed silently and left the slots connected
        for slot in (self._restyle, self._restyle_and_recut, self.recut):
            self.layer.events.disconnect(slot)

    def recut(self, *_: object) -> None:
        layer = self.layer
        data = layer.data
        labels = isinstance(layer, LabelLayer)
        cut = extract_slice(data.array, data.affine, self.view.orientation, self.view.scene.cursor, labels=labels)
        self.current = cut
        if cut is None:
            self.actor.SetVisibility(False)
            return
        pixels = cut.pixels
        if labels:
            if layer.outline:
                pixels = outline_of(pixels)
            if pixels.dtype.kind == "i" and pixels.dtype.itemsize > 4:
                pixels = pixels.astype(np.int32)
        image_2d(pixels, cut.origin, cut.spacing, 0.0, image=self.image)
        self._restyle()

    def _restyle_and_recut(self, *_: object) -> None:
        self.recut()
        self.view.request_render()

    def _restyle(self, *_: object) -> None:
        layer = self.layer
        if isinstance(layer, LabelLayer):
            # labels added since (painting a new one) must have a colour in the table
            self._label_max = max(self._label_max, max((lab.value for lab in layer.data.table), default=0))
            lut = label_lut(layer.data.table, layer.opacity, self._label_max)
            self.prop.SetOpacity(1.0)
        else:
            lut = colormap_lut(layer.colormap, layer.window, layer.level)
            self.prop.SetOpacity(layer.opacity)
        self.prop.SetLookupTable(lut)
        self.actor.SetVisibility(bool(layer.visible and self.current is not None))
        self.view.request_render()


def _wl_text(value: float) -> str:
    """Window or level for the corner: whole numbers for HU-sized values, three significant
    digits for small ones (a 0-1 saliency map or a normalised MR read "W 0 L 0" before)."""
    v = float(value)
    return f"{v:.0f}" if abs(v) >= 100 or v == int(v) else f"{v:.3g}"


class SliceView:
    """An axial, coronal or sagittal view of a scene, drawn into ``renderer``.

    Parameters
    ----------
    renderer : the vtkRenderer (e.g. ``plotter.renderer``) to draw into.
    scene : the scene to show; the view follows its layers and cursor.
    orientation : "axial", "coronal" or "sagittal".
    render : called when the view needs a new frame (the window's deferred render).
    """

    hovered = Signal(object)  # RAS (3,) under the mouse, or None
    #: layer type -> what draws it where it crosses the plane (an object with ``recut()`` and
    #: ``close()``); filled below, a new layer type adds one entry
    OVERLAYS: dict[type, Callable] = {}

    def __init__(self, renderer, scene: Scene, orientation: str,
                 render: Callable[[], None] | None = None) -> None:
        self.renderer, self.scene, self.orientation = renderer, scene, orientation
        self._render = render or (lambda: None)
        self.u, self.v, self.n = plane_axes(orientation)
        self.visuals: dict[int, _SliceVisual] = {}
        self.cuts: dict[int, "CutVisual"] = {}  # meshes and point clouds: where they cross the plane
        self.stack = vtk.vtkImageStack()
        renderer.AddViewProp(self.stack)
        renderer.SetBackground(0, 0, 0)
        cam = renderer.GetActiveCamera()
        cam.ParallelProjectionOn()
        self._fitted = False
        self._build_overlays()
        scene.layer_inserted.connect(self._on_inserted)
        scene.layer_removed.connect(self._on_removed)
        scene.layers_moved.connect(self._restack)
        scene.cursor_changed.connect(self._on_cursor)
        scene.measurements_changed.connect(self._draw_measurements)
        scene.cursor_changed.connect(self._draw_measurements)
        for layer in scene:
            self._on_inserted(0, layer)

    # overlays: crosshair, orientation letters, corner text ---------------------------------
    def _build_overlays(self) -> None:
        others = [o for o in ("axial", "coronal", "sagittal") if o != self.orientation]
        self.cross_lines: list[tuple[vtk.vtkLineSource, str]] = []
        self.cross_actors = []
        for other in others:
            src = vtk.vtkLineSource()
            mapper = vtk.vtkPolyDataMapper()
            mapper.SetInputConnection(src.GetOutputPort())
            actor = vtk.vtkActor()
            actor.SetMapper(mapper)
            actor.GetProperty().SetColor(*VIEW_COLORS[other])
            actor.GetProperty().SetLineWidth(1.0)
            actor.GetProperty().SetOpacity(0.8)
            actor.PickableOff()
            self.renderer.AddActor(actor)
            self.cross_lines.append((src, other))
            self.cross_actors.append(actor)
        self.letters = {}
        for side, pos, just in (("right", (0.985, 0.5), "right"), ("left", (0.015, 0.5), "left"),
                                ("top", (0.5, 0.975), "center"), ("bottom", (0.5, 0.025), "center")):
            t = vtk.vtkTextActor()
            t.GetPositionCoordinate().SetCoordinateSystemToNormalizedViewport()
            t.GetPositionCoordinate().SetValue(*pos)
            tp = t.GetTextProperty()
            tp.SetFontSize(15)
            tp.SetBold(True)
            tp.SetColor(0.95, 0.85, 0.35)
            getattr(tp, f"SetJustificationTo{just.capitalize() if just != 'center' else 'Centered'}")()
            tp.SetVerticalJustificationToCentered()
            self.renderer.AddViewProp(t)
            self.letters[side] = t
        self.letters["right"].SetInput(direction_letter(self.u))
        self.letters["left"].SetInput(direction_letter(-self.u))
        self.letters["top"].SetInput(direction_letter(self.v))
        self.letters["bottom"].SetInput(direction_letter(-self.v))
        self.corner = vtk.vtkCornerAnnotation()
        self.corner.SetMaximumFontSize(13)
        self.corner.GetTextProperty().SetColor(0.85, 0.85, 0.85)
        self.renderer.AddViewProp(self.corner)
        self._update_overlays()

    def _update_overlays(self) -> None:
        c = self.scene.cursor
        x, y = float(self.u @ c), float(self.v @ c)
        big = 1e5
        for src, other in self.cross_lines:
            # the other view's plane seen edge-on: a vertical or horizontal line through the cursor
            n_other = plane_axes(other)[2]
            if abs(n_other @ self.u) > abs(n_other @ self.v):
                src.SetPoint1(x, -big, 0.5)
                src.SetPoint2(x, big, 0.5)
            else:
                src.SetPoint1(-big, y, 0.5)
                src.SetPoint2(big, y, 0.5)
        w = {"axial": 2, "coronal": 1, "sagittal": 0}[self.orientation]
        letter = "RAS"[w] if c[w] >= 0 else "LPI"[w]  # Slicer's way: "L 96.0 mm", not "R -96.0"
        text = f"{self.orientation.capitalize()}  {letter} {abs(c[w]):.1f} mm"
        self.corner.SetText(2, text)  # upper left
        ref = self._top_image()
        self.corner.SetText(0, f"W {_wl_text(ref.window)}  L {_wl_text(ref.level)}" if ref else "")
        has = len(self.visuals) > 0
        for a in self.cross_actors:
            a.SetVisibility(has)

    def _top_image(self) -> ImageLayer | None:
        sel = self.scene.selected
        if isinstance(sel, ImageLayer):
            return sel
        imgs = [l for l in self.scene if isinstance(l, ImageLayer)]
        return imgs[-1] if imgs else None

    # scene events ---------------------------------------------------------------------------
    def _on_inserted(self, index: int, layer: Layer) -> None:
        overlay = next((make for kind, make in self.OVERLAYS.items() if isinstance(layer, kind)), None)
        if overlay is not None:
            if id(layer) not in self.cuts:
                self.cuts[id(layer)] = overlay(self, layer)
                self.request_render()
            return
        if not isinstance(layer, (ImageLayer, LabelLayer)) or id(layer) in self.visuals:
            return
        vis = _SliceVisual(self, layer)
        self.visuals[id(layer)] = vis
        if isinstance(layer, ImageLayer):
            layer.events.window.connect(self._on_wl)
            layer.events.level.connect(self._on_wl)
        self._restack()
        if not self._fitted:
            self.reset_camera()
        self._update_overlays()
        self.request_render()

    def _on_wl(self, *_: object) -> None:
        self._update_overlays()

    def _on_removed(self, index: int, layer: Layer) -> None:
        cut = self.cuts.pop(id(layer), None)
        if cut is not None:
            cut.close()
            self.request_render()
        vis = self.visuals.pop(id(layer), None)
        if vis is None:
            return
        vis.close()
        layer.events.disconnect(self._on_wl)
        self.stack.RemoveImage(vis.actor)
        if not self.visuals:
            self._fitted = False
        self._update_overlays()
        self.request_render()

    def _restack(self) -> None:
        for vis in self.visuals.values():
            self.stack.RemoveImage(vis.actor)
        n = 0
        for layer in self.scene:
            vis = self.visuals.get(id(layer))
            if vis is not None:
                vis.prop.SetLayerNumber(n)
                self.stack.AddImage(vis.actor)
                n += 1
        if n:
            self.stack.SetActiveLayer(n - 1)
        self.request_render()

    def _on_cursor(self, ras: np.ndarray) -> None:
        for vis in self.visuals.values():
            old = vis.current
            if old is not None and abs(float(self.n @ ras) - old.depth) < 1e-9:
                continue  # the cursor moved within this plane: same cut
            vis.recut()
        for cut in self.cuts.values():
            cut.recut()
        self._update_overlays()
        self.request_render()

    # camera -----------------------------------------------------------------------------------
    def display_bounds(self) -> tuple[float, float, float, float] | None:
        """(x0, x1, y0, y1) of all image/label layers in this view's display frame, mm."""
        boxes = []
        for vis in self.visuals.values():
            b = vis.layer.bounds_world()
            corners = np.array([[b[i][0], b[j][1], b[k][2]] for i in (0, 1) for j in (0, 1) for k in (0, 1)])
            du, dv = corners @ self.u, corners @ self.v
            boxes.append((du.min(), du.max(), dv.min(), dv.max()))
        if not boxes:
            return None
        b = np.array(boxes)
        return float(b[:, 0].min()), float(b[:, 1].max()), float(b[:, 2].min()), float(b[:, 3].max())

    def reset_camera(self) -> None:
        """Fit all layers in the view, centred, 5 % margin."""
        b = self.display_bounds()
        cam = self.renderer.GetActiveCamera()
        if b is None:
            return
        cx, cy = (b[0] + b[1]) / 2, (b[2] + b[3]) / 2
        w, h = b[1] - b[0], b[3] - b[2]
        cam.SetFocalPoint(cx, cy, 0.0)
        cam.SetPosition(cx, cy, 1000.0)
        cam.SetViewUp(0, 1, 0)
        cam.SetClippingRange(1.0, 2000.0)
        width, height = self.renderer.GetSize()
        aspect = width / height if height else 1.0
        cam.SetParallelScale(max(h / 2, w / 2 / max(aspect, 1e-6)) * 1.05 + 1e-6)
        _mark_camera_set(self.renderer)
        self._fitted = True

    def camera_state(self) -> dict:
        cam = self.renderer.GetActiveCamera()
        return {"focal": list(cam.GetFocalPoint()), "scale": cam.GetParallelScale()}

    def set_camera_state(self, state: dict) -> None:
        cam = self.renderer.GetActiveCamera()
        fx, fy = state["focal"][:2]
        cam.SetFocalPoint(fx, fy, 0.0)
        cam.SetPosition(fx, fy, 1000.0)
        cam.SetViewUp(0, 1, 0)
        cam.SetParallelScale(float(state["scale"]))
        _mark_camera_set(self.renderer)
        self._fitted = True
        self.request_render()

    def zoom(self, factor: float) -> None:
        cam = self.renderer.GetActiveCamera()
        cam.SetParallelScale(cam.GetParallelScale() / factor)
        self.request_render()

    def pan(self, dx_mm: float, dy_mm: float) -> None:
        cam = self.renderer.GetActiveCamera()
        fx, fy, _ = cam.GetFocalPoint()
        cam.SetFocalPoint(fx - dx_mm, fy - dy_mm, 0.0)
        cam.SetPosition(fx - dx_mm, fy - dy_mm, 1000.0)
        self.request_render()

    # coordinates ------------------------------------------------------------------------------
    def display_to_ras(self, x: float, y: float) -> np.ndarray:
        """Window pixel (origin bottom-left) -> RAS mm on this view's current plane."""
        self.renderer.SetDisplayPoint(float(x), float(y), 0.0)
        self.renderer.DisplayToWorld()
        wx, wy, _, w = self.renderer.GetWorldPoint()
        if w:
            wx, wy = wx / w, wy / w
        depth = float(self.n @ self.scene.cursor)
        return wx * self.u + wy * self.v + depth * self.n

    def ras_to_display(self, ras: np.ndarray) -> tuple[float, float]:
        """RAS mm -> window pixel (origin bottom-left)."""
        self.renderer.SetWorldPoint(float(self.u @ ras), float(self.v @ ras), 0.0, 1.0)
        self.renderer.WorldToDisplay()
        x, y, _ = self.renderer.GetDisplayPoint()
        return x, y

    def step(self, n_slices: int) -> None:
        """Move the cursor ``n_slices`` along this view's normal (towards the viewer if > 0)."""
        ref = self.scene.reference_image()
        if ref is None:
            return
        d = slice_step(ref.data.affine, self.orientation)
        c = self.scene.cursor + self.n * d * n_slices
        # stay inside the reference volume
        b = ref.bounds_world()
        depth = float(self.n @ c)
        corners = np.array([[b[i][0], b[j][1], b[k][2]] for i in (0, 1) for j in (0, 1) for k in (0, 1)])
        lo, hi = (corners @ self.n).min(), (corners @ self.n).max()
        c = c + self.n * (np.clip(depth, lo, hi) - depth)
        self.scene.cursor = c

    def request_render(self) -> None:
        self._render()

    # measurements: rulers and regions where they cross this plane -------------------------------
    def _draw_measurements(self, *_: object) -> None:
        for actor in getattr(self, "_measure_actors", []):
            self.renderer.RemoveViewProp(actor)
        self._measure_actors = []
        ref = self.scene.reference_image()
        step = slice_step(ref.data.affine, self.orientation) if ref is not None else 1.0
        depth = float(self.n @ self.scene.cursor)
        for m in getattr(self.scene, "measurements", []):
            if m.kind == "ruler":
                a, b = np.asarray(m.p0), np.asarray(m.p1)
                if max(abs(self.n @ a - depth), abs(self.n @ b - depth)) > max(step / 2, 0.5):
                    continue
                self._measure_line([a, b], m.summary(), (a + b) / 2)
            elif m.kind == "region":
                c = np.asarray(m.center)
                dz = abs(self.n @ c - depth)
                if dz >= m.radius_mm:
                    continue
                r = float(np.sqrt(m.radius_mm ** 2 - dz ** 2))
                t = np.linspace(0, 2 * np.pi, 49)
                pts = [c + r * (np.cos(x) * self.u + np.sin(x) * self.v) for x in t]
                self._measure_line(pts, m.summary(), c + r * self.v)
        self.request_render()

    def _measure_line(self, pts_ras, text: str, at_ras) -> None:
        pts = vtk.vtkPoints()
        for p in pts_ras:
            pts.InsertNextPoint(float(self.u @ p), float(self.v @ p), 0.8)
        poly = vtk.vtkPolyData()
        poly.SetPoints(pts)
        cells = vtk.vtkCellArray()
        cells.InsertNextCell(len(pts_ras), list(range(len(pts_ras))))
        poly.SetLines(cells)
        mapper = vtk.vtkPolyDataMapper()
        mapper.SetInputData(poly)
        actor = vtk.vtkActor()
        actor.SetMapper(mapper)
        actor.GetProperty().SetColor(0.3, 1.0, 1.0)
        actor.GetProperty().SetLineWidth(2.0)
        actor.PickableOff()
        label = vtk.vtkTextActor()
        label.SetInput(text)
        label.GetPositionCoordinate().SetCoordinateSystemToWorld()
        label.GetPositionCoordinate().SetValue(float(self.u @ at_ras), float(self.v @ at_ras), 0.8)
        label.GetTextProperty().SetFontSize(13)
        label.GetTextProperty().SetColor(0.3, 1.0, 1.0)
        for a in (actor, label):
            self.renderer.AddViewProp(a)
            self._measure_actors.append(a)

    # editing: a tool takes the left button, and the brush is drawn as a circle -------------------
    tool = None  # an object with press/drag/release/hover(view, ras), or None (crosshair)

    def show_brush(self, ras: np.ndarray | None, radius_mm: float = 0.0) -> None:
        """Draw the brush outline (a circle of ``radius_mm`` in this view's plane) at ``ras``;
        None hides it."""
        if not hasattr(self, "_brush"):
            src = vtk.vtkRegularPolygonSource()
            src.SetNumberOfSides(48)
            src.GeneratePolygonOff()
            mapper = vtk.vtkPolyDataMapper()
            mapper.SetInputConnection(src.GetOutputPort())
            actor = vtk.vtkActor()
            actor.SetMapper(mapper)
            actor.GetProperty().SetColor(1.0, 0.85, 0.2)
            actor.GetProperty().SetLineWidth(1.5)
            actor.PickableOff()
            self.renderer.AddActor(actor)
            self._brush = (src, actor)
        src, actor = self._brush
        if ras is None or radius_mm <= 0:
            actor.SetVisibility(False)
        else:
            src.SetCenter(float(self.u @ ras), float(self.v @ ras), 0.7)
            src.SetRadius(float(radius_mm))
            actor.SetVisibility(True)
        self.request_render()

    def close(self) -> None:
        for sig, slot in ((self.scene.layer_inserted, self._on_inserted), (self.scene.layer_removed, self._on_removed),
                          (self.scene.layers_moved, self._restack), (self.scene.cursor_changed, self._on_cursor),
                          (self.scene.measurements_changed, self._draw_measurements),
                          (self.scene.cursor_changed, self._draw_measurements)):
            sig.disconnect(slot)
        for vis in self.visuals.values():
            vis.close()
            vis.layer.events.disconnect(self._on_wl)
        self.visuals.clear()
        for cut in self.cuts.values():
            cut.close()
        self.cuts.clear()


def _cut_visual(view: SliceView, layer: Layer):
    from .slice_cuts import CutVisual

    return CutVisual(view, layer)


def _box_visual(view: SliceView, layer: Layer):
    from .box_visuals import BoxSliceVisual

    return BoxSliceVisual(view, layer)


SliceView.OVERLAYS = {MeshLayer: _cut_visual, PointsLayer: _cut_visual, BoxesLayer: _box_visual}
