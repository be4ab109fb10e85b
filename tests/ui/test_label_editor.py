"""The label editor in the real window: brush strokes through the slice view's own mouse map,
undo/redo from the Edit menu, the unsaved-edits question, saving, and crash recovery."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QMessageBox

from viewer.model import ImageLayer, LabelLayer

pytestmark = pytest.mark.gui


@pytest.fixture
def window(qtbot, phantom_files, tmp_path, monkeypatch):
    monkeypatch.setenv("LUCID3D_AUTOSAVE_DIR", str(tmp_path / "autosave"))
    from viewer.ui.app import make_window

    win = make_window()  # not qtbot.addWidget: it would close the window before the edits are marked saved
    win.show()
    qtbot.waitExposed(win)
    win.open_paths([str(p) for p in phantom_files])
    qtbot.waitUntil(lambda: len(win.scene) == 2, timeout=30000)
    win.edit_dock.show()
    yield win
    for s in win.edit_panel.sessions.values():  # nothing to ask about when the test closes it
        s.history.mark_saved()
    win.close()
    win.deleteLater()  # what qtbot.addWidget would do: the C++ side goes before Python exits
    qtbot.wait(10)


def _stroke(win, qtbot, ras_points, kind="axial"):
    """Press, drag through ``ras_points``, release: VTK events on the view's own interactor."""
    panel = win.views[kind]
    iren = panel.plotter.iren.interactor
    view = panel.view
    for i, ras in enumerate(ras_points):
        x, y = view.ras_to_display(np.asarray(ras, float))
        iren.SetEventInformation(int(round(x)), int(round(y)), 0, 0)
        iren.InvokeEvent("LeftButtonPressEvent" if i == 0 else "MouseMoveEvent")
    iren.InvokeEvent("LeftButtonReleaseEvent")
    qtbot.wait(50)


def _labels(win) -> LabelLayer:
    return next(l for l in win.scene if isinstance(l, LabelLayer))


def test_paint_erase_undo_redo(window, qtbot):
    win = window
    lab = _labels(win)
    image = next(l for l in win.scene if isinstance(l, ImageLayer))
    win.scene.selected = lab
    c = image.bounds_world().mean(0)
    win.scene.cursor = c
    qtbot.wait(200)
    before = np.array(lab.data.array)
    ep = win.edit_panel
    ep.session.add_label("lesion")  # a new label value
    value = ep.session.value
    ep.size.setValue(6.0)
    win._edit_tool("paint")
    assert win.views["axial"].view.tool is ep.session
    _stroke(win, qtbot, [c + [-10, 0, 0], c + [0, 0, 0], c + [10, 0, 0]])
    painted = np.asarray(lab.data.array) == value
    voxel_mm2 = float(np.prod(np.linalg.norm(lab.data.affine[:3, :2], axis=0)))
    assert painted.sum() * voxel_mm2 > 300  # a 12 mm wide line across ~20 mm
    ijk = np.rint(np.linalg.inv(lab.data.affine) @ np.append(c, 1))[:3].astype(int)
    assert painted[tuple(ijk)]
    assert len(np.unique(np.nonzero(painted)[2])) == 1  # a disk brush stays in its axial slice
    assert len(ep.session.history.done) == 1  # one stroke, one undo step
    shot_painted = np.asarray(win.views["axial"].screenshot())[..., :3].copy()

    win._edit_tool("erase")
    _stroke(win, qtbot, [c])
    assert (np.asarray(lab.data.array) == value).sum() < painted.sum()

    undo = next(a for a in win.menuBar().actions() if a.text() == "&Edit").menu().actions()[0]
    undo.trigger()
    np.testing.assert_array_equal(np.asarray(lab.data.array) == value, painted)
    undo.trigger()
    np.testing.assert_array_equal(np.asarray(lab.data.array), before)
    qtbot.wait(200)
    shot_undone = np.asarray(win.views["axial"].screenshot())[..., :3]
    assert np.abs(shot_painted.astype(int) - shot_undone.astype(int)).sum() > 0  # the slice redrew
    win.edit_panel.redo()
    np.testing.assert_array_equal(np.asarray(lab.data.array) == value, painted)
    win._edit_tool("navigate")
    assert win.views["axial"].view.tool is None


def _answer(qtbot, button):
    def click():
        box = next((w for w in QApplication.topLevelWidgets()
                    if isinstance(w, QMessageBox) and w.objectName() == "unsaved_dialog" and w.isVisible()), None)
        if box is None:
            QTimer.singleShot(50, click)
            return
        box.button(button).click()
    QTimer.singleShot(50, click)


def _paint_one_dab(win, qtbot) -> LabelLayer:
    """Select the label layer and paint one dab at its centre: an unsaved edit."""
    lab = _labels(win)
    win.scene.selected = lab
    c = lab.bounds_world().mean(0)
    win.scene.cursor = c
    win._edit_tool("paint")
    _stroke(win, qtbot, [c])
    return lab


