"""Meshes and point clouds in a slice view: the outline where a mesh crosses the view's plane and
the points within half a slice of it, in the layer's colour, over the image stack."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from vtk.util.numpy_support import numpy_to_vtk, numpy_to_vtkIdTypeArray

from ..geometry.cuts import mesh_plane_segments, points_near_plane
from ..model import MeshLayer, PointsLayer
from .vtkutil import vtk

if TYPE_CHECKING:
    from .slice_view import SliceView

__all__ = ["CutVisual", "CUT_Z"]

CUT_Z = 0.6  # display depth: over the images (0), under the measurements (0.8) and brush (0.7)


class CutVisual:
    """One mesh or point layer in one slice view, recut when the view's plane moves."""

    def __init__(self, view: "SliceView", layer: MeshLayer | PointsLayer) -> None:
        self.view, self.layer = view, layer
        self.poly = vtk.vtkPolyData()
        mapper = vtk.vtkPolyDataMapper()
        mapper.SetInputData(self.poly)
        mapper.ScalarVisibilityOff()
        self.actor = vtk.vtkActor()
        self.actor.SetMapper(mapper)
        self.actor.PickableOff()
        prop = self.actor.GetProperty()
        prop.SetLineWidth(2.0)
        prop.SetRenderPointsAsSpheres(True)
        self.depth: float | None = None
        self.count = 0  # segments or points drawn (tests read it)
        view.renderer.AddActor(self.actor)
        for name in ("visible", "opacity", "color", *(("point_size",) if isinstance(layer, PointsLayer) else ())):
            getattr(layer.events, name).connect(self._restyle)
        layer.events.data.connect(self._recut_now)
        self.recut()

    def close(self) -> None:
        for slot in (self._restyle, self._recut_now):
            self.layer.events.disconnect(slot)  # from every signal of the group
        self.view.renderer.RemoveActor(self.actor)

    def _recut_now(self, *_: object) -> None:
        self.depth = None
        self.recut()
        self.view.request_render()

    def _half_thickness(self) -> float:
        from .slicing import slice_step

        ref = self.view.scene.reference_image()
        return 0.5 * (slice_step(ref.data.affine, self.view.orientation) if ref is not None else 1.0)

    def recut(self) -> None:
        view = self.view
        depth = float(view.n @ view.scene.cursor)
        if self.depth is not None and abs(depth - self.depth) < 1e-9:
            return
        self.depth = depth
        data = self.layer.data
        poly = vtk.vtkPolyData()
        if isinstance(self.layer, MeshLayer):
            seg = mesh_plane_segments(data.points, data.faces, view.n, depth, view.u, view.v)
            xyz = np.concatenate([seg.reshape(-1, 2), np.full((2 * len(seg), 1), 0.0)], axis=1)
            cells = np.column_stack([np.full(len(seg), 2), np.arange(2 * len(seg)).reshape(-1, 2)]).ravel()
            self.count = len(seg)
            kind = "lines"
        else:
            uv, _ = points_near_plane(data.points, view.n, depth, self._half_thickness(), view.u, view.v)
            xyz = np.concatenate([uv, np.zeros((len(uv), 1))], axis=1)
            cells = np.column_stack([np.ones(len(uv), np.int64), np.arange(len(uv))]).ravel()
            self.count = len(uv)
            kind = "verts"
        xyz[:, 2] = CUT_Z
        pts = vtk.vtkPoints()
        pts.SetData(numpy_to_vtk(np.ascontiguousarray(xyz), deep=True))
        arr = vtk.vtkCellArray()
        arr.SetCells(self.count, numpy_to_vtkIdTypeArray(cells.astype(np.int64), deep=True))
        poly.SetPoints(pts)
        poly.SetLines(arr) if kind == "lines" else poly.SetVerts(arr)
        self.poly.ShallowCopy(poly)
        self._restyle()

    def _restyle(self, *_: object) -> None:
        layer, prop = self.layer, self.actor.GetProperty()
        prop.SetColor(*map(float, layer.color))
        prop.SetOpacity(float(layer.opacity))
        if isinstance(layer, PointsLayer):
            prop.SetPointSize(float(layer.point_size))
        self.actor.SetVisibility(bool(layer.visible and self.count))
        self.view.request_render()
