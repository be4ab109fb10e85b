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