def test_unsaved_edits_are_asked_about_then_saved_with_names(window, qtbot, tmp_path):
    win = window
    lab = _paint_one_dab(win, qtbot)
    assert win.edit_panel.unsaved() == [lab]
    _answer(qtbot, QMessageBox.StandardButton.Cancel)
    win.layer_panel.remove_selected()
    assert lab in win.scene  # cancelled: nothing lost
    out = tmp_path / "edited_seg.nii.gz"
    win.edit_panel.save(lab, str(out))
    qtbot.waitUntil(lambda: not win.edit_panel.unsaved(), timeout=20000)
    from viewer.io import load_path

    back = load_path(out, as_labels=True)
    np.testing.assert_array_equal(np.asarray(back.array), np.asarray(lab.data.array))
    assert back.table[1].name == lab.data.table[1].name  # names came back from edited_seg.txt
    assert (tmp_path / "edited_seg.txt").is_file()
    win.layer_panel.remove_selected()  # saved: no question
    assert lab not in win.scene


def test_autosave_is_offered_back_after_a_crash(window, qtbot, tmp_path):
    win = window
    lab = _paint_one_dab(win, qtbot)
    edited = np.array(lab.data.array)
    win.edit_panel.autosave()
    qtbot.waitUntil(lambda: len(list((tmp_path / "autosave").glob("*.json"))) == 1, timeout=20000)

    from viewer.ui.app import make_window

    other = make_window()  # as if the first one had crashed: its autosave is still there
    other.show()
    qtbot.waitUntil(lambda: getattr(other, "recover_box", None) is not None and other.recover_box.isVisible(),
                    timeout=10000)
    other.recover_box.button(QMessageBox.StandardButton.Open).click()
    qtbot.waitUntil(lambda: len(other.scene) == 1, timeout=20000)
    rec = other.scene[0]
    assert isinstance(rec, LabelLayer) and rec.name.endswith("(recovered)")
    np.testing.assert_array_equal(np.asarray(rec.data.array), edited)
    other.close()
    other.deleteLater()


def test_ruler_and_region_are_measured_drawn_and_listed(window, qtbot):
    win = window
    image = next(l for l in win.scene if isinstance(l, ImageLayer))
    win.scene.selected = image
    c = image.bounds_world().mean(0)
    win.scene.cursor = c
    qtbot.wait(100)
    before = np.asarray(win.views["axial"].screenshot())[..., :3].astype(int)
    win._edit_tool("ruler")
    a, b = c + [-12.0, 0, 0], c + [12.0, 5.0, 0]
    _stroke(win, qtbot, [a, b])
    (ruler,) = win.scene.measurements
    # the view maps pixels to mm: within a pixel's worth of the true 24.5 mm
    px_mm = 2 * win.views["axial"].view.renderer.GetActiveCamera().GetParallelScale() / win.views["axial"].view.renderer.GetSize()[1]
    assert abs(ruler.length_mm - float(np.linalg.norm(b - a))) < 2 * px_mm + 1e-6
    win.edit_panel.tool_btns["region"].click()
    _stroke(win, qtbot, [c, c + [10.0, 0, 0]])
    region = win.scene.measurements[1]
    assert region.radius_mm == pytest.approx(10.0, abs=2 * px_mm) and region.stats["voxels"] > 50
    assert win.edit_panel.measure_list.count() == 2 and "mm" in win.edit_panel.measure_list.item(0).text()
    qtbot.wait(200)
    after = np.asarray(win.views["axial"].screenshot())[..., :3].astype(int)
    cyan = (after[..., 1] > 200) & (after[..., 2] > 200) & (after[..., 0] < 150)
    assert cyan.sum() > 30 and not ((before[..., 1] > 200) & (before[..., 2] > 200) & (before[..., 0] < 150)).sum() > 30
    win.edit_panel.measure_list.setCurrentRow(0)
    win.edit_panel.delete_measure_btn.click()
    assert win.scene.measurements == [region]


def test_clean_up_tools_run_in_a_worker_and_undo_in_one_step(window, qtbot):
    win = window
    lab = _labels(win)
    win.scene.selected = lab
    ep = win.edit_panel
    ep.session.add_label("ring")
    value = ep.session.value
    arr = np.asarray(lab.data.array)
    k = arr.shape[2] // 2
    yy, xx = np.mgrid[:arr.shape[0], :arr.shape[1]]
    r = np.hypot(yy - arr.shape[0] / 2, xx - arr.shape[1] / 2)
    ring = (r <= 8) & (r >= 5)
    inside = r < 5
    arr[:, :, k][inside] = 0
    arr[:, :, k][ring] = value
    ep.axis_box.setCurrentText("axial")
    ep.fill_btn.click()
    assert ep.status.text() == "fill…"  # the computation went to a worker
    qtbot.waitUntil(lambda: ep.status.text().startswith("fill:"), timeout=20000)
    assert np.all(np.asarray(lab.data.array)[:, :, k][inside] == value)
    assert len(ep.session.history.done) == 1
    ep.undo()
    assert not np.any(np.asarray(lab.data.array)[:, :, k][inside] == value)
