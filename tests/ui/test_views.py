"""The four views' render windows: slice views draw without multisampling (a software renderer
pays double for it, bench/edit_redraw.py), the 3D view keeps it."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.gui


def test_slice_views_have_no_multisampling(app_window):
    for kind in ("axial", "coronal", "sagittal"):
        assert app_window.views[kind].plotter.render_window.GetMultiSamples() == 0, kind
    assert app_window.views["3d"].plotter.render_window.GetMultiSamples() > 0
