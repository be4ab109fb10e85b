"""Compare two label layers in the window: the table holds the metrics' own numbers and the
confusion overlay marks exactly the false positives and negatives."""

from __future__ import annotations

import numpy as np
import pytest

from viewer.analysis.metrics import label_stats
from viewer.model import LabelLayer, LabelMap, layer_for

pytestmark = pytest.mark.gui


def test_compare_reference_and_prediction(qtbot, phantom_files):
    from viewer.io import load_path
    from viewer.ui.app import make_window

    win = make_window()
    qtbot.addWidget(win)
    win.show()
    ref = load_path(phantom_files[1], as_labels=True)
    shifted = np.roll(np.asarray(ref.array), 2, axis=0)  # a prediction 2 voxels off
    pred = LabelMap(shifted, ref.affine, ref.table, name="prediction")
    ref_layer, pred_layer = layer_for(ref), layer_for(pred)
    win.scene.add(ref_layer)
    win.scene.add(pred_layer)
    panel = win.compare_panel
    panel.choose(ref_layer, pred_layer)
    panel.compare()
    qtbot.waitUntil(lambda: panel.result is not None and panel.overlay is not None, timeout=30000)
    want = label_stats(pred, ref)
    assert panel.table.rowCount() == len(want)
    for row, (v, s) in enumerate(want.items()):
        assert panel.table.item(row, 1).text() == f"{s['dice']:.3f}"
        assert panel.result[v]["dice"] == s["dice"] < 1.0
    conf = np.asarray(panel.overlay.data.array)
    r, p = np.asarray(ref.array), shifted
    assert (conf == 2).sum() == ((p != 0) & (r == 0)).sum() > 0
    assert (conf == 3).sum() == ((r != 0) & (p != r)).sum() > 0
    assert isinstance(panel.overlay, LabelLayer) and panel.overlay in win.scene
    assert panel.overlay.data.table[2].color == (1.0, 0.2, 0.2)
    win.close()
