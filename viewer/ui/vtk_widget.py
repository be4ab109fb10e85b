"""The widget a VTK view draws into: a native child window where the platform allows it.

Why not pyvistaqt's ``QtInteractor`` everywhere: it is a ``QOpenGLWidget``, and a window that
holds one is composed by OpenGL. Every repaint of the window, even a status-bar text or a
progress bar, then uploads and blends the whole window; on a software GL (llvmpipe: CI, VMs,
remote desktops) that costs 30-40 ms, against 6 ms for the same window without it
(docs/PERFORMANCE.md). A training bar's updates paid it several times a second.

:class:`NativeInteractor` is VTK's own Qt widget in its ``QWidget`` form: a native child
window VTK renders into with its own GL context. Qt never composes it, so the rest of the
window repaints at raster speed, and a view's frame goes straight to its window. It carries
pyvista's plotter API (``BasePlotter``) as ``QtInteractor`` does, so the views call the same
methods either way.

It needs a window system VTK can draw into from a Qt window id: X11 (``xcb``) and Windows.
Elsewhere (macOS, Wayland, ``offscreen``, a VTK built without X) the ``QOpenGLWidget``
interactor stays. ``LUCID3D_VIEW_WIDGET=qopengl`` chooses it everywhere.
"""

from __future__ import annotations

import contextlib
import os
import weakref

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QApplication, QWidget
from pyvista import global_theme
from pyvista.plotting import BasePlotter
from pyvista.plotting.render_window_interactor import RenderWindowInteractor
from pyvistaqt import QtInteractor
from shiboken6 import isValid
from vtkmodules.qt.QVTKRenderWindowInteractor import QVTKRenderWindowInteractor

__all__ = ["GLWidgetInteractor", "MouseToView", "NativeInteractor", "is_native", "make_interactor", "native_views"]

_NATIVE_PLATFORMS = ("xcb", "windows")


def native_views() -> bool:
    """Whether views are native child windows on this platform (see the module's docstring).
    ``LUCID3D_VIEW_WIDGET=qopengl`` turns them off; ``native`` cannot turn them on where VTK
    cannot draw into a Qt window (Wayland, macOS here, a VTK built without X)."""
    if os.environ.get("LUCID3D_VIEW_WIDGET", "").strip().lower() == "qopengl":
        return False
    platform = QGuiApplication.platformName()
    if platform not in _NATIVE_PLATFORMS:
        return False
    if platform == "xcb":
        try:
            from vtkmodules.vtkRenderingOpenGL2 import vtkXOpenGLRenderWindow  # noqa: F401
        except ImportError:  # an EGL- or OSMesa-only VTK: no X windows to draw into
            return False
    return True


def is_native(widget: QWidget) -> bool:
    """True for a view widget Qt does not compose (it paints on screen itself)."""
    return widget.testAttribute(Qt.WidgetAttribute.WA_PaintOnScreen)


@contextlib.contextmanager
def _no_plotter_init():
    # PySide6 calls the next __init__ in the MRO from QWidget's: keep BasePlotter's for later,
    # with its own arguments (pyvistaqt does the same)
    init = BasePlotter.__init__
    BasePlotter.__init__ = lambda *a, **k: None
    try:
        yield
    finally:
        BasePlotter.__init__ = init


def _render_window():
    if QGuiApplication.platformName() == "xcb":
        # an X window id, whatever VTK_DEFAULT_OPENGL_WINDOW says (EGL cannot draw into it)
        from vtkmodules.vtkRenderingOpenGL2 import vtkXOpenGLRenderWindow

        return vtkXOpenGLRenderWindow()
    return None  # VTK's platform default (Win32)


