"""A 4D NIfTI in the real window: the layer panel's Frame slider shows each time frame, read in a
worker, in the slice views (rendered pixels), and a scene file brings the frame back."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from viewer.model import ImageLayer

pytestmark = pytest.mark.gui


@pytest.fixture
def window(app_window):
    return app_window


def _four_d(tmp_path, gz: bool):
    # frame t: every voxel equals 100 * t (frame 0 black, frame 3 bright)
    data = np.stack([np.full((24, 24, 12), 100 * t, np.int16) for t in range(4)], axis=-1)
    path = tmp_path / ("cine.nii.gz" if gz else "cine.nii")
    nib.save(nib.Nifti1Image(data, np.diag([2.0, 2.0, 3.0, 1.0])), str(path))
    return path


def _centre_grey(win) -> float:
    win.views["axial"].plotter.render()
    img = np.asarray(win.views["axial"].plotter.screenshot(return_img=True))
    h, w = img.shape[:2]
    return float(img[h // 2 - 5:h // 2 + 5, w // 2 - 5:w // 2 + 5, :3].mean())


@pytest.mark.parametrize("gz", [False, True], ids=["nii", "nii.gz"])
def test_frame_slider_shows_each_frame(window, qtbot, tmp_path, gz):
    window.open_paths([str(_four_d(tmp_path, gz))])
    qtbot.waitUntil(lambda: len(window.scene) == 1, timeout=20000)
    layer = window.scene[0]
    assert isinstance(layer, ImageLayer) and layer.n_frames == 4
    layer.window, layer.level = 300.0, 150.0  # 0 -> black, 300 -> white
    panel = window.layer_panel
    panel.list.setCurrentRow(0)
    assert panel.form.isRowVisible(panel.frame) and panel.frame.maximum() == 3
    dark = _centre_grey(window)
    panel.frame.setValue(3)
    qtbot.waitUntil(lambda: int(layer.data.array[0, 0, 0]) == 300, timeout=20000)
    bright = _centre_grey(window)
    assert dark < 60 and bright > 200, (dark, bright)
    for k in (1, 2, 3, 0):  # a quick drag: only the last frame asked for ends up shown
        panel.frame.setValue(k)
    qtbot.waitUntil(lambda: not window.jobs.busy("io"), timeout=20000)
    assert layer.frame == 0 and int(layer.data.array[5, 5, 5]) == 0


def test_three_d_image_has_no_frame_row(window, qtbot, tmp_path):
    path = tmp_path / "v.nii"
    nib.save(nib.Nifti1Image(np.zeros((8, 8, 8), np.int16), np.eye(4)), str(path))
    window.open_paths([str(path)])
    qtbot.waitUntil(lambda: len(window.scene) == 1, timeout=20000)
    window.layer_panel.list.setCurrentRow(0)
    assert not window.layer_panel.form.isRowVisible(window.layer_panel.frame)


def test_scene_file_restores_the_frame(window, qtbot, tmp_path):
    window.open_paths([str(_four_d(tmp_path, False))])
    qtbot.waitUntil(lambda: len(window.scene) == 1, timeout=20000)
    window.scene[0].frame = 2
    qtbot.waitUntil(lambda: int(window.scene[0].data.array[0, 0, 0]) == 200, timeout=20000)
    scene_file = tmp_path / "s.lucid3d.json"
    window.save_scene(str(scene_file))
    window.open_scene(str(scene_file))
    qtbot.waitUntil(lambda: len(window.scene) == 1 and window.scene[0].frame == 2
                    and int(window.scene[0].data.array[0, 0, 0]) == 200, timeout=30000)
