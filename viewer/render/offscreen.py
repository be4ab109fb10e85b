"""Drawing a scene without a window (EGL, no X server): what ``main.py screenshot`` writes."""

from __future__ import annotations

import numpy as np

from ..model import Scene
from .vtkutil import quiet_vtk

__all__ = ["render_scene", "VIEWS"]

VIEWS = ("axial", "coronal", "sagittal", "3d")


def render_scene(scene: Scene, view: str = "axial", size: tuple[int, int] = (512, 512)) -> np.ndarray:
    """Render ``view`` of ``scene`` offscreen with the app's own view classes.

    Returns
    -------
    (H, W, 3) uint8 RGB image, row 0 at the top.
    """
    import pyvista as pv

    quiet_vtk()
    plotter = pv.Plotter(off_screen=True, window_size=list(size))
    try:
        if view == "3d":
            from .view3d import View3D

            v = View3D(plotter.renderer, scene, render=lambda: None)
            v.reset_camera()
        else:
            from .slice_view import SliceView

            v = SliceView(plotter.renderer, scene, view, render=lambda: None)
            v.reset_camera()
        img = plotter.screenshot(return_img=True)
        v.close()
        return np.asarray(img)[..., :3].copy()
    finally:
        plotter.close()
