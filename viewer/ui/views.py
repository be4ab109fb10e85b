"""The four view widgets: three slice views and the 3D view, each a pyvistaqt interactor
with the matching view from ``viewer/render`` drawing into it."""

from __future__ import annotations

from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtWidgets import QApplication, QFrame, QLabel, QVBoxLayout, QWidget
from shiboken6 import isValid

from ..model import Scene
from ..render.interaction import attach_3d_interaction, attach_slice_interaction
from ..render.slice_view import VIEW_COLORS, SliceView
from ..render.view3d import View3D
from .vtk_widget import is_native, make_interactor

__all__ = ["ViewPanel"]


FRAME_RATE_3D = 20.0  # frames per second the 3D view's volume rendering aims at (a 50 ms budget)


class _RenderQueue(QObject):
    """Views waiting to be drawn, drawn one per turn of the event loop.

    One user action (a wheel step through the axial view) changes all four views. Drawn in the
    same turn, their frames add up into one stall (4 x 20-60 ms on a software renderer); drawn
    one per turn, input and timers run between them, so the longest stall is one view's frame.
    The first view asked for is marked at once, so it is drawn in the same window repaint as
    the rest of the change (the status bar's cursor value): on a software GL every repaint of
    the window costs a composition of the whole window. The view under the mouse (the one the
    user works in) goes first, but never twice in a row while others wait, so a fast scroll
    cannot starve the other views. A native view (``vtk_widget``) is never composed with the
    window, so it gains nothing from that repaint: it waits for the next turn too, and the
    work that asked for it (a layer's set-up after a load) and its frame are two stalls, not one."""

    def __init__(self) -> None:
        super().__init__(QApplication.instance())
        self._waiting: list[ViewPanel] = []
        self._armed = False
        self._last: ViewPanel | None = None

    def add(self, panel: "ViewPanel") -> None:
        if panel in self._waiting:
            return
        if not self._waiting and not self._armed and not panel.native:
            self._draw(panel)  # nothing pending: this one joins the window repaint already due
            self._arm()  # one turn's pause before the next view
            return
        if panel.underMouse() and panel is not self._last:
            self._waiting.insert(0, panel)
        else:
            self._waiting.append(panel)
        self._arm()

    def _arm(self) -> None:
        if not self._armed:
            self._armed = True
            # a 1 ms timer, not a 0 ms one: Qt posts a 0 ms single shot as an event, and posted
            # events run before timers that came due meanwhile, so two views' frames ran back to
            # back with no input or timer between them; a timer is served after those due first
            QTimer.singleShot(1, self, self._next)

    def _draw(self, panel: "ViewPanel") -> bool:
        panel._do_render()
        self._last = panel
        return panel.isVisible()

    def _next(self) -> None:
        self._armed = False
        while self._waiting:
            panel = self._waiting.pop(0)
            if isValid(panel) and self._draw(panel):
                break  # a hidden or deleted view costs nothing: go on to the next one
        if self._waiting:
            self._arm()


_QUEUE: list[_RenderQueue] = []


def _render_queue() -> _RenderQueue:
    if not _QUEUE or not isValid(_QUEUE[0]):
        _QUEUE[:] = [_RenderQueue()]
    return _QUEUE[0]


class ViewPanel(QFrame):
    """One view in the grid: a thin coloured title strip and the VTK widget."""

    hovered = Signal(object)  # RAS or None
    activated = Signal(str)  # double-click: maximise/restore this view

    def __init__(self, scene: Scene, kind: str, run_async=None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.kind = kind
        self.setFrameShape(QFrame.Shape.NoFrame)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(1, 1, 1, 1)
        lay.setSpacing(0)
        title = QLabel(kind.capitalize() if kind != "3d" else "3D")
        r, g, b = (int(c * 255) for c in VIEW_COLORS.get(kind, (0.55, 0.6, 0.7)))
        title.setStyleSheet(f"background: rgb({r},{g},{b}); color: #111; font-weight: 600; padding: 1px 6px;")
        title.setFixedHeight(18)
        lay.addWidget(title)
        # no multisampling: the slice views' images are textures with their own interpolation,
        # and 4x MSAA doubles a frame on a software renderer (30 -> 15 ms at 512² for a slice
        # view, bench/edit_redraw.py; 1.5x for the 3D view). Asking the GL driver whether it is
        # a software one needs the context current outside a paint, which crashed now and then.
        self.plotter = make_interactor(self, multi_samples=0)
        self.native = is_native(self.plotter.interactor)
        self.plotter.enable_anti_aliasing = lambda *a, **k: None  # keep llvmpipe fast
        lay.addWidget(self.plotter.interactor, 1)
        renderer = self.plotter.renderer
        self._render_pending = False
        if kind == "3d":
            # a frame-time budget for every 3D frame, not only while dragging: volume ray casting
            # adapts its sampling to it (vtkSmartVolumeMapper), so a software renderer draws a
            # big CT in ~0.1 s instead of 1.3 s and the window never freezes; a GPU meets the
            # budget at full quality. Screenshots are drawn at full quality.
            self.plotter.render_window.SetDesiredUpdateRate(FRAME_RATE_3D)
            self.plotter.iren.interactor.SetDesiredUpdateRate(FRAME_RATE_3D)
            self.plotter.iren.interactor.SetStillUpdateRate(FRAME_RATE_3D)
            self.view = View3D(renderer, scene, render=self.schedule_render, run_async=run_async)
            attach_3d_interaction(self.plotter.iren.interactor)
            self.plotter.add_axes(interactive=False, color="white", xlabel="R", ylabel="A", zlabel="S")
        else:
            self.view = SliceView(renderer, scene, kind, render=self.schedule_render)
            attach_slice_interaction(self.view, self.plotter.iren.interactor)
            self.view.hovered.connect(self.hovered.emit)
        self.plotter.interactor.setFocusPolicy(Qt.FocusPolicy.StrongFocus)

    def schedule_render(self) -> None:
        """Coalesce the many redraw requests one user action causes into one frame."""
        if not isValid(self):
            return  # a worker's result arrived after the window closed: nothing left to draw
        if not self._render_pending:
            self._render_pending = True
            _render_queue().add(self)

    def _do_render(self) -> None:
        self._render_pending = False
        if self.isVisible():
            # a repaint of the GL widget renders the scene once (its paintGL); plotter.render()
            # would render, then the repaint it causes would render the same frame again
            self.plotter.interactor.update()

    def reset(self) -> None:
        self.view.reset_camera()
        self.schedule_render()

    def screenshot(self):
        rw = self.plotter.render_window
        rate = rw.GetDesiredUpdateRate()
        rw.SetDesiredUpdateRate(0.0001)  # full quality, whatever it costs
        try:
            self.plotter.render()
            return self.plotter.screenshot(return_img=True)
        finally:
            rw.SetDesiredUpdateRate(rate)

    def close_view(self) -> None:
        self.view.close()
        self.plotter.close()
