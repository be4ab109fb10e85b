"""The real window under Xvfb: drag-and-drop, dialogs on bad input, scene files, screenshots."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QMimeData, QPoint, Qt, QUrl
from PySide6.QtGui import QDropEvent
from PySide6.QtWidgets import QApplication, QMessageBox

from viewer.model import ImageLayer, LabelLayer

from ..conftest import quiesce

pytestmark = pytest.mark.gui


@pytest.fixture
def window(qtbot):
    from viewer.ui.app import make_window

    win = make_window()
    qtbot.addWidget(win, before_close_func=quiesce(qtbot))
    win.show()
    qtbot.waitExposed(win)
    yield win


def drop(win, paths):
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    event = QDropEvent(QPoint(200, 200), Qt.DropAction.CopyAction, mime,
                       Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    win.dropEvent(event)


def test_drop_files_makes_layers(window, qtbot, phantom_files):
    img, lab = phantom_files
    drop(window, [img, lab])
    qtbot.waitUntil(lambda: len(window.scene) == 2, timeout=20000)
    layers = list(window.scene)
    assert isinstance(layers[0], ImageLayer) and layers[0].name == "phantom"
    # an integer volume named *_seg over an image opens as labels
    assert isinstance(layers[1], LabelLayer)
    assert window.layer_panel.list.count() == 2
    # the label table lists volumes in mL computed from the voxels
    window.scene.selected = layers[1]
    ml = float(window.layer_panel.labels.item(0, 3).text())
    expected = layers[1].data.volumes_ml()[1]
    assert ml == pytest.approx(expected, abs=0.01)


def test_bad_file_shows_dialog_and_keeps_layers(window, qtbot, phantom_files, tmp_path):
    img, _ = phantom_files
    drop(window, [img])
    qtbot.waitUntil(lambda: len(window.scene) == 1, timeout=20000)
    bad = tmp_path / "broken.nii.gz"
    bad.write_bytes(b"\x00garbage" * 10)
    drop(window, [bad])
    qtbot.waitUntil(lambda: getattr(window, "last_error", None) is not None, timeout=20000)
    assert "broken.nii.gz" in window.last_error
    boxes = [w for w in QApplication.topLevelWidgets() if isinstance(w, QMessageBox) and w.isVisible()]
    assert boxes and "broken.nii.gz" in boxes[0].text()
    assert len(window.scene) == 1
    for b in boxes:
        b.close()


def test_scene_file_restores_exactly(window, qtbot, phantom_files, tmp_path):
    from viewer.ui.app import make_window

    img, lab = phantom_files
    drop(window, [img, lab])
    qtbot.waitUntil(lambda: len(window.scene) == 2, timeout=20000)
    image, labels = list(window.scene)
    image.window, image.level, image.colormap = 1234.0, -56.0, "bone"
    labels.opacity, labels.outline = 0.8, True
    labels.data.table.set(2, color=(0.1, 0.2, 0.3), visible=False)
    window.scene.cursor = [1.0, -2.0, 3.5]
    window.views["axial"].view.zoom(2.0)
    path = tmp_path / "s.lucid3d.json"
    window.save_scene(str(path))
    saved = json.loads(path.read_text())
    assert saved["format"] == "lucid3d-scene" and len(saved["layers"]) == 2

    other = make_window()
    qtbot.addWidget(other)
    other.show()
    other.open_scene(str(path))
    qtbot.waitUntil(lambda: len(other.scene) == 2, timeout=20000)
    qtbot.wait(200)
    a, b = list(other.scene)
    assert a.display_state() == image.display_state()
    assert b.display_state() == labels.display_state()
    assert b.data.table[2].color == (0.1, 0.2, 0.3) and b.data.table[2].visible is False
    np.testing.assert_allclose(other.scene.cursor, [1.0, -2.0, 3.5])
    for kind in ("axial", "3d"):
        got, want = other.views[kind].view.camera_state(), window.views[kind].view.camera_state()
        for key in want:
            assert np.asarray(got[key]) == pytest.approx(np.asarray(want[key]), abs=1e-6), (kind, key)
    other.close()


def test_save_screenshot_writes_the_views(window, qtbot, phantom_files, tmp_path):
    img, _ = phantom_files
    drop(window, [img])
    qtbot.waitUntil(lambda: len(window.scene) == 1, timeout=20000)
    qtbot.wait(300)
    out = tmp_path / "shot.png"
    window.save_screenshot(str(out))
    pixels = np.asarray(Image.open(out).convert("RGB"))
    assert pixels.shape[0] > 200 and pixels.shape[1] > 200
    assert pixels.std() > 10  # not a blank picture
    # the input is never touched
    assert img.stat().st_size > 0 and not list(tmp_path.glob(".*part*"))


def test_layer_panel_edits_the_model(window, qtbot, phantom_files):
    img, _ = phantom_files
    drop(window, [img])
    qtbot.waitUntil(lambda: len(window.scene) == 1, timeout=20000)
    layer = window.scene[0]
    window.layer_panel.opacity.setValue(0.25)
    assert layer.opacity == pytest.approx(0.25)
    window.layer_panel.preset.activated.emit(window.layer_panel.preset.findData("lung"))
    assert (layer.window, layer.level) == (1500.0, -600.0)
    assert window.layer_panel.window.value() == pytest.approx(1500.0)
    # scroll a slice with the keyboard map: the cursor moves along the axial normal by one voxel
    z0 = window.scene.cursor[2]
    window.views["axial"].view.step(1)
    assert window.scene.cursor[2] == pytest.approx(z0 - 2.5)  # axial looks from the feet: +1 = inferior


@pytest.mark.parametrize("field,value", [
    ("cursor", "middle"),                       # refused when the file is read
    ("selected", "first"),
    ("display", {"visible": "no"}),             # refused by the layer's own check, still before replacing
    ("display", {"opacity": 5}),
], ids=["cursor-text", "selected-text", "visible-no", "opacity-five"])
def test_bad_scene_keeps_the_old_scene_and_says_why(window, qtbot, phantom_files, tmp_path, field, value):
    img, lab = phantom_files
    drop(window, [img])
    qtbot.waitUntil(lambda: len(window.scene) == 1, timeout=20000)
    before = list(window.scene)
    doc = {"format": "lucid3d-scene", "version": 1,
           "layers": [{"source": str(lab), "kind": "labels", "as_labels": True, "display": {}}],
           "cursor": [0.0, 0.0, 0.0], "selected": 0, "cameras": {}}
    if field == "display":
        doc["layers"][0]["display"] = value
    else:
        doc[field] = value
    path = tmp_path / "bad.lucid3d.json"
    path.write_text(json.dumps(doc))
    window.last_error = None
    window.open_scene(str(path))
    qtbot.waitUntil(lambda: window.last_error is not None, timeout=20000)
    assert "bad.lucid3d.json" in window.last_error and "\n" not in window.last_error
    assert list(window.scene) == before  # nothing replaced
    boxes = [w for w in QApplication.topLevelWidgets() if isinstance(w, QMessageBox) and w.isVisible()]
    assert boxes and "bad.lucid3d.json" in boxes[-1].text()
    for b in boxes:
        b.close()


def test_staged_start_draws_the_window_before_the_views(qtbot, phantom_files):
    """What `main.py` does: a light window at once, VTK views built when their imports arrive;
    a file opened meanwhile is drawn once they exist."""
    from viewer.ui.app import make_window

    img, _ = phantom_files
    win = make_window(paths=[str(img)], staged=True)
    qtbot.addWidget(win)
    assert not win.is_ready and win.views == {}  # nothing heavy built in the constructor
    win.show()
    qtbot.waitExposed(win)
    qtbot.waitUntil(lambda: win.is_ready and len(win.scene) == 1, timeout=60000)
    assert set(win.views) == {"axial", "coronal", "sagittal", "3d"}
    qtbot.wait(300)
    shot = np.asarray(win.views["axial"].screenshot())[..., :3]
    assert shot.max() > 50  # the phantom drawn, not a black view
    # the 3D view, built over a layer that already existed, looks at it from outside: the
    # background shows around the volume (a camera left inside fills the view with one colour)
    qtbot.wait(500)
    shot3d = np.asarray(win.views["3d"].screenshot())[..., :3].astype(int)
    row_bg = shot3d[:, 3:4]  # the background is a vertical gradient: compare within rows
    assert (np.abs(shot3d - row_bg).sum(-1) < 20).mean() > 0.3
    assert (np.abs(shot3d - row_bg).sum(-1) > 60).mean() > 0.005
    win.close()


@pytest.mark.parametrize("how", ["close", "delete"])
def test_views_let_go_of_the_gl_objects_qt_deletes(qtbot, how, monkeypatch):
    """A view's GL surface is Qt's: once the window is closed or deleted, no Python wrapper of it
    may remain, or a later Qt object at the same address comes back to Python as that stale
    wrapper (CI once saw ``menuBar().addMenu()`` return a QOffscreenSurface) and calls through
    it use freed memory. (The QOpenGLWidget views: macOS, Wayland.)"""
    import shiboken6

    monkeypatch.setenv("LUCID3D_VIEW_WIDGET", "qopengl")

    from viewer.ui.app import make_window

    win = make_window()
    if how == "close":
        qtbot.addWidget(win)
    win.show()
    qtbot.waitExposed(win)
    qtbot.waitUntil(lambda: all(p.plotter.__dict__.get("_surface") is not None for p in win.views.values()),
                    timeout=30000)
    plotters = [p.plotter for p in win.views.values()]
    surfaces = [p.__dict__["_surface"] for p in plotters]
    assert all(shiboken6.isValid(s) for s in surfaces)
    if how == "close":
        win.close()
    else:
        win.jobs.shutdown()
        shiboken6.delete(win)  # deleted from C++ without a close event, as a parent deletes a child
    qtbot.wait(10)
    for plotter in plotters:
        assert plotter.__dict__["_surface"] is None and plotter.__dict__["_ctx"] is None
