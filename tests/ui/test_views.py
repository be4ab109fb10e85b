"""The four views' render windows: slice views draw without multisampling (a software renderer
pays double for it, bench/edit_redraw.py), the 3D view keeps it on a GPU."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.gui


def test_views_have_no_multisampling(app_window):
    for kind in ("axial", "coronal", "sagittal", "3d"):
        assert app_window.views[kind].plotter.render_window.GetMultiSamples() == 0, kind


def test_3d_frames_have_a_time_budget(app_window):
    from viewer.ui.views import FRAME_RATE_3D

    rw = app_window.views["3d"].plotter.render_window
    assert rw.GetDesiredUpdateRate() == FRAME_RATE_3D
    assert rw.GetInteractor().GetStillUpdateRate() == FRAME_RATE_3D


def _count_frames(window) -> dict:
    """Frames each view's render window finishes, counted from now."""
    frames = {kind: 0 for kind in window.views}
    for kind, panel in window.views.items():
        panel.plotter.render_window.AddObserver(
            "EndEvent", lambda *_a, k=kind: frames.__setitem__(k, frames[k] + 1))
    return frames


def _ct(tmp_path, shape=(40, 36, 30)):
    import nibabel as nib
    import numpy as np

    arr = np.full(shape, -1000, np.int16)
    arr[10:30, 8:28, 5:25] = 40
    path = tmp_path / "ct.nii"
    img = nib.Nifti1Image(arr, np.diag([1.0, 1.0, 1.5, 1.0]))
    img.header["descrip"] = b"CT"
    nib.save(img, str(path))
    return path


def test_every_view_is_redrawn_after_a_cursor_change(app_window, qtbot, tmp_path):
    app_window.open_paths([str(_ct(tmp_path))])
    qtbot.waitUntil(lambda: len(app_window.scene) == 1 and not app_window.jobs.busy(), timeout=20000)
    qtbot.wait(300)
    frames = _count_frames(app_window)
    app_window.views["axial"].view.step(1)
    qtbot.waitUntil(lambda: all(frames.values()), timeout=5000)


def test_a_fast_scroll_starves_no_view(app_window, qtbot, tmp_path):
    """Steps arriving faster than frames: every view still gets drawn during the scroll, not
    only when it stops (the view under the mouse goes first, but not twice in a row)."""
    from PySide6.QtCore import QEventLoop
    from PySide6.QtWidgets import QApplication

    app_window.open_paths([str(_ct(tmp_path))])
    qtbot.waitUntil(lambda: len(app_window.scene) == 1 and not app_window.jobs.busy(), timeout=20000)
    qtbot.wait(300)
    frames = _count_frames(app_window)
    for _ in range(16):
        app_window.views["axial"].view.step(1)
        QApplication.processEvents(QEventLoop.ProcessEventsFlag.AllEvents)  # one turn per step
    assert all(n >= 1 for n in frames.values()), frames


def test_the_first_image_does_not_resize_the_views(app_window, qtbot, tmp_path):
    """Rows appearing in the layer panel used to widen its dock: the four GL views resized, and a
    resized QOpenGLWidget draws at once, all four in one turn."""
    sizes = {k: p.plotter.interactor.size().toTuple() for k, p in app_window.views.items()}
    app_window.open_paths([str(_ct(tmp_path))])
    qtbot.waitUntil(lambda: len(app_window.scene) == 1 and not app_window.jobs.busy(), timeout=20000)
    qtbot.wait(200)
    assert {k: p.plotter.interactor.size().toTuple() for k, p in app_window.views.items()} == sizes


def test_views_are_native_windows_on_x11(app_window):
    """On X11 the views are native child windows VTK draws into (no OpenGL composition of the
    whole window on every repaint); LUCID3D_VIEW_WIDGET picks the other kind."""
    from PySide6.QtGui import QGuiApplication

    from viewer.ui.vtk_widget import NativeInteractor

    if QGuiApplication.platformName() != "xcb":
        pytest.skip("native views are chosen on X11 and Windows")
    for kind, panel in app_window.views.items():
        assert isinstance(panel.plotter, NativeInteractor) and panel.native, kind
        assert type(panel.plotter.render_window).__name__ == "vtkXOpenGLRenderWindow"


@pytest.mark.parametrize("widget", ["native", "qopengl"])
def test_an_image_over_a_view_is_what_the_screen_shows(qtbot, monkeypatch, widget):
    """The learned view's overlay covers the view on screen (read back from the X server), and
    the view's own frame shows again when it is hidden."""
    import numpy as np
    from PySide6.QtGui import QGuiApplication
    from PySide6.QtWidgets import QMainWindow

    from viewer.ui.photo_view import ImageOverlay
    from viewer.ui.vtk_widget import make_interactor

    monkeypatch.setenv("LUCID3D_VIEW_WIDGET", widget)
    win = QMainWindow()
    qtbot.addWidget(win)
    plotter = make_interactor(win)
    win.setCentralWidget(plotter.interactor)
    plotter.set_background("red")
    win.resize(320, 240)
    win.show()
    qtbot.waitExposed(win)
    view = plotter.interactor
    centre = view.mapToGlobal(view.rect().center())

    def screen_at_centre() -> tuple[int, int, int]:
        colour = QGuiApplication.primaryScreen().grabWindow(0).toImage().pixelColor(centre)
        return colour.red(), colour.green(), colour.blue()

    view.update()
    qtbot.waitUntil(lambda: screen_at_centre() == (255, 0, 0), timeout=5000)
    overlay = ImageOverlay(view)
    green = np.zeros((30, 40, 3), np.uint8)
    green[..., 1] = 255
    overlay.set_image(green)
    overlay.show()
    qtbot.waitUntil(lambda: screen_at_centre() == (0, 255, 0), timeout=5000)
    plotter.render_window.Render()  # a frame under the overlay (a trackball drag draws so): still covered
    qtbot.wait(300)
    assert screen_at_centre() == (0, 255, 0)
    overlay.hide()
    view.update()
    qtbot.waitUntil(lambda: screen_at_centre() == (255, 0, 0), timeout=5000)
    plotter.close()
