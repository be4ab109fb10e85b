"""The 3D view: volume rendering, label surfaces, textured meshes, point clouds, slice planes,
and the cameras of view sets (frusta with their photos; :mod:`viewer.render.frusta`).

Like the slice views, :class:`View3D` subscribes to the scene and its layers' events. Work that
can take seconds (label surfaces of a big map) goes through ``run_async(work, done)``, which the
window maps onto a worker thread; offscreen it runs inline.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from ..model import BoxesLayer, Camera, ImageLayer, LabelLayer, Layer, MeshLayer, PointsLayer, Scene, ViewSetLayer
from ..resources import volume_presets
from ..compute.nogil import update as update_without_gil
from .box_visuals import add_boxes_3d
from .frusta import FrustaVisual, pick_frame
from .slicing import plane_axes
from .slice_view import VIEW_COLORS
from .volume_mapping import full_resolution_fits, mapper_kind, volume_for, volume_image, volume_proxy, watch_renderer
from .vtkutil import vtk

__all__ = ["View3D", "volume_image", "volume_proxy", "label_surfaces", "mesh_polydata"]

RunAsync = Callable[[Callable[[], Any], Callable[[Any], None]], None]


def _inline(work: Callable[[], Any], done: Callable[[Any], None]) -> None:
    done(work())


def _matrix(affine: np.ndarray) -> vtk.vtkMatrix4x4:
    m = vtk.vtkMatrix4x4()
    for i in range(4):
        for j in range(4):
            m.SetElement(i, j, float(affine[i, j]))
    return m


def label_surfaces(array: np.ndarray, affine: np.ndarray, values: list[int]) -> dict[int, Any]:
    """Smooth surfaces of each label (SurfaceNets), as pyvista PolyData in RAS mm by value."""
    import pyvista as pv

    img = volume_image(array if array.dtype.kind in "iu" and array.dtype.itemsize <= 4
                       else array.astype(np.int32))
    nets = vtk.vtkSurfaceNets3D()
    nets.SetInputData(img)
    nets.SetBackgroundLabel(0)
    nets.SetNumberOfLabels(len(values))
    for i, v in enumerate(values):
        nets.SetLabel(i, float(v))
    nets.SetOutputMeshTypeToTriangles()
    nets.SmoothingOn()
    nets.SetNumberOfIterations(16)
    update_without_gil(nets)  # a worker's seconds of VTK must not freeze the UI thread
    out = pv.wrap(nets.GetOutput())
    if out.n_points == 0:
        return {}
    out.points = out.points @ affine[:3, :3].T + affine[:3, 3]
    bl = np.asarray(out.cell_data["BoundaryLabels"])
    cell_label = np.where(bl[:, 0] != 0, bl[:, 0], bl[:, 1]).astype(int)
    surfaces = {}
    for v in values:
        ids = np.nonzero(cell_label == v)[0]
        if len(ids):
            part = out.extract_cells(ids).extract_surface(algorithm=None)
            surfaces[int(v)] = part.compute_normals(auto_orient_normals=False, split_vertices=False)
    return surfaces


def mesh_polydata(mesh) -> Any:
    """Model Mesh -> pyvista PolyData with UVs (active texture coordinates) and colours."""
    import pyvista as pv

    faces = np.hstack([np.full((mesh.n_faces, 1), 3, np.int64), mesh.faces]).ravel()
    pd = pv.PolyData(mesh.points, faces=faces)
    if mesh.uv is not None:
        pd.active_texture_coordinates = np.asarray(mesh.uv, np.float32)
    if mesh.colors is not None:
        pd.point_data["rgb"] = np.asarray(mesh.colors, np.uint8)
    if mesh.normals is not None:
        pd.point_data.active_normals = np.asarray(mesh.normals, np.float32)
    return pd


class View3D:
    """The 3D view of a scene drawn into ``renderer``."""

    VISUALS: dict[type, Callable[["View3D", Layer], None]] = {}  # layer type -> builder; filled below

    def __init__(self, renderer, scene: Scene, render: Callable[[], None] | None = None,
                 run_async: RunAsync | None = None) -> None:
        self.renderer, self.scene = renderer, scene
        self._render = render or (lambda: None)
        self._async = run_async or _inline
        self.props: dict[int, list] = {}
        self._slots: dict[int, list] = {}
        self.frusta: dict[int, FrustaVisual] = {}  # view-set layers' cameras by id(layer)
        renderer.SetBackground(0.09, 0.1, 0.13)
        renderer.SetBackground2(0.24, 0.26, 0.32)
        renderer.GradientBackgroundOn()
        self._gl: dict[str, Any] = {}  # "software": whether the GL renderer runs on the CPU
        if renderer.GetRenderWindow() is not None:
            watch_renderer(renderer.GetRenderWindow(), self._gl)
        self._planes = self._make_planes()
        scene.layer_inserted.connect(self._on_inserted)
        scene.layer_removed.connect(self._on_removed)
        scene.cursor_changed.connect(self._update_planes)
        for layer in scene:
            self._on_inserted(0, layer)
        if len(scene):  # built over layers that already exist (the window's staged start-up)
            self.reset_camera()

    # slice planes: where the three 2D views cut, as in Slicer's 3D view -----------------------
    def _make_planes(self) -> dict[str, tuple]:
        planes = {}
        for view in ("axial", "coronal", "sagittal"):
            pts = vtk.vtkPoints()
            pts.SetNumberOfPoints(4)
            poly = vtk.vtkPolyData()
            poly.SetPoints(pts)
            lines = vtk.vtkCellArray()
            lines.InsertNextCell(5, [0, 1, 2, 3, 0])
            poly.SetLines(lines)
            mapper = vtk.vtkPolyDataMapper()
            mapper.SetInputData(poly)
            actor = vtk.vtkActor()
            actor.SetMapper(mapper)
            actor.GetProperty().SetColor(*VIEW_COLORS[view])
            actor.GetProperty().SetLineWidth(2.0)
            actor.PickableOff()
            actor.SetVisibility(False)
            self.renderer.AddActor(actor)
            planes[view] = (pts, poly, actor)
        return planes

    def _update_planes(self, *_: object) -> None:
        ref = self.scene.reference_image()
        for view, (pts, poly, actor) in self._planes.items():
            if ref is None:
                actor.SetVisibility(False)
                continue
            u, v, n = plane_axes(view)
            b = ref.bounds_world()
            c = self.scene.cursor
            lo_u, hi_u = sorted([b[0] @ np.abs(u), b[1] @ np.abs(u)])
            lo_v, hi_v = sorted([b[0] @ np.abs(v), b[1] @ np.abs(v)])
            d = c @ np.abs(n)
            au, av, an = np.abs(u), np.abs(v), np.abs(n)
            for i, (x, y) in enumerate(((lo_u, lo_v), (hi_u, lo_v), (hi_u, hi_v), (lo_u, hi_v))):
                pts.SetPoint(i, *(x * au + y * av + d * an))
            pts.Modified()
            poly.Modified()
            actor.SetVisibility(True)
        self._render()

    # layers -------------------------------------------------------------------------------------
    def _connect(self, layer: Layer, name: str, slot: Callable) -> None:
        getattr(layer.events, name).connect(slot)
        self._slots.setdefault(id(layer), []).append((name, slot))

    def _on_inserted(self, index: int, layer: Layer) -> None:
        self.props[id(layer)] = []
        # the visual for a layer is found by its type (a new layer type adds one entry)
        add = self.VISUALS.get(type(layer)) or next(
            (fn for kind, fn in self.VISUALS.items() if isinstance(layer, kind)), None)
        if add is not None:
            add(self, layer)
        self._connect(layer, "visible", lambda *_: self._sync_visibility(layer))
        first = len(self.scene) == 1
        self._update_planes()
        if first:
            self.reset_camera()
        self._render()

    def _on_removed(self, index: int, layer: Layer) -> None:
        visual = self.frusta.pop(id(layer), None)
        if visual is not None:
            visual.close()
        for prop in self.props.pop(id(layer), []):
            self.renderer.RemoveViewProp(prop)
        for name, slot in self._slots.pop(id(layer), []):
            getattr(layer.events, name).disconnect(slot)
        self._update_planes()
        self._render()

    def _sync_visibility(self, layer: Layer) -> None:
        for prop in self.props.get(id(layer), []):
            on = layer.visible
            if isinstance(layer, ImageLayer):
                on = on and layer.render_mode != "off"
            if isinstance(layer, LabelLayer):
                on = on and layer.show_3d and getattr(prop, "_label_visible", True)
            if isinstance(layer, ViewSetLayer):
                on = on and getattr(prop, "_shown", True)
            prop.SetVisibility(bool(on))
        self._render()

    # volumes
    def _add_volume(self, layer: ImageLayer) -> None:
        # "gen" counts the layer's voxel changes (a 4D frame shown): a job made for older voxels
        # is not started, or its result is dropped, so a dragged frame slider costs one build
        state: dict[str, Any] = {"volume": None, "gen": 0}

        def submit(work: Callable[[], Any]) -> None:
            gen = state["gen"]
            current = lambda: gen == state["gen"] and id(layer) in self.props  # noqa: E731
            # a job that is stale before it starts costs nothing (the view lane is shared)
            self._async(lambda: work() if current() else None, lambda result: made(result, gen))

        def start_proxy() -> None:
            # read (and, for big scans, downsample) in a worker; only the small VTK set-up
            # happens on the UI thread
            state["pending"] = True
            kind = mapper_kind(self._gl.get("software"))
            submit(lambda: volume_for(layer.data.array, kind))

        def build(*_: object) -> None:
            if layer.render_mode == "off":
                self._sync_visibility(layer)
                return
            if state["volume"] is None:
                if not state.get("pending"):
                    start_proxy()
                return
            self._style_volume(layer, state["volume"])
            self._sync_visibility(layer)

        def new_voxels(*_: object) -> None:
            state["gen"] += 1
            if state["volume"] is None and not state.get("pending"):
                return  # never built: the first build reads the voxels then
            start_proxy()  # the volume on screen stays until the new one replaces it

        def made(result, gen: int) -> None:
            if result is None or gen != state["gen"] or id(layer) not in self.props:
                return  # removed meanwhile, or made for voxels since replaced
            vol, f = result
            if state["volume"] is not None and state["volume"] not in self.props[id(layer)]:
                return  # the layer was removed and added again: its new visuals have their own jobs
            vol.SetUserMatrix(_matrix(np.asarray(layer.data.affine) @ np.diag([f, f, f, 1.0])))
            vol._proxy_factor = f
            old = state["volume"]
            if old is not None:  # the full resolution (or a new frame) replaces it, in one frame
                vol.SetVisibility(old.GetVisibility())
                self.renderer.RemoveVolume(old)
                self.props[id(layer)].remove(old)
            self.renderer.AddVolume(vol)
            self.props[id(layer)].append(vol)
            state["volume"] = vol
            state["pending"] = False
            build()
            self.renderer.ResetCameraClippingRange()
            self._render()
            kind = mapper_kind(self._gl.get("software"))
            if f > 1 and full_resolution_fits(layer.data.array, kind):
                # the proxy is on screen: now the whole scan, in a worker too
                array = layer.data.array
                submit(lambda: volume_for(array, kind, max_voxels=array.size + 1))

        self._connect(layer, "render_mode", build)
        self._connect(layer, "opacity", build)
        self._connect(layer, "data", new_voxels)
        build()

    def _style_volume(self, layer: ImageLayer, vol) -> None:
        preset = volume_presets()[layer.render_mode]
        lo, hi = layer.data.quick_range()
        ctf = vtk.vtkColorTransferFunction()
        otf = vtk.vtkPiecewiseFunction()
        for value, r, g, b, a in preset["points"]:
            x = lo + value * (hi - lo) if preset["relative"] else value
            ctf.AddRGBPoint(x, r, g, b)
            otf.AddPoint(x, a * layer.opacity)
        prop = vtk.vtkVolumeProperty()
        prop.SetColor(ctf)
        prop.SetScalarOpacity(otf)
        prop.SetInterpolationTypeToLinear()
        if preset["shade"]:
            prop.ShadeOn()
            prop.SetAmbient(0.25)
            prop.SetDiffuse(0.8)
            prop.SetSpecular(0.25)
        vol.SetProperty(prop)
        mapper = vol.GetMapper()
        if preset["blend"] == "maximum":
            mapper.SetBlendModeToMaximumIntensity()
        else:
            mapper.SetBlendModeToComposite()

    # labels
    def _add_labels(self, layer: LabelLayer) -> None:
        data = layer.data
        generation = {"n": 0}

        def build(*_: object) -> None:
            generation["n"] += 1
            mine = generation["n"]
            values = [lab.value for lab in data.table]  # labels painted since included

            def done(surfaces: dict[int, Any]) -> None:
                if mine != generation["n"] or id(layer) not in self.props:
                    return  # a newer build or the layer is gone
                for prop in self.props[id(layer)]:
                    self.renderer.RemoveViewProp(prop)
                self.props[id(layer)] = []
                for value, surf in surfaces.items():
                    mapper = vtk.vtkPolyDataMapper()
                    mapper.SetInputData(surf)
                    mapper.ScalarVisibilityOff()
                    actor = vtk.vtkActor()
                    actor.SetMapper(mapper)
                    actor._label_value = value
                    self.renderer.AddActor(actor)
                    self.props[id(layer)].append(actor)
                restyle()
                self._render()

            array = np.asarray(data.array)
            self._async(lambda: label_surfaces(array, data.affine, values), done)

        def restyle(*_: object) -> None:
            for actor in self.props.get(id(layer), []):
                lab = data.table[actor._label_value] if actor._label_value in data.table else None
                actor._label_visible = bool(lab and lab.visible)
                if lab:
                    p = actor.GetProperty()
                    p.SetColor(*lab.color)
                    p.SetOpacity(min(1.0, lab.opacity * max(layer.opacity, 0.0) * 2.0))
                    p.SetSpecular(0.3)
                    p.SetSpecularPower(20)
            self._sync_visibility(layer)

        self._connect(layer, "table", restyle)
        self._connect(layer, "opacity", restyle)
        self._connect(layer, "show_3d", restyle)
        self._connect(layer, "data", build)
        build()

    # meshes and points
    def _add_mesh(self, layer: MeshLayer) -> None:
        import pyvista as pv

        mesh = layer.data
        pd = mesh_polydata(mesh)
        mapper = vtk.vtkPolyDataMapper()
        mapper.SetInputData(pd)
        actor = vtk.vtkActor()
        actor.SetMapper(mapper)
        texture = None
        if mesh.texture is not None and mesh.uv is not None:
            # model textures are row 0 at the top; pv.Texture turns them the VTK way up itself
            texture = pv.Texture(np.ascontiguousarray(mesh.texture))
            texture.SetInterpolate(True)
            texture.SetMipmap(True)

        def restyle(*_: object) -> None:
            p = actor.GetProperty()
            p.SetOpacity(layer.opacity)
            p.SetColor(*layer.color)
            use_tex = texture is not None and layer.show_texture
            actor.SetTexture(texture if use_tex else None)
            if use_tex:
                p.SetColor(1, 1, 1)
            mapper.SetScalarVisibility(mesh.colors is not None and not use_tex)
            if mesh.colors is not None:
                mapper.SetScalarModeToUsePointFieldData()
                mapper.SelectColorArray("rgb")
                mapper.SetColorModeToDirectScalars()
            self._render()

        for name in ("opacity", "color", "show_texture"):
            self._connect(layer, name, restyle)
        restyle()
        self.renderer.AddActor(actor)
        self.props[id(layer)].append(actor)

    def _add_points(self, layer: PointsLayer) -> None:
        import pyvista as pv

        pc = layer.data
        pd = pv.PolyData(pc.points)
        if pc.colors is not None:
            pd.point_data["rgb"] = pc.colors
        mapper = vtk.vtkPolyDataMapper()
        mapper.SetInputData(pd)
        if pc.colors is not None:
            mapper.SetScalarModeToUsePointFieldData()
            mapper.SelectColorArray("rgb")
            mapper.SetColorModeToDirectScalars()
            mapper.ScalarVisibilityOn()
        else:
            mapper.ScalarVisibilityOff()
        actor = vtk.vtkActor()
        actor.SetMapper(mapper)

        def restyle(*_: object) -> None:
            p = actor.GetProperty()
            p.SetRepresentationToPoints()
            p.SetPointSize(layer.point_size)
            p.SetRenderPointsAsSpheres(True)
            p.SetOpacity(layer.opacity)
            p.SetColor(*layer.color)
            self._render()

        for name in ("opacity", "color", "point_size"):
            self._connect(layer, name, restyle)
        restyle()
        self.renderer.AddActor(actor)
        self.props[id(layer)].append(actor)

    # view sets: cameras as frusta --------------------------------------------------------------
    def _add_viewset(self, layer: ViewSetLayer) -> None:
        visual = FrustaVisual(self.renderer, layer, self._render, self._async)
        self.frusta[id(layer)] = visual
        self.props[id(layer)] = visual.props

        def rebuild(*_: object) -> None:
            visual.rebuild()
            self._sync_visibility(layer)

        def restyle(*_: object) -> None:
            visual.restyle()
            self._sync_visibility(layer)

        def selected(index: int) -> None:
            visual.selection_changed()
            self._sync_visibility(layer)
            if index >= 0:
                self.look_through(layer.data.frames[index].camera)

        self._connect(layer, "frustum_scale", rebuild)
        self._connect(layer, "color", restyle)
        self._connect(layer, "opacity", restyle)
        self._connect(layer, "show_thumbnails", restyle)
        self._connect(layer, "selected_frame", selected)
        self._sync_visibility(layer)

    def frustum_actors(self, layer: ViewSetLayer) -> list:
        """The line actors of a view-set layer's frusta, one per frame, in frame order."""
        visual = self.frusta.get(id(layer))
        return list(visual.frustum_actors) if visual else []

    def pick_frame(self, x: float, y: float) -> tuple[ViewSetLayer, int] | None:
        """The (layer, frame index) whose frustum is under display position (x, y) (VTK's
        display coordinates: pixels, origin at the bottom-left), or None.

        Picked in numpy with the view's own camera (:func:`~viewer.render.frusta.pick_frame`):
        inside a frustum's far face or within a few pixels of its edges; the nearest wins.
        """
        view = self.current_camera()
        if view is None:
            return None
        best = None
        for layer in reversed(list(self.scene)):
            visual = self.frusta.get(id(layer))
            if visual is None or not layer.visible:
                continue
            i = pick_frame(visual.frusta, view, x, view.height - y)
            if i is not None:
                _, z = view.project(visual.frusta[i][1:5])
                depth = float(z.mean())
                if best is None or depth < best[2]:
                    best = (layer, i, depth)
        return (best[0], best[1]) if best else None

    def look_through(self, camera: Camera, target=None) -> None:
        """Set the 3D camera to ``camera``: its centre, orientation, vertical view angle and
        principal point (VTK's window centre), from :meth:`Camera.vtk_params`.

        The focal point sits ahead at the depth of ``target`` (default: the scene's centre), so
        rotating afterwards turns about what the photo shows. The vertical field of view matches
        the photo exactly; a view wider or narrower than the photo shows more or less at the sides.
        """
        if target is None:
            b = self.scene.bounds_world()
            target = (b[0] + b[1]) / 2 if b is not None else camera.center + camera.forward
        depth = float(np.dot(np.asarray(target, float) - camera.center, camera.forward))
        p = camera.vtk_params(distance=depth if depth > 1e-6 else 1.0)
        cam = self.renderer.GetActiveCamera()
        cam.SetPosition(*p["position"])
        cam.SetFocalPoint(*p["focal_point"])
        cam.SetViewUp(*p["view_up"])
        cam.SetViewAngle(p["view_angle"])
        cam.SetWindowCenter(*p["window_center"])
        self.renderer.ResetCameraClippingRange()
        if hasattr(self.renderer, "camera_set"):
            self.renderer.camera_set = True
        self._render()

    def current_camera(self, width: int | None = None, height: int | None = None) -> Camera | None:
        """The 3D view's camera as a :class:`Camera` at the view's pixel size (or the size given)."""
        w, h = self.renderer.GetSize()
        if w <= 0 or h <= 0:
            return None
        cam = self.renderer.GetActiveCamera()
        view = Camera.from_vtk(cam.GetPosition(), cam.GetFocalPoint(), cam.GetViewUp(), cam.GetViewAngle(),
                               int(w), int(h), cam.GetWindowCenter())
        return view.scaled(width, height) if width or height else view

    def camera_key(self) -> tuple:
        """Everything that decides the view's image: compare two keys to see if it changed."""
        cam = self.renderer.GetActiveCamera()
        return (cam.GetPosition(), cam.GetFocalPoint(), cam.GetViewUp(), cam.GetViewAngle(),
                cam.GetWindowCenter(), tuple(self.renderer.GetSize()))

    def watch_camera(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback()`` whenever a frame is drawn with another camera or size than the
        last; returns the function that stops watching."""
        last = {"key": self.camera_key()}

        def check(*_: object) -> None:
            key = self.camera_key()
            if key != last["key"]:
                last["key"] = key
                callback()

        tag = self.renderer.AddObserver("StartEvent", check)
        return lambda: self.renderer.RemoveObserver(tag)

    # camera -----------------------------------------------------------------------------------
    def reset_camera(self) -> None:
        """Look at everything from the patient's front-left, head up (a familiar 3D start)."""
        b = self.scene.bounds_world()
        if b is None:
            return
        center = (b[0] + b[1]) / 2
        radius = float(np.linalg.norm(b[1] - b[0])) / 2 or 1.0
        cam = self.renderer.GetActiveCamera()
        direction = np.array([0.35, 1.0, 0.25])  # from the front (anterior = +y), a little left/up
        direction /= np.linalg.norm(direction)
        cam.SetFocalPoint(*center)
        cam.SetPosition(*(center + direction * radius * 3.9))
        cam.SetViewUp(0, 0, 1)
        cam.SetViewAngle(30)
        cam.SetWindowCenter(0.0, 0.0)
        self.renderer.ResetCameraClippingRange()
        if hasattr(self.renderer, "camera_set"):
            self.renderer.camera_set = True

    def camera_state(self) -> dict:
        cam = self.renderer.GetActiveCamera()
        return {"position": list(cam.GetPosition()), "focal": list(cam.GetFocalPoint()),
                "up": list(cam.GetViewUp()), "angle": cam.GetViewAngle(),
                "center": list(cam.GetWindowCenter())}

    def set_camera_state(self, state: dict) -> None:
        cam = self.renderer.GetActiveCamera()
        cam.SetPosition(*state["position"])
        cam.SetFocalPoint(*state["focal"])
        cam.SetViewUp(*state["up"])
        cam.SetViewAngle(float(state.get("angle", 30)))
        cam.SetWindowCenter(*(float(c) for c in state.get("center", (0.0, 0.0))))
        self.renderer.ResetCameraClippingRange()
        if hasattr(self.renderer, "camera_set"):
            self.renderer.camera_set = True
        self._render()

    def close(self) -> None:
        self.scene.layer_inserted.disconnect(self._on_inserted)
        self.scene.layer_removed.disconnect(self._on_removed)
        self.scene.cursor_changed.disconnect(self._update_planes)
        for visual in self.frusta.values():
            visual.close()
        self.frusta.clear()
        for layer in self.scene:
            for name, slot in self._slots.pop(id(layer), []):
                getattr(layer.events, name).disconnect(slot)


# layer type -> the View3D method that builds its visual
View3D.VISUALS = {
    ImageLayer: View3D._add_volume,
    LabelLayer: View3D._add_labels,
    MeshLayer: View3D._add_mesh,
    PointsLayer: View3D._add_points,
    ViewSetLayer: View3D._add_viewset,
    BoxesLayer: add_boxes_3d,  # detection boxes: their own module (box_visuals)
}
