"""The Segmentation panel in the real window: real torch training, prediction, cancel, files.

Tiny settings (32³ patches, a few steps) keep the whole file under a minute on 2 CPU cores.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from viewer.model import ImageLayer, LabelLayer

from ..conftest import quiesce

pytestmark = [pytest.mark.gui, pytest.mark.slow]

TINY = dict(patch_size=32, minutes=0.25, iters_per_epoch=3, val_every=1, batch_size=2, levels=3,
            sw_batch_size=4)


@pytest.fixture
def window(qtbot):
    from viewer.samples.demo import ct_phantom
    from viewer.model import layer_for
    from viewer.ui.app import make_window

    win = make_window()
    qtbot.addWidget(win, before_close_func=quiesce(qtbot))
    image, labels = ct_phantom(shape=(48, 48, 32))
    win.scene.add(layer_for(image))
    win.scene.add(layer_for(labels))
    win.segmentation_dock.show()
    win.show()
    qtbot.waitExposed(win)
    yield win


def _panel(win, **settings):
    panel = win.segmentation_panel
    panel.form.set_values(**{**TINY, **settings})
    return panel


def _press(qtbot, button) -> None:
    from PySide6.QtCore import Qt

    assert button.isEnabled(), button.text()
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)


def test_settings_form_round_trips_the_config(qtbot):
    from plugins.unet3d import Config
    from viewer.ui.plugin_form import PluginForm

    form = PluginForm(Config)
    qtbot.addWidget(form)
    assert form.config() == Config()
    form.set_values(learning_rate=2.5e-4, minutes=0.3, tta=False, device="cpu")
    cfg = form.config()
    assert (cfg.learning_rate, cfg.minutes, cfg.tta) == (2.5e-4, 0.3, False)
    assert "patch" in form.widget("patch_size").tooltip  # field help as tooltip


def test_train_then_run_adds_new_layers(window, qtbot, tmp_path):
    panel = _panel(window)
    image, manual = window.scene[0], window.scene[1]
    before = np.array(manual.data.array, copy=True)
    assert panel.pairs.table.rowCount() == 1 and panel.pairs.table.item(0, 1).text() == manual.name

    with qtbot.waitSignal(panel.train_btn.clicked, timeout=1000):
        _press(qtbot, panel.train_btn)
    job = panel.job
    assert job is not None and not panel.train_btn.isEnabled()
    with qtbot.waitSignal(job.finished, timeout=120000):  # generous: CI machines are shared
        pass
    qtbot.waitUntil(lambda: panel.job is None, timeout=5000)
    assert panel.model is not None
    xs, ys = panel.bar.curve("loss")
    assert len(xs) >= 1 and np.all(np.isfinite(ys))
    assert len(panel.bar.curve("val_dice")[0]) >= 1
    assert all(len(c.getData()[0]) >= 1 for c in panel.bar.plots[0].curves.values())  # drawn
    ckpt = Path(panel.model_dir)
    assert (ckpt / "model.safetensors").is_file() and (ckpt / "config.json").is_file()
    # the precision the hardware gave the training is said when it is not float32
    assert ("trained in bfloat16" in panel.model_label.text()) == (panel.model.metrics["precision"] == "bfloat16")
    if panel.model.metrics.get("validated_on_training_data"):
        # one training pair: the panel says the curve is training data, and why there is no preview
        assert "training data" in panel.bar.preview.image.text() and "training data" in panel.model_label.text()
    else:
        assert panel.bar.preview.rgb is not None  # the validation preview (a SlicePreview) was drawn

    run = panel.run_tab
    assert run.reference_box.currentData() is manual
    _press(qtbot, run.run_btn)
    qtbot.waitUntil(lambda: panel.job is None and run.prediction is not None, timeout=60000)
    pred, unc = run.prediction, run.uncertainty
    assert isinstance(pred, LabelLayer) and pred is not manual and pred in list(window.scene)
    assert isinstance(unc, ImageLayer) and unc in list(window.scene)
    assert pred.name.startswith(image.name) and "unet3d" in pred.name
    for layer in (pred, unc):
        assert layer.data.shape == image.data.shape
        assert np.array_equal(layer.data.affine, image.data.affine)
    assert (unc.colormap, unc.opacity, unc.visible) == ("heat", 0.8, True)
    np.testing.assert_array_equal(manual.data.array, before)  # the manual labels are untouched
    # per-label volume and Dice in the panel
    assert run.result_table.rowCount() == len(pred.data.table)
    dice = [float(run.result_table.item(r, 3).text()) for r in range(run.result_table.rowCount())]
    assert all(0.0 <= d <= 1.0 for d in dice)
    run.unc_box.setChecked(False)
    assert unc.visible is False

    # a second run (no TTA: no uncertainty map, CRF clean-up on) lands in yet another layer
    assert not run.crf_box.isHidden() and not run.crf_box.isChecked()  # unet3d has the setting, off
    n = len(window.scene)
    run.tta_box.setChecked(False)
    run.crf_box.setChecked(True)
    _press(qtbot, run.run_btn)
    qtbot.waitUntil(lambda: panel.job is None and len(window.scene) == n + 1, timeout=60000)
    assert run.prediction is not pred and pred in list(window.scene)
    assert run.uncertainty is None and not run.unc_box.isEnabled()

    # the mask on disk, on the image's grid
    out = tmp_path / "mask.nii.gz"
    run.save_mask(str(out), pred)
    qtbot.waitUntil(out.exists, timeout=10000)
    nii = nib.load(str(out))
    assert nii.shape == image.data.shape
    np.testing.assert_allclose(nii.affine, image.data.affine, atol=1e-4)
    np.testing.assert_array_equal(np.asarray(nii.dataobj), pred.data.array)

    # save the model, then load it back from disk
    saved = tmp_path / "model"
    panel.save_model(str(saved))
    qtbot.waitUntil(lambda: (saved / "config.json").is_file(), timeout=10000)
    panel.model = None
    panel.load_model(str(saved))
    qtbot.waitUntil(lambda: panel.model is not None, timeout=15000)
    assert panel.model_dir == str(saved) and run.run_btn.isEnabled()


def test_cancel_keeps_a_loadable_checkpoint(window, qtbot):
    from viewer.plugins import checkpoint_plugin_name, get_plugin

    panel = _panel(window, minutes=2.0)
    _press(qtbot, panel.train_btn)
    job = panel.job
    # cancel after the first step, before any validation: the weights so far are still
    # validated and written, so the folder loads
    with qtbot.waitSignal(job.progress, timeout=60000, check_params_cb=lambda s, t, m: "step" in m):
        pass
    with qtbot.waitSignal(job.finished, timeout=60000) as blocker:
        _press(qtbot, panel.bar.cancel_btn)
    model = blocker.args[0]
    assert model.metrics["stopped_by"] == "cancelled"
    qtbot.waitUntil(lambda: panel.job is None, timeout=5000)
    assert panel.model is model and "Cancelled" in panel.bar.status.text()
    loaded = get_plugin("unet3d").load(panel.model_dir)
    assert loaded.plugin == model.plugin == "unet3d"
    assert checkpoint_plugin_name(Path(panel.model_dir)) == "unet3d"


def test_folder_pairs_are_listed_not_opened(window, qtbot, tmp_path):
    from viewer.samples.demo import ct_phantom

    for seed in (1, 2):
        vol, lab = ct_phantom(shape=(32, 32, 24), seed=seed)
        nib.save(nib.Nifti1Image(np.asarray(vol.array), vol.affine), tmp_path / f"case{seed}.nii.gz")
        nib.save(nib.Nifti1Image(np.asarray(lab.array), lab.affine), tmp_path / f"case{seed}_seg.nii.gz")
    (tmp_path / "notes.txt").write_text("not a volume")
    pairs = window.segmentation_panel.pairs
    n_layers = len(window.scene)
    pairs.add_folder(str(tmp_path))
    qtbot.waitUntil(lambda: len(pairs.folder_pairs) == 2, timeout=15000)
    assert len(window.scene) == n_layers  # listed for training, not opened as layers
    assert pairs.table.rowCount() == 3
    names = [p["case"].name for p in pairs.training_pairs()]
    assert names == [window.scene[0].name, "case1", "case2"]


@pytest.mark.parametrize("seconds, text", [(0, "about 0 s left"), (42.4, "about 42 s left"),
                                           (125, "about 2 min 05 s left"), (3700, "about 1 h 01 min left")])
def test_format_left(seconds, text):
    from viewer.ui.training_widgets import format_left

    assert format_left(seconds) == text


def test_pairs_in_folder_by_name(tmp_path):
    from viewer.ui.segmentation import pairs_in_folder

    for name in ("a.nii.gz", "a_seg.nii.gz", "b.nii", "b_labels.nii", "c.nrrd", "c_mask.nrrd",
                 "lonely.nii.gz", "x_label.nii.gz", "notes.txt"):
        (tmp_path / name).write_bytes(b"")
    got = [(i.name, l.name) for i, l in pairs_in_folder(tmp_path)]
    assert got == [("a.nii.gz", "a_seg.nii.gz"), ("b.nii", "b_labels.nii"), ("c.nrrd", "c_mask.nrrd")]


def test_copy_checkpoint_replaces_only_checkpoints(tmp_path):
    from viewer.model import LoadError
    from viewer.ui.segmentation import copy_checkpoint

    src = tmp_path / "src"
    src.mkdir()
    (src / "config.json").write_text("{}")
    (src / "model.safetensors").write_bytes(b"w")
    dst = copy_checkpoint(src, tmp_path / "out" / "model")
    assert sorted(p.name for p in dst.iterdir()) == ["config.json", "model.safetensors"]
    (src / "model.safetensors").write_bytes(b"w2")
    copy_checkpoint(src, dst)  # an older checkpoint there is replaced
    assert (dst / "model.safetensors").read_bytes() == b"w2"
    other = tmp_path / "other"
    other.mkdir()
    (other / "thesis.docx").write_bytes(b"precious")
    with pytest.raises(LoadError):
        copy_checkpoint(src, other)
    assert (other / "thesis.docx").read_bytes() == b"precious"
    assert not [p for p in tmp_path.rglob(".*")]  # no temporary folders left behind


@pytest.mark.parametrize("field,value,words", [("patch_size", 30, "patch"), ("learning_rate", 0.0, "learning_rate")],
                         ids=["patch-not-a-multiple-of-4", "learning-rate-zero"])
def test_settings_out_of_bounds_are_refused_before_training(window, qtbot, field, value, words):
    """The form meets the same checks as a command line or an edited config.json."""
    panel = _panel(window)
    panel.form.set_values(**{field: value})
    assert panel.form.values()[field] == value  # the form took it: only validate() stands in the way
    panel.last_error = None
    panel.train()
    assert panel.job is None and panel.last_error is not None and words in panel.last_error
