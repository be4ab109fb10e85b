"""The Lesions panel in the real window: a tiny manifest of CT crops (viewer.samples.lesions, bright
lesions, 24³ voxels), real torch training of the ``heatmap3d`` classifier and detector for a few
steps, and what a run adds to the scene; the boxes table jumps to a box.

* The table lists the selected boxes layer best score first; clicking a row moves the linked
  cursor to that box's centre, turns the 3D camera to it and selects the box.
* Classification from the panel: curves drawn, a kept checkpoint, probabilities summing to 1 and
  the saliency map as a heat overlay on the input's exact grid (a new layer; the input untouched).
* Detection from the panel: a new boxes layer in RAS mm and one table row per box.
* A manifest that cannot be trained on is one line, and the panel keeps no cases.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import Qt

from viewer.model import Boxes, BoxesLayer, ImageLayer, layer_for

from ..conftest import quiesce

pytestmark = [pytest.mark.gui, pytest.mark.slow]

CROP, CONTRAST = 24, (80.0, 100.0)
TINY = dict(minutes=0.0, max_steps=25, patch_size=CROP, batch_size=1)  # one curve point (every 25 steps)


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    from viewer.samples.lesions import write_lesion_set

    return write_lesion_set(tmp_path_factory.mktemp("cases"), 8, crop=CROP, contrast=CONTRAST)


@pytest.fixture
def window(qtbot):
    from viewer.samples.lesions import TEST_SEED, lesion_crop
    from viewer.ui.app import make_window

    win = make_window()
    qtbot.addWidget(win, before_close_func=quiesce(qtbot))
    crop = lesion_crop(TEST_SEED, lesion=True, crop=CROP, contrast=CONTRAST)
    win.scene.add(layer_for(crop.volume))
    win.lesions_dock.show()
    win.show()
    qtbot.waitExposed(win)
    yield win


def _press(qtbot, button) -> None:
    assert button.isEnabled(), button.text()
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)


def _load_cases(qtbot, panel, manifest) -> None:
    panel.cases.load(manifest)
    qtbot.waitUntil(lambda: bool(panel.cases.rows) and not panel.cases.loading, timeout=30000)
    assert "8 cases: 4 lesion, 4 no lesion; boxes for all" in panel.cases.label.text()


def _train(qtbot, task) -> None:
    task.form.set_values(**TINY)
    _press(qtbot, task.train_btn)
    assert task.job is not None and not task.train_btn.isEnabled()
    qtbot.waitUntil(lambda: task.job is None, timeout=120000)  # generous: CI machines are shared
    assert task.model is not None, task.last_error
    assert task.model.metrics["steps"] == TINY["max_steps"]
    xs, ys = task.bar.curve("loss")
    assert len(xs) >= 1 and np.all(np.isfinite(ys))
    assert Path(task.model_dir, "model.safetensors").is_file()  # the checkpoint kept
    assert task.run_btn.isEnabled()


def test_table_click_moves_the_cursor_and_camera_to_the_box(window, qtbot):
    panel = window.lesions_panel.detector
    boxes = BoxesLayer(Boxes([[0.0, 0.0, 0.0, 4.0, 4.0, 4.0], [10.0, 12.0, 14.0, 16.0, 20.0, 30.0]], [0.4, 0.9]))
    window.scene.add(boxes)  # selected: the table lists it
    window.lesions_panel.tabs.setCurrentWidget(panel)
    panel.tabs.setCurrentIndex(2)
    qtbot.waitUntil(lambda: panel.table.isVisible(), timeout=5000)
    assert panel.boxes is boxes and panel.table.rowCount() == 2
    assert panel.table.item(0, 0).text() == "0.90" and panel.table.item(1, 0).text() == "0.40"  # best first
    assert panel.table.item(0, 1).text() == "13.0, 16.0, 22.0"
    rect = panel.table.visualItemRect(panel.table.item(0, 1))
    qtbot.mouseClick(panel.table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    np.testing.assert_allclose(window.scene.cursor, [13.0, 16.0, 22.0])
    assert boxes.selected_box == 1
    cam = window.views["3d"].view.renderer.GetActiveCamera()
    np.testing.assert_allclose(cam.GetFocalPoint(), [13.0, 16.0, 22.0], atol=1e-6)
    # the slice views follow the cursor: the axial view now cuts the selected box
    axial = window.views["axial"].view
    assert axial.cuts[id(boxes)].cut == [1]
    # the layer panel's controls drive the same layer: a threshold above 0.4 hides the other box
    assert window.layer_panel.min_score.isVisibleTo(window.layer_panel)
    window.layer_panel.min_score.setValue(0.5)
    assert boxes.min_score == 0.5
    scene_cursor = window.scene.cursor
    window.scene.cursor = [2.0, 2.0, 2.0]
    assert axial.cuts[id(boxes)].cut == []  # box 0 is cut here, but hidden below the threshold
    window.layer_panel.min_score.setValue(0.0)
    assert axial.cuts[id(boxes)].cut == [0]
    window.scene.cursor = scene_cursor
    rect = panel.table.visualItemRect(panel.table.item(1, 1))
    qtbot.mouseClick(panel.table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    np.testing.assert_allclose(window.scene.cursor, [2.0, 2.0, 2.0])
    assert boxes.selected_box == 0 and axial.cuts[id(boxes)].cut == [0]


def test_classifier_from_the_panel_adds_a_saliency_overlay(window, qtbot, manifest):
    lesions = window.lesions_panel
    task = lesions.classifier
    image = window.scene[0]
    before = np.array(image.data.array, copy=True)
    _load_cases(qtbot, lesions, manifest)
    assert task.chooser.plugin().name == "heatmap3d"  # the preferred classifier first
    _train(qtbot, task)
    assert task.image_box.currentData() is image
    n = len(window.scene)
    _press(qtbot, task.run_btn)
    qtbot.waitUntil(lambda: task.job is None and task.result is not None, timeout=60000)
    probs = task.result["probabilities"]
    assert set(probs) == {"lesion", "no lesion"} and abs(sum(probs.values()) - 1) < 1e-6
    assert task.table.rowCount() == 2 and task.result["label"] in task.result_label.text()
    sal = task.saliency
    assert isinstance(sal, ImageLayer) and sal in list(window.scene) and len(window.scene) == n + 1
    assert sal.data.shape == image.data.shape
    np.testing.assert_allclose(sal.data.affine, image.data.affine)
    assert (sal.colormap, sal.visible) == ("heat", True) and 0 < sal.opacity < 1
    assert sal not in task.images()  # a map is not offered as an input
    np.testing.assert_array_equal(image.data.array, before)


def test_detector_from_the_panel_adds_a_boxes_layer(window, qtbot, manifest):
    from viewer.io.case_manifest import image_extent

    lesions = window.lesions_panel
    task = lesions.detector
    image = window.scene[0]
    _load_cases(qtbot, lesions, manifest)
    _train(qtbot, task)
    task.min_score.setValue(0.0)  # a 30-step model's scores are low: list whatever it finds
    _press(qtbot, task.run_btn)
    qtbot.waitUntil(lambda: task.job is None and task.boxes is not None, timeout=60000)
    layer = task.boxes
    assert isinstance(layer, BoxesLayer) and layer in list(window.scene) and len(layer.data) >= 1
    lo, hi = image_extent(image.data.shape, image.data.affine)
    assert np.all(layer.data.corners[:, :3] >= lo - 1e-3) and np.all(layer.data.corners[:, 3:] <= hi + 1e-3)
    assert task.table.rowCount() == len(layer.data)
    scores = [float(task.table.item(r, 0).text()) for r in range(task.table.rowCount())]
    assert scores == sorted(scores, reverse=True)


@pytest.mark.parametrize("rows, words", [
    ([{"image": "a.nii.gz", "label": "lesion"}, {"image": "b.nii.gz", "label": "no lesion"}], "no such file"),
    ([{"image": "a.nii.gz", "label": "lesion"}], "one class only"),
    ("not a list", "non-empty JSON list"),
], ids=["missing-image", "one-class", "not-a-list"])
def test_bad_manifest_is_one_line(window, qtbot, tmp_path, rows, words):
    path = tmp_path / "cases.json"
    path.write_text(json.dumps(rows))
    lesions = window.lesions_panel
    lesions.cases.load(path)
    task = lesions.current()
    qtbot.waitUntil(lambda: task.last_error is not None, timeout=10000)
    assert str(path) in task.last_error and words in task.last_error and "\n" not in task.last_error
    assert lesions.cases.rows == [] and not task.train_btn.isEnabled()


def test_cancel_keeps_the_model_so_far(window, qtbot, manifest):
    lesions = window.lesions_panel
    task = lesions.classifier
    _load_cases(qtbot, lesions, manifest)
    task.form.set_values(**{**TINY, "max_steps": 1_000_000})
    _press(qtbot, task.train_btn)
    qtbot.waitUntil(lambda: "step " in task.bar.status.text(), timeout=120000)  # in the training loop
    assert not lesions.cases.open_btn.isEnabled()  # no other manifest under a running training
    _press(qtbot, task.bar.cancel_btn)
    qtbot.waitUntil(lambda: task.job is None, timeout=60000)
    assert task.model is not None and task.model.metrics["stopped_by"] == "cancelled"
    assert Path(task.model_dir, "model.safetensors").is_file()
    assert task.run_btn.isEnabled() and lesions.cases.open_btn.isEnabled()


def test_detector_refuses_cases_without_boxes(window, qtbot, tmp_path):
    from viewer.samples.lesions import write_lesion_set

    lesions = window.lesions_panel
    path = write_lesion_set(tmp_path, 2, crop=CROP, boxes=False)
    lesions.cases.load(path)
    qtbot.waitUntil(lambda: bool(lesions.cases.rows), timeout=30000)
    assert "labels alone" in lesions.cases.label.text()
    task = lesions.detector
    _press(qtbot, task.train_btn)
    assert task.job is None and "case 1" in task.last_error and "boxes" in task.last_error


def test_window_scene_file_keeps_the_boxes(window, qtbot, tmp_path):
    """Save and reopen in the window: the boxes come back with their display state and are drawn."""
    from viewer.io import load_path, save_nifti

    crop = window.scene[0]
    save_nifti(crop.data, tmp_path / "crop.nii.gz")
    window.scene.clear()
    window.scene.add(layer_for(load_path(tmp_path / "crop.nii.gz")))
    boxes = BoxesLayer(Boxes([[0.0, 0.0, 0.0, 4.0, 4.0, 4.0]], [0.7], ["lesion"]), name="found", min_score=0.2)
    window.scene.add(boxes)
    window.scene.cursor = [2.0, 2.0, 2.0]
    path = tmp_path / "s.lucid3d.json"
    window.save_scene(str(path))
    window.scene.clear()
    window.open_scene(str(path))
    qtbot.waitUntil(lambda: len(window.scene) == 2, timeout=30000)
    again = window.scene[1]
    assert isinstance(again, BoxesLayer) and again is not boxes
    assert (again.name, again.min_score, again.data.labels) == ("found", 0.2, ["lesion"])
    np.testing.assert_array_equal(again.data.corners, boxes.data.corners)
    assert window.views["axial"].view.cuts[id(again)].cut == [0]