class NativeInteractor(QVTKRenderWindowInteractor, BasePlotter):
    """A pyvista plotter drawing into a native child window (VTK's ``QWidget`` interactor).

    Same calls as pyvistaqt's ``QtInteractor`` for what the views use: the ``BasePlotter``
    API, ``interactor`` (the widget), ``iren`` (pyvista's interactor wrapper), ``render()``,
    ``screenshot()`` and ``close()``. A repaint (``update()``) renders the scene once.
    """

    def __init__(self, parent: QWidget | None = None, multi_samples: int = 0, **kwargs) -> None:
        # a native widget makes its ancestors native (they must be); without this Qt would make
        # their siblings native too (docks, menu and status bars: 22 native windows)
        QApplication.setAttribute(Qt.ApplicationAttribute.AA_DontCreateNativeWidgetSiblings, True)
        rw = _render_window()
        with _no_plotter_init():
            if rw is None:
                QVTKRenderWindowInteractor.__init__(self, parent=parent)
            else:
                QVTKRenderWindowInteractor.__init__(self, parent=parent, rw=rw)
        BasePlotter.__init__(self, **kwargs)
        self.interactor = self
        self._closed = False
        self.ren_win = self.GetRenderWindow()
        self.ren_win.SetMultiSamples(multi_samples)
        for renderer in self.renderers:
            renderer.view_isometric()
            self.ren_win.AddRenderer(renderer)
        self.background_color = global_theme.background
        self._off_screen = False
        self.iren = RenderWindowInteractor(self, interactor=self.ren_win.GetInteractor())
        # pyvista's own mouse-move observer re-renders on every move: the views draw on demand
        self.iren.interactor.RemoveObservers("MouseMoveEvent")
        self.iren.initialize()
        self.enable_trackball_style()
        self._first_time = False  # tells BasePlotter this window is live (as pyvistaqt does)
        self.setAcceptDrops(False)  # files dropped on a view go to the main window

    def render(self) -> None:
        """Render now (a hidden or closed view draws nothing)."""
        if self._closed or not self.isVisible():
            return
        self._rendered = True
        BasePlotter.render(self)

    def _check_has_ren_win(self) -> None:
        # VTK makes its own context current; pyvista's check asks whether it already is
        if self.render_window is not None:
            self.render_window.MakeCurrent()
        BasePlotter._check_has_ren_win(self)

    def _getPixelRatio(self) -> float:  # noqa: N802 (VTK's name)
        # VTK's asks the screen under the mouse; the widget's own screen is the one that counts
        # (two monitors of different scale)
        return self.devicePixelRatioF()

    def event(self, event) -> bool:
        if event.type() == QEvent.Type.DevicePixelRatioChange and not self._closed:
            self.resizeEvent(None)  # moved to a screen of another scale: new size in pixels
        return super().event(event)

    def paintEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        if not self._closed:
            super().paintEvent(event)

    def resizeEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        if not self._closed:
            super().resizeEvent(event)

    def close(self) -> None:  # BasePlotter's close: the widget stays Qt's to delete
        if self._closed:
            return
        self._closed = True
        BasePlotter.close(self)
        with contextlib.suppress(RuntimeError):
            QVTKRenderWindowInteractor.close(self)


def _forget_gl_wrappers(ref: weakref.ref) -> None:
    widget = ref()
    if widget is not None:
        for name in ("_ctx", "_surface", "_gl"):
            widget.__dict__[name] = None


class GLWidgetInteractor(QtInteractor):
    """pyvistaqt's ``QOpenGLWidget`` interactor, letting go of its Qt-owned GL objects in time.

    pyvistaqt keeps Python wrappers of the widget's GL context and of the offscreen surface
    Qt made for it. Qt deletes the surface with the widget, but shiboken is never told, so the
    wrapper stays in its address map: the next Qt object allocated at that address came back to
    Python as the stale wrapper (``menuBar().addMenu()`` returned a ``QOffscreenSurface``), and a
    make-current through it used freed memory (the long GUI test process crashed now and then).
    The wrappers are dropped when the view closes, and when the surface dies whichever comes first.
    """

    def initializeGL(self) -> None:  # noqa: N802 (Qt's name)
        super().initializeGL()
        surface = self.__dict__.get("_surface")
        if surface is not None:
            ref = weakref.ref(self)
            surface.destroyed.connect(lambda *_: _forget_gl_wrappers(ref))

    def close(self) -> None:
        super().close()
        _forget_gl_wrappers(weakref.ref(self))


def make_interactor(parent: QWidget, multi_samples: int = 0):
    """The view widget for this platform: :class:`NativeInteractor` or :class:`GLWidgetInteractor`."""
    if native_views():
        return NativeInteractor(parent, multi_samples=multi_samples)
    return GLWidgetInteractor(parent, auto_update=False, multi_samples=multi_samples)


class MouseToView(QObject):
    """Hands a widget's mouse and wheel events to the native view it lies over.

    A widget over a native view has to be native itself to be seen (the view's window would
    hide it otherwise), and a native window takes the mouse events X sends to it, whatever
    ``WA_TransparentForMouseEvents`` says. The overlay covers the view exactly, so positions
    carry over unchanged and the view's trackball works through the overlay."""

    _KINDS = (QEvent.Type.MouseButtonPress, QEvent.Type.MouseButtonRelease, QEvent.Type.MouseMove,
              QEvent.Type.MouseButtonDblClick, QEvent.Type.Wheel)

    def __init__(self, overlay: QWidget, view: QWidget) -> None:
        super().__init__(overlay)
        self.view = view
        overlay.installEventFilter(self)

    def eventFilter(self, obj, event) -> bool:  # noqa: N802 (Qt's name)
        if event.type() in self._KINDS and isValid(self.view):
            QApplication.sendEvent(self.view, event.clone())
            return True
        return False
