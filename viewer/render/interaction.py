"""Mouse and keyboard on the views, translated into model changes.

Slice views (as in ITK-SNAP and most PACS): left click or drag moves the crosshair, right drag
changes window (horizontal) and level (vertical) of the selected image, middle drag pans,
the wheel moves through slices (Page Up/Down and arrow keys too), Ctrl+wheel zooms.
Moving the mouse reports the RAS position under it (``view.hovered``) for the status bar.
While an editing tool is set on the view (``view.tool``), the left button is the tool's.
"""

from __future__ import annotations

from ..model import ImageLayer
from .slice_view import SliceView
from .vtkutil import vtk

__all__ = ["attach_slice_interaction", "attach_3d_interaction"]


def attach_slice_interaction(view: SliceView, interactor) -> None:
    """Install the slice-view mouse map on a vtkRenderWindowInteractor."""
    interactor.SetInteractorStyle(vtk.vtkInteractorStyleUser())
    state = {"button": None, "last": (0, 0), "wl": None}

    def pos():
        return interactor.GetEventPosition()

    def press(button):
        def cb(obj, evt):
            state["button"] = button
            state["last"] = pos()
            if button == "left" and view.tool is not None:
                view.tool.press(view, view.display_to_ras(*pos()))
            elif button == "left":
                view.scene.cursor = view.display_to_ras(*pos())
            elif button == "right":
                layer = _wl_layer(view)
                state["wl"] = (layer, layer.window, layer.level) if layer else None
                state["start"] = pos()
        return cb

    def release(obj, evt):
        if state["button"] == "left" and view.tool is not None:
            view.tool.release(view, view.display_to_ras(*pos()))
        state["button"] = None

    def move(obj, evt):
        x, y = pos()
        button = state["button"]
        if view.tool is not None and button in (None, "left"):
            ras = view.display_to_ras(x, y)
            (view.tool.drag if button == "left" else view.tool.hover)(view, ras)
        elif button == "left":
            view.scene.cursor = view.display_to_ras(x, y)
        elif button == "right" and state["wl"]:
            layer, w0, l0 = state["wl"]
            sx, sy = state["start"]
            # a full view width of drag = twice the data's range: fine near, fast across
            lo, hi = layer.data.quick_range()
            span = max(hi - lo, 1.0)
            width, height = view.renderer.GetSize()
            layer.window = max(1e-3, w0 * (1 + 2 * (x - sx) / max(width, 1)))
            layer.level = l0 + (y - sy) * span / max(height, 1)
        elif button == "middle":
            lx, ly = state["last"]
            a, b = view.display_to_ras(lx, ly), view.display_to_ras(x, y)
            d = b - a
            view.pan(float(view.u @ d), float(view.v @ d))
        state["last"] = (x, y)
        view.hovered.emit(view.display_to_ras(x, y))

    def wheel(direction):
        def cb(obj, evt):
            if interactor.GetControlKey():
                view.zoom(1.15 if direction > 0 else 1 / 1.15)
            else:
                view.step(direction * (5 if interactor.GetShiftKey() else 1))
        return cb

    def key(obj, evt):
        k = interactor.GetKeySym()
        steps = {"Up": 1, "Prior": 5, "Down": -1, "Next": -5}
        if k in steps:
            view.step(steps[k])
        elif k in ("r", "R"):
            view.reset_camera()
            view.request_render()

    def leave(obj, evt):
        view.hovered.emit(None)
        if view.tool is not None:
            view.tool.hover(view, None)

    for name, b in (("Left", "left"), ("Right", "right"), ("Middle", "middle")):
        interactor.AddObserver(f"{name}ButtonPressEvent", press(b))
        interactor.AddObserver(f"{name}ButtonReleaseEvent", release)
    interactor.AddObserver("MouseMoveEvent", move)
    interactor.AddObserver("MouseWheelForwardEvent", wheel(1))
    interactor.AddObserver("MouseWheelBackwardEvent", wheel(-1))
    interactor.AddObserver("KeyPressEvent", key)
    interactor.AddObserver("LeaveEvent", leave)


def _wl_layer(view: SliceView) -> ImageLayer | None:
    sel = view.scene.selected
    if isinstance(sel, ImageLayer):
        return sel
    imgs = [l for l in view.scene if isinstance(l, ImageLayer)]
    return imgs[-1] if imgs else None


def attach_3d_interaction(interactor) -> None:
    """Trackball camera: left rotates, middle pans, right/wheel zooms."""
    interactor.SetInteractorStyle(vtk.vtkInteractorStyleTrackballCamera())
