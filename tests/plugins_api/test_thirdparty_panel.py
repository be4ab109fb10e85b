"""The third-party plugins (tests/thirdparty), installed with pip, trained and run from the
window's panels: discovered like the built-ins, with no change to viewer/."""

from __future__ import annotations

import numpy as np
import pytest

from viewer.model import LabelLayer, LabelMap, Volume, layer_for

pytestmark = [pytest.mark.gui]


def _ball(centre=(20, 22, 18), radius=7, seed=0):
    rng = np.random.default_rng(seed)
    ijk = np.indices((40, 44, 36)).transpose(1, 2, 3, 0)
    ball = np.linalg.norm(ijk - np.array(centre), axis=-1) <= radius
    image = (rng.normal(100, 15, ball.shape) + 120 * ball).astype(np.float32)
    affine = np.diag([0.8, 0.8, 1.5, 1.0])
    return Volume(image, affine, name=f"ball{seed}"), LabelMap(ball.astype(np.uint8) * 3, affine, name=f"ball{seed} labels")


@pytest.fixture
def window(thirdparty_installed, app_window):
    return app_window


def _press(qtbot, button):
    from PySide6.QtCore import Qt

    assert button.isEnabled(), button.text()
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)


def test_threshold_segmenter_from_the_panel(window, qtbot):
    image, labels = _ball()
    window.scene.add(layer_for(image))
    window.scene.add(layer_for(labels))
    window.segmentation_dock.show()
    panel = window.segmentation_panel
    names = [panel.chooser.box.itemText(i) for i in range(panel.chooser.box.count())]
    assert "threshold" in names and any(n.startswith("broken") for n in names)
    panel.chooser.choose("threshold")
    assert panel.form is not None and panel.form.widget("margin").value == 0.5  # its Config, as a form
    _press(qtbot, panel.train_btn)
    qtbot.waitUntil(lambda: panel.job is None and panel.model is not None, timeout=30000)
    assert panel.model.plugin == "threshold" and "threshold" in panel.model.metrics
    run = panel.run_tab
    _press(qtbot, run.run_btn)
    qtbot.waitUntil(lambda: panel.job is None and run.prediction is not None, timeout=30000)
    pred = run.prediction
    assert isinstance(pred, LabelLayer) and pred.data.shape == image.shape
    truth = labels.array == 3
    got = np.asarray(pred.data.array) == 3
    assert 2 * np.sum(got & truth) / (got.sum() + truth.sum()) > 0.9


def test_flat_renderer_from_the_panel(window, qtbot):
    from viewer.geometry.primitives import uv_sphere
    from viewer.model.camera import sphere_cameras
    from viewer.model.viewset import Frame, ViewSet

    cams = sphere_cameras(4, (0, 0, 0), 4.0, 32)
    colour = np.array([200, 80, 40, 255], np.uint8)
    frames = [Frame(c, np.broadcast_to(colour, (32, 32, 4)).copy(), name=f"f{i}.png",
                    split="test" if i == 3 else "train") for i, c in enumerate(cams)]
    window.scene.add(layer_for(uv_sphere(radius=1.0)))
    window.scene.add(layer_for(ViewSet(frames)))
    window.render_dock.show()
    panel = window.render_panel
    panel.chooser.choose("flat")
    _press(qtbot, panel.train_btn)
    qtbot.waitUntil(lambda: panel.job is None and panel.model is not None, timeout=30000)
    assert panel.model.plugin == "flat"
    np.testing.assert_allclose(panel.model.values["rgb"], [200 / 255, 80 / 255, 40 / 255], atol=1e-4)  # float32 means
    assert panel.bar.preview.rgb is not None  # its ImagePreview was drawn
