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
